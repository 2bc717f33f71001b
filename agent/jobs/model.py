"""A job's identity and totals, as the API, the ledger and the exporter see them."""

from __future__ import annotations

import pwd
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from carbonscope.accounting.totals import EnergyTotals
from carbonscope.units import UJ_PER_J, UJ_PER_KWH

Identity = tuple[int, int]


def user_name(uid: int | None) -> str:
    """The account name of a uid ("" when unknown, the number when it has no name)."""
    if uid is None:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass(frozen=True)
class Caller:
    """Who is on the other end of the socket (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0


class JobKind(StrEnum):
    TAGGED = "tagged"  # registered through the job API
    SLURM = "slurm"
    KUBERNETES = "kubernetes"


@dataclass(frozen=True)
class JobRecord:
    """Immutable: the registry hands out a new record whenever totals change."""

    job_id: str
    name: str
    kind: JobKind
    uid: int | None
    user: str
    tags: tuple[tuple[str, str], ...]
    started_at: float  # unix seconds
    ended_at: float | None = None
    totals: EnergyTotals = field(default_factory=EnergyTotals)
    processes: tuple[Identity, ...] = ()
    cgroup: str | None = None
    updated_at: float = 0.0
    # (intensity period id, µJ) for the ledger's job_periods table: the job's energy under each
    # intensity value, so its emissions can be recomputed. Not part of the API's JSON.
    energy_by_period: tuple[tuple[int, int], ...] = ()
    # How long it ran, on the monotonic clock (a wall-clock step changes it not); None in
    # records from ledgers older than schema 3, whose duration is end - start on the wall.
    duration_s: float | None = None
    # How it ended: "exit 3", "signal SIGINT" (from `job run`), "stopped" (an API stop with no
    # status), "processes gone", "cgroup gone"; None while running and in older ledgers.
    outcome: str | None = None

    @property
    def running(self) -> bool:
        return self.ended_at is None

    def to_json(self, now: float) -> dict[str, Any]:
        end = self.ended_at if self.ended_at is not None else now
        totals = self.totals
        total = totals.energy_total_uj
        return {
            "job_id": self.job_id,
            "name": self.name,
            "kind": self.kind.value,
            "user": self.user,
            "uid": self.uid,
            "tags": dict(self.tags),
            "state": "running" if self.running else "finished",
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at) if self.ended_at is not None else None,
            "duration_s": round(
                self.duration_s if self.duration_s is not None else max(0.0, end - self.started_at),
                3,
            ),
            "energy_joules": {c.value: uj / UJ_PER_J for c, uj in totals.energy_uj},
            "energy_joules_total": total / UJ_PER_J,
            # the idle share inside energy_joules (jobs.idle_policy); the rest is active
            "idle_energy_joules": {c.value: uj / UJ_PER_J for c, uj in totals.idle_uj},
            "idle_energy_joules_total": totals.idle_total_uj / UJ_PER_J,
            "energy_kwh": total / UJ_PER_KWH,
            "measured_joules": totals.measured_uj / UJ_PER_J,
            "modelled_joules": totals.modelled_uj / UJ_PER_J,
            "emissions_grams": {
                "location": totals.emissions.location_g,
                "market": totals.emissions.market_g,
            },
            # Scope 3: its share of the hardware's amortised footprint ([embodied]), apart
            "embodied_grams": totals.embodied_g,
            "pids": sorted({pid for pid, _start in self.processes}),
            "cgroup": self.cgroup,
            "outcome": self.outcome,
        }


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds")
