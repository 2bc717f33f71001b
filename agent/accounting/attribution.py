"""Where each device's energy went in one sample: to jobs, to the rest of the system, or idle.

Pure integer arithmetic (docs/attribution.md has the formulas). The caller measures activity
(CPU time from /proc/stat and per job, GPU processes); this module only splits microjoules,
so the parts of every device's energy sum exactly to it, sample by sample.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from carbonscope.accounting.emissions import EmissionFactors
from carbonscope.sensors.base import Component, DeviceKey, GpuDetails

K = TypeVar("K", bound=Hashable)


class Bucket(StrEnum):
    JOBS = "jobs"
    SYSTEM = "system"
    IDLE = "idle"


class IdlePolicy(StrEnum):
    """How the idle part of CPU, DRAM and platform energy reaches jobs (``jobs.idle_policy``)."""

    RESERVED = "reserved"  # to the jobs holding the hardware, by the share of the node held
    PROPORTIONAL = "proportional"  # all of it, among the running jobs by their CPU time
    NONE = "none"  # none: idle energy stays idle


@dataclass(frozen=True, order=True)
class Recipient:
    """Who receives energy: a job (``job_id`` set) or the system/idle bucket. A job's idle
    share (``idle_share``) is kept apart from its active energy, inside the jobs bucket."""

    bucket: Bucket
    job_id: str = ""
    idle_share: bool = False

    @classmethod
    def job(cls, job_id: str, idle_share: bool = False) -> Recipient:
        return cls(Bucket.JOBS, job_id, idle_share)


SYSTEM = Recipient(Bucket.SYSTEM)
IDLE = Recipient(Bucket.IDLE)


def split_exact(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """Split ``total`` in proportion to integer weights; the parts sum to ``total`` exactly.

    Largest remainder method: everyone gets the floor of their exact share, and the units
    left over go to the largest fractional parts (ties: first in ``weights`` order).
    """
    positive = {key: weight for key, weight in weights.items() if weight > 0}
    weight_sum = sum(positive.values())
    if weight_sum == 0:
        raise ValueError("cannot split energy with no positive weight")
    parts = {key: total * weight // weight_sum for key, weight in positive.items()}
    left = total - sum(parts.values())
    by_remainder = sorted(
        enumerate(positive.items()), key=lambda item: (-(total * item[1][1] % weight_sum), item[0])
    )
    for _index, (key, _weight) in by_remainder[:left]:
        parts[key] += 1
    return parts


@dataclass(frozen=True)
class CpuActivity:
    """CPU time during the sample interval, in microseconds of CPU (summed over all CPUs)."""

    busy_us: int
    idle_us: int
    jobs_us: Mapping[str, int]  # job_id -> CPU time of its processes or cgroup
    # job_id -> CPU capacity it holds over the interval (µs of CPU: a reservation of 2 CPUs
    # for 1 s is 2,000,000), where a reservation is known; the others hold what they used.
    held_us: Mapping[str, int] = field(default_factory=dict)

    @property
    def capacity_us(self) -> int:
        """The node's CPU time over the interval, busy or not (CPUs x the interval)."""
        return max(self.busy_us, 0) + max(self.idle_us, 0)


def cpu_weights(activity: CpuActivity | None) -> dict[Recipient, int]:
    """Weights for CPU-like components (cpu, dram, platform).

    active share = busy / (busy + idle); job i gets active x job_i / D, D = max(busy, sum of
    jobs) (job times can exceed busy by a tick of skew: then they share all of active);
    system gets active x (D - sum of jobs) / D; idle gets the inactive share. As integers:
    idle: idle x D, job i: busy x job_i, system: busy x (D - sum jobs).
    Without activity data (first sample, /proc unreadable) everything is ``system``.
    """
    if activity is None or activity.busy_us + activity.idle_us <= 0:
        return {SYSTEM: 1}
    busy, idle = max(activity.busy_us, 0), max(activity.idle_us, 0)
    jobs = {job_id: used for job_id, used in activity.jobs_us.items() if used > 0}
    jobs_sum = sum(jobs.values())
    scale = max(busy, jobs_sum)
    if scale == 0:
        return {IDLE: 1}
    weights: dict[Recipient, int] = {IDLE: idle * scale}
    for job_id, used in sorted(jobs.items()):
        weights[Recipient.job(job_id)] = busy * used
    weights[SYSTEM] = busy * (scale - jobs_sum)
    return weights


def gpu_weights(gpu: GpuDetails | None, owner_of_pid: Mapping[int, str]) -> dict[Recipient, int]:
    """Weights for one GPU: its compute processes by SM-utilisation share.

    Equal shares when any process lacks a utilisation sample (or all read 0); a GPU without
    processes is idle; a process no job owns is ``system``. Without GPU details (NVML read
    failed) the use is unknown: ``system``.
    """
    if gpu is None:
        return {SYSTEM: 1}
    if not gpu.processes:
        return {IDLE: 1}
    shares = [process.sm_utilization_pct for process in gpu.processes]
    by_utilisation = all(share is not None for share in shares) and (
        sum(share or 0 for share in shares) > 0
    )
    weights: dict[Recipient, int] = {}
    for process in gpu.processes:
        weight = (process.sm_utilization_pct or 0) if by_utilisation else 1
        job_id = owner_of_pid.get(process.pid)
        recipient = Recipient.job(job_id) if job_id else SYSTEM
        weights[recipient] = weights.get(recipient, 0) + weight
    if not any(weights.values()):
        return {SYSTEM: 1}
    return weights


