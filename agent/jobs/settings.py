"""The job registry's limits and retention, from the ``[jobs]`` config section."""

from __future__ import annotations

from dataclasses import dataclass

from carbonscope.accounting.attribution import IdlePolicy


@dataclass(frozen=True)
class JobsSettings:
    keep_finished_s: float = 3600.0
    max_exported: int = 200
    promoted_tags: tuple[str, ...] = ("team", "project")
    detect_cgroups: bool = True
    max_running_per_user: int = 256
    max_created_per_minute: int = 120  # per uid, a sliding minute on the monotonic clock
    max_finished_per_user: int = 1000  # finished jobs kept in memory per uid (all in the ledger)
    stop_wait_s: float = 5.0  # how long a stop waits for the sample that closes the job
    idle_policy: IdlePolicy = IdlePolicy.RESERVED
