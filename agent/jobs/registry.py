"""The job registry: jobs registered through the API or found in cgroups, and their totals.

Two kinds of callers share it, under one lock:
- the job API (another thread): register, stop, get, list, authorised by peer credentials;
- the monitor, once per sample: ``account`` measures CPU activity (procfs, cgroups), splits
  every device's energy (accounting/attribution.py) and adds each job's share to its totals.
``flush`` writes changed records to the ledger; it runs on its own schedule, after a stop,
and at shutdown, so the sampling thread never waits for the disk.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from carbonscope.accounting.attribution import Bucket, CpuActivity, SampleEnergy, attribute_sample
from carbonscope.accounting.emissions import Emissions
from carbonscope.accounting.totals import EnergyTotals
from carbonscope.jobs.cgroups import CgroupJob, discover_cgroup_jobs, job_of_cgroups, read_usage_us
from carbonscope.jobs.model import JobKind, JobRecord
from carbonscope.jobs.processes import JobProcesses, TrackedSample, track
from carbonscope.jobs.store import JobStore
from carbonscope.jobs.validation import JobRequest, JobRequestError
from carbonscope.labels import tag_label
from carbonscope.procfs import (
    CpuTimes,
    ProcStat,
    process_owner_uid,
    read_cpu_times,
    read_pid_cgroups,
    read_pid_stat,
    read_process_table,
    read_uptime_ticks,
)
from carbonscope.sensors.base import Component, GpuDetails, SensorRoots
from carbonscope.snapshot import AttributionView, BucketEnergy, JobView
from carbonscope.units import US_PER_S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who is on the other end of the socket (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0


@dataclass(frozen=True)
class JobsSettings:
    keep_finished_s: float = 3600.0
    max_exported: int = 200
    promoted_tags: tuple[str, ...] = ("team", "project")
    detect_cgroups: bool = True
    max_running_per_user: int = 256
    stop_wait_s: float = 5.0  # how long a stop waits for the sample that closes the job


def user_name(uid: int | None) -> str:
    if uid is None:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass
class _Share:
    """One job's part of one sample, before it is added to the job's totals."""

    energy_uj: dict[Component, int] = field(default_factory=dict)
    total_uj: int = 0
    modelled_uj: int = 0

    def add(self, component: Component, uj: int, modelled: bool) -> None:
        self.energy_uj[component] = self.energy_uj.get(component, 0) + uj
        self.total_uj += uj
        self.modelled_uj += uj if modelled else 0


@dataclass
class _Job:
    """A job's live state; only touched under the registry lock."""

    base: JobRecord  # identity (totals in the fields below)
    seq: int
    processes: JobProcesses | None = None
    cgroup: CgroupJob | None = None
    cgroup_usage_us: int | None = None
    totals: EnergyTotals = field(default_factory=EnergyTotals)
    energy_by_period: dict[int, int] = field(default_factory=dict)  # unwritten or still open
    ended_at: float | None = None
    stop_requested: bool = False
    resumed_at: float | None = None  # updated_at of the ledger row it resumed from
    dirty: bool = True
    updated_at: float = 0.0

    @classmethod
    def resume(cls, record: JobRecord, seq: int) -> _Job:
        return cls(
            base=record,
            seq=seq,
            totals=record.totals,
            resumed_at=record.updated_at,
            dirty=False,
            updated_at=record.updated_at,
        )

    @property
    def running(self) -> bool:
        return self.ended_at is None

    def record(self) -> JobRecord:
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
        )

    def forget_written_periods(self, written: JobRecord) -> None:
        """Drop periods the ledger has for good: those before the newest one written, which
        were closed when it was written (periods follow each other)."""
        if written.energy_by_period:
            newest = written.energy_by_period[-1][0]
            for period_id in [p for p in self.energy_by_period if p < newest]:
                del self.energy_by_period[period_id]

    def end(self, at: float) -> None:
        self.ended_at = at
        self.dirty = True