def idle_weights(activity: CpuActivity | None, policy: IdlePolicy) -> dict[Recipient, int]:
    """Weights for the idle part of a CPU-like device's energy: the jobs' idle shares, and what
    no job holds (``idle``). docs/attribution.md has the formulas.

    reserved: job i holds hᵢ = its reservation (µs of CPU capacity over the interval) where
    known, else its CPU time cᵢ; it gets idle x hᵢ / capacity, ``idle`` keeps the rest (when
    the jobs hold more than the node, as nested reservations can, they share all of it by hᵢ).
    proportional: job i gets idle x cᵢ / Σ c. none, or no job holding anything: all ``idle``.
    """
    if activity is None or policy is IdlePolicy.NONE:
        return {IDLE: 1}
    if policy is IdlePolicy.PROPORTIONAL:
        held = {job_id: used for job_id, used in activity.jobs_us.items() if used > 0}
        rest = 0
    else:
        held = {
            job_id: activity.held_us.get(job_id, used) for job_id, used in activity.jobs_us.items()
        }
        held |= {job_id: us for job_id, us in activity.held_us.items() if job_id not in held}
        held = {job_id: us for job_id, us in held.items() if us > 0}
        rest = max(0, activity.capacity_us - sum(held.values()))
    if not held:
        return {IDLE: 1}
    weights = {Recipient.job(job_id, idle_share=True): us for job_id, us in sorted(held.items())}
    weights[IDLE] = rest
    return weights


def attribute_sample(
    deltas: Mapping[DeviceKey, int],
    activity: CpuActivity | None,
    gpus: Sequence[GpuDetails],
    owner_of_pid: Mapping[int, str],
    idle_policy: IdlePolicy = IdlePolicy.NONE,
) -> dict[DeviceKey, dict[Recipient, int]]:
    """Each device's energy of this sample, split among recipients (parts sum exactly). A
    GPU's energy goes whole to the processes on it; the idle part of the others' is split
    again by ``idle_policy``."""
    cpu_like = cpu_weights(activity)
    idle_split = idle_weights(activity, idle_policy)
    gpu_by_device = {gpu.device: gpu for gpu in gpus}
    result: dict[DeviceKey, dict[Recipient, int]] = {}
    for key, delta_uj in deltas.items():
        if delta_uj <= 0:
            continue
        if key.component is Component.GPU:
            result[key] = split_exact(
                delta_uj, gpu_weights(gpu_by_device.get(key.device), owner_of_pid)
            )
            continue
        parts = split_exact(delta_uj, cpu_like)
        if parts.get(IDLE) and idle_split != {IDLE: 1}:
            for recipient, uj in split_exact(parts.pop(IDLE), idle_split).items():
                if uj or recipient == IDLE:
                    parts[recipient] = uj
            parts.setdefault(IDLE, 0)  # the bucket stays, at 0 when the jobs hold all of it
        result[key] = parts
    return result


class OverheadShares:
    """The unmeasured part of node energy (what a platform meter shows beyond the components,
    accounting/reconcile.py) goes to the recipients in proportion to their share of the
    measured node energy since the part last grew: a job carries its share of the server's
    fans, PSU losses and disks. It arrives with the meter's readings, so the shares are those
    of the samples it covers. A job that has ended since is not given more: its active part
    goes to ``system``, its idle share to ``idle``."""

    def __init__(self) -> None:
        self._measured: dict[Recipient, int] = {}

    def add(
        self,
        split: Mapping[DeviceKey, Mapping[Recipient, int]],
        counted: frozenset[Component],
        running_jobs: frozenset[str],
    ) -> None:
        """One sample's split of the measured devices (node-energy components only). A job
        that is no longer running is folded into ``system``/``idle`` at once, so what is kept
        is bounded by the running jobs, however long the meter stays silent."""
        measured = self._measured
        for key, parts in split.items():
            if key.component in counted:
                for recipient, uj in parts.items():
                    measured[recipient] = measured.get(recipient, 0) + uj
        for recipient in [r for r in measured if r.job_id and r.job_id not in running_jobs]:
            to = IDLE if recipient.idle_share else SYSTEM
            measured[to] = measured.get(to, 0) + measured.pop(recipient)

    def split(self, overhead_uj: int, running_jobs: frozenset[str]) -> dict[Recipient, int]:
        self.add({}, frozenset(), running_jobs)  # jobs that ended since the last sample
        weights, self._measured = self._measured, {}
        if not any(uj > 0 for uj in weights.values()):
            return {SYSTEM: overhead_uj}
        return split_exact(overhead_uj, weights)


@dataclass(frozen=True)
class SampleEnergy:
    """What the monitor hands over each sample."""

    deltas: Mapping[DeviceKey, int]
    counted: frozenset[Component]  # the node-energy components (node.py): jobs get only these
    gpus: tuple[GpuDetails, ...]
    factors: EmissionFactors  # in force at this sample
    now_unix_s: float
    intensity_period_id: int = 0  # the stored intensity period this sample falls in (0: none)
    modelled: frozenset[DeviceKey] = frozenset()  # devices whose energy is a model's estimate
    # the reconciled unmeasured part (node.py), split by the measured shares (OverheadShares)
    overhead: DeviceKey | None = None
    # embodied grams of this interval: "server" and per GPU device (embodied.py); empty: off
    embodied_g: Mapping[str, float] = field(default_factory=dict)
