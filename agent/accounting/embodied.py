"""Embodied emissions (Scope 3, categories 1/2: the hardware's manufacturing footprint),
amortised over its life: ``[embodied] server_kgco2e`` for the server and ``gpu_kgco2e`` per GPU,
spread evenly over ``lifetime``, per second of (monotonic) time the agent runs.

Attributed like idle energy (attribution.py): the server's part by the share of the node each
job holds (``jobs.idle_policy``), a GPU's part to the jobs with processes on it; what no job
holds stays with the node (``idle``). Grams, never mixed into the Scope 2 figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from carbonscope.accounting.attribution import (
    IDLE,
    CpuActivity,
    IdlePolicy,
    Recipient,
    gpu_weights,
    idle_weights,
)
from carbonscope.sensors.base import GpuDetails

SERVER = "server"


@dataclass(frozen=True)
class EmbodiedRate:
    server_g_per_s: float
    gpu_g_per_s: float  # per GPU

    @classmethod
    def of(cls, server_kg: float, gpu_kg: float, lifetime_s: float) -> EmbodiedRate | None:
        """None when nothing is configured (embodied emissions are off)."""
        if server_kg <= 0 and gpu_kg <= 0:
            return None
        return cls(server_kg * 1000 / lifetime_s, gpu_kg * 1000 / lifetime_s)

    def sample(self, elapsed_s: float, gpu_devices: Sequence[str]) -> dict[str, float]:
        """Grams of this interval: the server's, then each GPU's ("gpu0", ...)."""
        parts = {SERVER: self.server_g_per_s * elapsed_s}
        for device in gpu_devices:
            parts[device] = self.gpu_g_per_s * elapsed_s
        return parts


def _shares(grams: float, weights: Mapping[Recipient, int]) -> dict[Recipient, float]:
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return {IDLE: grams}
    return {r: grams * w / total for r, w in weights.items() if w > 0}


def embodied_split(
    parts: Mapping[str, float],
    activity: CpuActivity | None,
    gpus: Sequence[GpuDetails],
    owner_of_pid: Mapping[int, str],
    policy: IdlePolicy,
) -> dict[Recipient, float]:
    """Each recipient's grams of this interval (they sum to the interval's grams)."""
    by_device = {gpu.device: gpu for gpu in gpus}
    split: dict[Recipient, float] = {}
    for part, grams in parts.items():
        if grams <= 0:
            continue
        if part == SERVER:
            weights = idle_weights(activity, policy)
        else:
            gpu = by_device.get(part)
            weights = gpu_weights(gpu, owner_of_pid) if gpu is not None else {IDLE: 1}
        for recipient, share in _shares(grams, weights).items():
            held = Recipient(recipient.bucket, recipient.job_id)  # held hardware, one kind
            split[held] = split.get(held, 0.0) + share
    return split