class JobRegistry:
    def __init__(
        self,
        settings: JobsSettings,
        roots: SensorRoots,
        ledger: JobStore | None,
        clock_ticks_per_s: int | None = None,
        wall_clock_s: Callable[[], float] = time.time,
        monotonic_s: Callable[[], float] = time.monotonic,
        random_job_id: Callable[[], str] = lambda: "j-" + secrets.token_hex(6),
    ) -> None:
        self._settings = settings
        self._procfs = roots.procfs
        self._cgroup_root = roots.sysfs / "fs" / "cgroup"
        self._ledger = ledger
        self._ticks_per_s = clock_ticks_per_s or os.sysconf("SC_CLK_TCK")
        self._wall_clock_s = wall_clock_s
        self._monotonic_s = monotonic_s
        self._random_job_id = random_job_id
        self._lock = threading.Lock()
        self._sampled = threading.Condition(self._lock)
        self._jobs: dict[str, _Job] = {}
        self._seq = 0
        self._buckets: dict[tuple[Component, Bucket], int] = {}
        self._previous_cpu: CpuTimes | None = None
        self._previous_uptime_ticks: int | None = None
        self._cgroups_scanned = False
        self._retired_cgroups: set[str] = set()
        self._pid_cgroups: dict[tuple[int, int], dict[str, str]] = {}
        self._resumable_cgroup_jobs: dict[str, JobRecord] = {}
        if ledger is not None:
            for record in ledger.running():
                self._resume(record)

    # ---- start-up -------------------------------------------------------------------------

    def _resume(self, record: JobRecord) -> None:
        """A job that was running when the daemon stopped: continue from its stored totals."""
        if record.kind is JobKind.TAGGED:
            self._seq += 1
            job = _Job.resume(record, self._seq)
            job.processes = JobProcesses.resumed(record.processes)
            self._jobs[record.job_id] = job
            log.info("resuming job %s (%s) from the ledger", record.job_id, record.name)
        else:  # picked up again when its cgroup is found at the first scan
            self._resumable_cgroup_jobs[record.job_id] = record

    # ---- the job API ----------------------------------------------------------------------

    def now(self) -> float:
        return self._wall_clock_s()

    def register(self, caller: Caller, request: JobRequest) -> JobRecord:
        stats = []
        for pid in request.pids or (caller.pid,):
            stat = read_pid_stat(self._procfs, pid)
            owner_uid = process_owner_uid(self._procfs, pid)
            if stat is None or owner_uid is None:
                raise JobRequestError(f"no such process: {pid}", status=404)
            if not caller.is_root and owner_uid != caller.uid:
                raise JobRequestError(
                    f"process {pid} belongs to uid {owner_uid}: uid {caller.uid} may register "
                    "only its own processes",
                    status=403,
                )
            stats.append(stat)
        now = self._wall_clock_s()
        job_id = self._unused_job_id()
        with self._lock:
            running = sum(
                1 for job in self._jobs.values() if job.running and job.base.uid == caller.uid
            )
            if running >= self._settings.max_running_per_user:
                raise JobRequestError(
                    f"uid {caller.uid} already has {running} running jobs "
                    f"(at most {self._settings.max_running_per_user})",
                    status=429,
                )
            if job_id in self._jobs:  # registered meanwhile: 48 random bits make this moot
                raise JobRequestError("job id collision, please retry", status=503)
            self._seq += 1
            record = JobRecord(
                job_id=job_id,
                name=request.name,
                kind=JobKind.TAGGED,
                uid=caller.uid,
                user=user_name(caller.uid),
                tags=request.tags,
                started_at=now,
                updated_at=now,
            )
            job = _Job(base=record, seq=self._seq, processes=JobProcesses.register(stats))
            job.updated_at = now
            self._jobs[job_id] = job
            record = job.record()
        log.info(
            "job %s (%s) registered by uid %d: pids %s",
            job_id,
            request.name,
            caller.uid,
            ", ".join(map(str, request.pids or (caller.pid,))),
        )
        self.flush()  # written on start
        return record

    def _unused_job_id(self) -> str:
        """A fresh id, checked against the ledger outside the lock the sampler takes."""
        while True:
            job_id = self._random_job_id()
            if self._ledger is None or self._ledger.get(job_id) is None:
                return job_id

    def stop(self, caller: Caller, job_id: str) -> JobRecord:
        """End a job at the next sample (so its last interval is counted) and return its totals."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:  # finished and expired from memory: the ledger has its totals
            stored = self._ledger.get(job_id) if self._ledger else None
            if stored is None:
                raise JobRequestError(f"no such job: {job_id}", status=404)
            self._authorise(caller, stored)
            return stored
        with self._sampled:
            self._authorise(caller, job.base)
            if job.running:
                job.stop_requested = True
                deadline = self._monotonic_s() + self._settings.stop_wait_s
                while job.running and (left := deadline - self._monotonic_s()) > 0:
                    self._sampled.wait(left)
                if job.running:  # sampling stalled: end it now rather than never
                    job.end(self._wall_clock_s())
            record = job.record()
        self.flush()  # written on stop
        return record

    @staticmethod
    def _authorise(caller: Caller, record: JobRecord) -> None:
        if not caller.is_root and record.uid != caller.uid:
            raise JobRequestError(
                f"job {record.job_id} belongs to {record.user or 'another user'}: uid "
                f"{caller.uid} may stop only its own jobs",
                status=403,
            )

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return job.record()
        stored = self._ledger.get(job_id) if self._ledger else None
        if stored is None:
            raise JobRequestError(f"no such job: {job_id}", status=404)
        return stored

    def recent(self, limit: int = 100) -> list[JobRecord]:
        """Live jobs with their current totals, then the most recent ones from the ledger."""
        with self._lock:
            live = {job_id: job.record() for job_id, job in self._jobs.items()}
        stored = self._ledger.recent(limit) if self._ledger else []
        merged = {record.job_id: record for record in stored} | live
        return sorted(merged.values(), key=lambda r: r.started_at, reverse=True)[:limit]

    # ---- once per sample -------------------------------------------------------------------

    def account(self, sample: SampleEnergy) -> AttributionView:
        with self._sampled:
            now = sample.now_unix_s
            activity, owner_of_pid = self._measure(sample.gpus, now)
            split = attribute_sample(sample.deltas, activity, sample.gpus, owner_of_pid)
            shares: dict[str, _Share] = {}
            for key, parts in split.items():
                counted = key.component in sample.counted
                for recipient, uj in parts.items():
                    bucket_key = (key.component, recipient.bucket)
                    self._buckets[bucket_key] = self._buckets.get(bucket_key, 0) + uj
                    if recipient.job_id in self._jobs and counted:
                        share = shares.setdefault(recipient.job_id, _Share())
                        share.add(key.component, uj, modelled=key in sample.modelled)
            period = sample.intensity_period_id
            for job_id, share in shares.items():
                job = self._jobs[job_id]
                uj = share.total_uj
                job.totals = job.totals.plus(
                    share.energy_uj,
                    uj - share.modelled_uj,
                    share.modelled_uj,
                    Emissions.of(uj, sample.factors),
                )
                if period:
                    job.energy_by_period[period] = job.energy_by_period.get(period, 0) + uj
            for job in self._jobs.values():
                if job.running:
                    job.updated_at = now
                    job.dirty = True
            self._expire(now)
            view = self._view(now)
            self._sampled.notify_all()
            return view

    def _measure(
        self, gpus: tuple[GpuDetails, ...], now: float
    ) -> tuple[CpuActivity | None, dict[int, str]]:
        """CPU time of the machine and of every running job over the last interval."""
        try:
            cpu_now: CpuTimes | None = read_cpu_times(self._procfs)
            uptime = read_uptime_ticks(self._procfs, self._ticks_per_s)
        except (OSError, ValueError) as exc:
            log.warning("cannot read CPU activity from %s: %s", self._procfs, exc)
            cpu_now, uptime = None, None
        cpu_before, self._previous_cpu = self._previous_cpu, cpu_now
        since_ticks, self._previous_uptime_ticks = self._previous_uptime_ticks, uptime

        tagged = {
            job_id: job.processes
            for job_id, job in sorted(self._jobs.items(), key=lambda item: item[1].seq)
            if job.running and job.processes is not None
        }
        gpu_pids = any(gpu.processes for gpu in gpus) and self._settings.detect_cgroups
        table = read_process_table(self._procfs) if tagged or gpu_pids else {}
        tracked = track(tagged, table, since_ticks)
        jobs_us: dict[str, int] = {
            job_id: max(0, sum(per_pid.values())) * US_PER_S // self._ticks_per_s
            for job_id, per_pid in tracked.cpu_ticks.items()
        }
        for job_id in tagged:
            job = self._jobs[job_id]
            if job_id not in tracked.alive:
                # A resumed job whose processes did not survive the downtime ended, at the
                # latest, when it was last written; otherwise it ends now.
                job.end(job.resumed_at if job.resumed_at is not None else now)
                log.info("job %s ended: all its processes are gone", job_id)
            elif job.stop_requested:
                job.end(now)
            job.resumed_at = None

        owner_of_pid = dict(tracked.owner_of_pid)
        if self._settings.detect_cgroups:
            self._account_cgroups(tracked, table, jobs_us, owner_of_pid, gpus, now)
        else:
            self._end_unresumed_cgroup_jobs()

        if cpu_now is None or cpu_before is None:
            return None, owner_of_pid
        busy_ticks = max(0, cpu_now.busy - cpu_before.busy)
        idle_ticks = max(0, cpu_now.idle - cpu_before.idle)
        activity = CpuActivity(
            busy_us=busy_ticks * US_PER_S // self._ticks_per_s,
            idle_us=idle_ticks * US_PER_S // self._ticks_per_s,
            jobs_us=jobs_us,
        )
        return activity, owner_of_pid

    def _account_cgroups(
        self,
        tracked: TrackedSample,
        table: Mapping[int, ProcStat],
        jobs_us: dict[str, int],
        owner_of_pid: dict[int, str],
        gpus: tuple[GpuDetails, ...],
        now: float,
    ) -> None:
        first_scan, self._cgroups_scanned = not self._cgroups_scanned, True
        found = {job.job_id: job for job in discover_cgroup_jobs(self._cgroup_root)}
        for job_id, cgroup in found.items():
            if job_id in self._jobs or job_id in self._retired_cgroups:
                continue
            stored = self._resumable_cgroup_jobs.pop(job_id, None)
            self._seq += 1
            if stored is not None:
                job = _Job.resume(stored, self._seq)
            else:
                record = JobRecord(
                    job_id=job_id,
                    name=cgroup.name,
                    kind=JobKind.SLURM if cgroup.scheduler == "slurm" else JobKind.KUBERNETES,
                    uid=cgroup.uid,
                    user=user_name(cgroup.uid),
                    tags=cgroup.tags,
                    started_at=_created_at(cgroup.directory, now),
                    cgroup=cgroup.hierarchy_path,
                    updated_at=now,
                )
                job = _Job(base=record, seq=self._seq)
                log.info("found %s job %s at %s", cgroup.scheduler, job_id, cgroup.hierarchy_path)
            job.cgroup = cgroup
            # Usage before the first scan (or a restart) is not ours to count; a cgroup born
            # since the previous scan is counted from zero.
            job.cgroup_usage_us = read_usage_us(cgroup) if first_scan or stored else 0
            self._jobs[job_id] = job
        if first_scan:
            self._end_unresumed_cgroup_jobs()

        cgroup_jobs = [job for job in self._jobs.values() if job.running and job.cgroup]
        if not cgroup_jobs:
            return
        cgroups = [job.cgroup for job in cgroup_jobs if job.cgroup]
        for job in cgroup_jobs:
            assert job.cgroup is not None
            usage = read_usage_us(job.cgroup) if job.base.job_id in found else None
            if usage is None or job.stop_requested:
                job.end(now)
                if job.stop_requested:  # never re-created while its cgroup lingers
                    self._retired_cgroups.add(job.base.job_id)
                continue
            before = job.cgroup_usage_us if job.cgroup_usage_us is not None else usage
            jobs_us[job.base.job_id] = max(0, usage - before)
            job.cgroup_usage_us = usage
        # A tagged job inside a Slurm job or pod: its CPU time is the tagged job's, not both.
        live = {identity for identity in self._pid_cgroups if identity[0] in table}
        self._pid_cgroups = {identity: self._pid_cgroups[identity] for identity in live}
        for per_pid in tracked.cpu_ticks.values():
            for pid, ticks in per_pid.items():
                container = self._cgroup_job_of(pid, table, cgroups)
                if container is not None and container.job_id in jobs_us:
                    used = ticks * US_PER_S // self._ticks_per_s
                    jobs_us[container.job_id] = max(0, jobs_us[container.job_id] - used)
        for gpu in gpus:
            for process in gpu.processes:
                if process.pid not in owner_of_pid:
                    container = self._cgroup_job_of(process.pid, table, cgroups)
                    if container is not None:
                        owner_of_pid[process.pid] = container.job_id

    def _cgroup_job_of(
        self, pid: int, table: Mapping[int, ProcStat], cgroups: list[CgroupJob]
    ) -> CgroupJob | None:
        stat = table.get(pid)
        identity = (pid, stat.start_ticks if stat else -1)
        paths = self._pid_cgroups.get(identity)
        if paths is None:
            paths = read_pid_cgroups(self._procfs, pid)
            self._pid_cgroups[identity] = paths
        return job_of_cgroups(cgroups, paths)

    def _end_unresumed_cgroup_jobs(self) -> None:
        """Slurm jobs and pods that were running at shutdown and whose cgroup is gone."""
        for job_id, record in self._resumable_cgroup_jobs.items():
            self._seq += 1
            job = _Job.resume(record, self._seq)
            job.end(record.updated_at)
            self._jobs[job_id] = job
            log.info("job %s ended while the agent was down", job_id)
        self._resumable_cgroup_jobs.clear()

    def _expire(self, now: float) -> None:
        keep = self._settings.keep_finished_s
        for job_id in [
            job_id
            for job_id, job in self._jobs.items()
            if job.ended_at is not None and not job.dirty and now - job.ended_at > keep
        ]:
            del self._jobs[job_id]

    def _view(self, now: float) -> AttributionView:
        keep = self._settings.keep_finished_s
        running = sorted(
            (job for job in self._jobs.values() if job.running), key=lambda job: job.seq
        )
        finished = sorted(
            (
                job
                for job in self._jobs.values()
                if job.ended_at is not None and now - job.ended_at <= keep
            ),
            key=lambda job: -job.totals.energy_total_uj,
        )
        promoted = self._settings.promoted_tags
        jobs = []
        for job in (running + finished)[: self._settings.max_exported]:
            tags = dict(job.base.tags)
            jobs.append(
                JobView(
                    job_id=job.base.job_id,
                    name=job.base.name,
                    user=job.base.user,
                    running=job.running,
                    info_values=tuple(tags.get(key, "") for key in promoted),
                    totals=job.totals,
                )
            )
        buckets = tuple(
            BucketEnergy(component, bucket, uj)
            for (component, bucket), uj in sorted(self._buckets.items())
        )
        return AttributionView(buckets, tuple(jobs), tuple(map(tag_label, promoted)))

    # ---- persistence -----------------------------------------------------------------------

    def flush(self) -> None:
        """Write every changed job to the ledger (running jobs: their totals so far)."""
        if self._ledger is None:
            return
        with self._lock:
            dirty = [job for job in self._jobs.values() if job.dirty]
            records = [job.record() for job in dirty]
            for job in dirty:
                job.dirty = False
        try:
            self._ledger.write(records)
        except Exception:
            log.exception("cannot write %d job record(s) to the ledger", len(records))
            with self._lock:
                for job in dirty:
                    job.dirty = True
            return
        with self._lock:
            for job, record in zip(dirty, records, strict=True):
                job.forget_written_periods(record)


def _created_at(directory: Path, now: float) -> float:
    try:
        return min(now, directory.stat().st_ctime)
    except OSError:
        return now
