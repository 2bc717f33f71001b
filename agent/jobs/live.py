"""A job as the registry holds it while it runs (and for a while after it ended)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from carbonscope.accounting.attribution import Bucket, Recipient, SampleEnergy
from carbonscope.accounting.emissions import Emissions
from carbonscope.accounting.totals import EnergyTotals
from carbonscope.jobs.cgroups import CgroupJob
from carbonscope.jobs.model import JobRecord
from carbonscope.jobs.processes import JobProcesses
from carbonscope.sensors.base import Component, DeviceKey


@dataclass
class JobShare:
    """One job's part of one sample, before it is added to the job's totals."""

    energy_uj: dict[Component, int] = field(default_factory=dict)
    total_uj: int = 0
    modelled_uj: int = 0
    idle_uj: dict[Component, int] = field(default_factory=dict)  # the idle share inside

    def add(self, component: Component, uj: int, modelled: bool, idle_share: bool) -> None:
        self.energy_uj[component] = self.energy_uj.get(component, 0) + uj
        self.total_uj += uj
        self.modelled_uj += uj if modelled else 0
        if idle_share:
            self.idle_uj[component] = self.idle_uj.get(component, 0) + uj


@dataclass
class LiveJob:
    """A job's live state in the registry; only touched under the registry's lock (its
    ``processes`` are advanced by the activity meter, on the sampler thread, outside it)."""

    base: JobRecord  # identity (totals in the fields below)
    seq: int
    processes: JobProcesses | None = None
    cgroup: CgroupJob | None = None
    totals: EnergyTotals = field(default_factory=EnergyTotals)
    energy_by_period: dict[int, int] = field(default_factory=dict)  # unwritten or still open
    ended_at: float | None = None
    stop_requested: bool = False
    resumed_at: float | None = None  # updated_at of the ledger row it resumed from
    dirty: bool = True
    updated_at: float = 0.0
    duration_s: float = 0.0  # monotonic seconds run, up to ``mono_mark_s``
    mono_mark_s: float | None = None  # monotonic time it runs from (None: ended, frozen)
    downtime_s: float = 0.0  # a resumed job: the agent's downtime, added if it is still alive
    outcome: str | None = None  # how it ended (JobRecord.outcome); set by a stop or at the end

    @classmethod
    def resume(cls, record: JobRecord, seq: int, now_mono_s: float, now_s: float) -> LiveJob:
        before = (
            record.duration_s
            if record.duration_s is not None
            else max(0.0, record.updated_at - record.started_at)
        )
        return cls(
            base=record,
            seq=seq,
            totals=record.totals,
            resumed_at=record.updated_at,
            dirty=False,
            updated_at=record.updated_at,
            duration_s=before,
            mono_mark_s=now_mono_s,
            downtime_s=max(0.0, now_s - record.updated_at),
        )

    def duration_at(self, now_mono_s: float) -> float:
        if self.mono_mark_s is None:
            return self.duration_s
        return self.duration_s + max(0.0, now_mono_s - self.mono_mark_s)

    @property
    def running(self) -> bool:
        return self.ended_at is None

    def record(self, now_mono_s: float) -> JobRecord:
        base = self.base
        return JobRecord(
            job_id=base.job_id,
            name=base.name,
            kind=base.kind,
            uid=base.uid,
            user=base.user,
            tags=base.tags,
            started_at=base.started_at,
            ended_at=self.ended_at,
            totals=self.totals,
            processes=self.processes.identities if self.processes else base.processes,
            cgroup=self.cgroup.hierarchy_path if self.cgroup else base.cgroup,
            updated_at=self.updated_at,
            energy_by_period=tuple(sorted(self.energy_by_period.items())),
            duration_s=self.duration_at(now_mono_s),
            outcome=self.outcome,
        )

    def forget_written_periods(self, written: JobRecord) -> None:
        """Drop periods the ledger has for good: those before the newest one written, which
        were closed when it was written (periods follow each other)."""
        if written.energy_by_period:
            newest = written.energy_by_period[-1][0]
            for period_id in [p for p in self.energy_by_period if p < newest]:
                del self.energy_by_period[period_id]

    def end(self, at: float, now_mono_s: float | None, outcome: str = "stopped") -> None:
        """Ended at wall time ``at`` (a stamp); its duration stops at ``now_mono_s`` (None:
        it ended while the agent was down, at its last write: nothing more is added). A stop
        that brought its own outcome (an exit status) keeps it."""
        self.outcome = self.outcome or outcome
        if now_mono_s is not None:
            self.duration_s = self.duration_at(now_mono_s)
        self.mono_mark_s = None
        self.ended_at = at
        self.dirty = True


def add_shares(
    jobs: Mapping[str, LiveJob],
    buckets: dict[tuple[Component, Bucket], int],
    split: Mapping[DeviceKey, Mapping[Recipient, int]],
    sample: SampleEnergy,
) -> None:
    """One sample's split into the bucket totals, and each job's part into its totals (only
    node-energy components reach a job: packages under psys are shown, not added)."""
    shares: dict[str, JobShare] = {}
    for key, parts in split.items():
        counted = key.component in sample.counted
        for recipient, uj in parts.items():
            bucket_key = (key.component, recipient.bucket)
            buckets[bucket_key] = buckets.get(bucket_key, 0) + uj
            if recipient.job_id in jobs and counted:
                share = shares.setdefault(recipient.job_id, JobShare())
                share.add(
                    key.component,
                    uj,
                    modelled=key in sample.modelled,
                    idle_share=recipient.idle_share,
                )
    period = sample.intensity_period_id
    for job_id, share in shares.items():
        job = jobs[job_id]
        uj = share.total_uj
        job.totals = job.totals.plus(
            share.energy_uj,
            uj - share.modelled_uj,
            share.modelled_uj,
            Emissions.of(uj, sample.factors),
            share.idle_uj,
        )
        if period:
            job.energy_by_period[period] = job.energy_by_period.get(period, 0) + uj


def add_embodied(jobs: Mapping[str, LiveJob], held: Mapping[Recipient, float]) -> None:
    """Each running job's share of this interval's embodied grams (accounting/embodied.py)."""
    for recipient, grams in held.items():
        job = jobs.get(recipient.job_id) if recipient.job_id else None
        if job is not None and job.running and grams > 0:
            job.totals = replace(job.totals, embodied_g=job.totals.embodied_g + grams)
