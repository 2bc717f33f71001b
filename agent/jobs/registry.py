"""The job registry: jobs registered through the job API or found in cgroups, and their totals.

Two kinds of callers share it, under one lock that never spans I/O:
- the job API (its own threads): register, stop, get, list, authorised by peer credentials;
- the monitor, once per sample: ``account`` takes a frozen plan of the running jobs, lets the
  activity meter (activity.py) read /proc and the cgroup tree outside the lock, then applies
  the result: ends and finds jobs, splits every device's energy (accounting/attribution.py),
  adds each job's share to its totals and builds the exported view (view.py).
``flush`` writes changed records to the job store (the ledger); it runs on its own schedule,
after a stop, and at shutdown, so the sampling thread never waits for the disk.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

from carbonscope.accounting.attribution import (
    Bucket,
    OverheadShares,
    SampleEnergy,
    attribute_sample,
)
from carbonscope.accounting.embodied import embodied_split
from carbonscope.jobs.activity import Activity, ActivityMeter, MeasurePlan, NewCgroup
from carbonscope.jobs.live import LiveJob, add_embodied, add_shares
from carbonscope.jobs.model import Caller, JobKind, JobRecord, user_name
from carbonscope.jobs.processes import JobProcesses
from carbonscope.jobs.quotas import CreationQuota
from carbonscope.jobs.settings import JobsSettings
from carbonscope.jobs.store import JobStore
from carbonscope.jobs.validation import JobRequest, JobRequestError
from carbonscope.jobs.view import attribution_view, expired
from carbonscope.procfs import process_owner_uid, read_pid_stat
from carbonscope.sensors.base import Component, SensorRoots
from carbonscope.snapshot import AttributionView

log = logging.getLogger(__name__)

__all__ = ["Caller", "JobRegistry", "JobsSettings"]


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
        self._meter = ActivityMeter(roots, settings.detect_cgroups, clock_ticks_per_s)
        self._ledger = ledger
        self._wall_clock_s = wall_clock_s
        self._monotonic_s = monotonic_s
        self._random_job_id = random_job_id
        self._lock = threading.Lock()
        self._sampled = threading.Condition(self._lock)
        self._jobs: dict[str, LiveJob] = {}
        self._seq = 0
        self._buckets: dict[tuple[Component, Bucket], int] = {}
        self._overhead = OverheadShares()
        self._retired_cgroups: set[str] = set()
        self._creations = CreationQuota(settings.max_created_per_minute, monotonic_s)
        self._resumable_cgroup_jobs: dict[str, JobRecord] = {}
        if ledger is not None:
            for record in ledger.running():
                self._resume(record)

    # ---- start-up -------------------------------------------------------------------------

    def _resume(self, record: JobRecord) -> None:
        """A job that was running when the daemon stopped: continue from its stored totals."""
        if record.kind is JobKind.TAGGED:
            self._seq += 1
            job = LiveJob.resume(record, self._seq, self._monotonic_s(), self._wall_clock_s())
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
        user = user_name(caller.uid)  # a passwd lookup may go over the network: not under the lock
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
            self._creations.charge(caller.uid)
            if job_id in self._jobs:  # registered meanwhile: 48 random bits make this moot
                raise JobRequestError("job id collision, please retry", status=503)
            self._seq += 1
            record = JobRecord(
                job_id=job_id,
                name=request.name,
                kind=JobKind.TAGGED,
                uid=caller.uid,
                user=user,
                tags=request.tags,
                started_at=now,
                updated_at=now,
            )
            job = LiveJob(
                base=record,
                seq=self._seq,
                processes=JobProcesses.register(stats),
                mono_mark_s=self._monotonic_s(),
            )
            job.updated_at = now
            self._jobs[job_id] = job
            record = job.record(self._monotonic_s())
        log.info(
            "job %s (%s) registered by uid %d: pids %s",
            job_id,
            request.name,
            caller.uid,
            ", ".join(map(str, request.pids or (caller.pid,))),
        )
        failure = self.flush()  # written on start: a 201 means the ledger has the job
        if failure is not None:
            with self._lock:
                self._jobs.pop(job_id, None)
            raise JobRequestError(
                f"the job ledger cannot take the job, so it is not tracked: {failure}",
                status=503,
            )
        return record

    def _unused_job_id(self) -> str:
        """A fresh id, checked against the ledger outside the lock the sampler takes."""
        while True:
            job_id = self._random_job_id()
            if self._ledger is None or self._ledger.get(job_id) is None:
                return job_id

    def stop(self, caller: Caller, job_id: str, outcome: str | None = None) -> JobRecord:
        """End a job at the next sample (so its last interval is counted) and return its totals.
        ``outcome``: how its command ended ("exit 3", "signal SIGINT"), when the caller knows."""
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
                job.outcome = outcome
                deadline = self._monotonic_s() + self._settings.stop_wait_s
                while job.running and (left := deadline - self._monotonic_s()) > 0:
                    self._sampled.wait(left)
                if job.running:  # sampling stalled: end it now rather than never
                    job.end(self._wall_clock_s(), self._monotonic_s())
            record = job.record(self._monotonic_s())
        failure = self.flush()  # written on stop
        if failure is not None:  # the job has ended; its totals reach the ledger once it works
            raise JobRequestError(
                f"job {job_id} stopped, but the job ledger cannot take its totals yet: {failure}",
                status=503,
            )
        return record

    @staticmethod
    def _authorise(caller: Caller, record: JobRecord) -> None:
        """Another user's job is not there for this caller: the same 404 as a GET of it, so
        job ids cannot be probed nor their owners learnt."""
        if not caller.is_root and record.uid != caller.uid:
            raise JobRequestError(f"no such job: {record.job_id}", status=404)

    def get(self, job_id: str, caller: Caller | None = None) -> JobRecord:
        """A job's record; a caller other than root sees only its own jobs (others: 404)."""
        with self._lock:
            job = self._jobs.get(job_id)
            found = job.record(self._monotonic_s()) if job is not None else None
        if found is None and self._ledger is not None:
            found = self._ledger.get(job_id)
        if found is None or not _visible(found, caller):
            raise JobRequestError(f"no such job: {job_id}", status=404)
        return found

    def recent(self, limit: int = 100, caller: Caller | None = None) -> list[JobRecord]:
        """Live jobs with their current totals, then the most recent ones from the ledger; a
        caller other than root sees only its own."""
        uid = None if caller is None or caller.is_root else caller.uid
        with self._lock:
            live = {
                job_id: job.record(self._monotonic_s())
                for job_id, job in self._jobs.items()
                if uid is None or job.base.uid == uid
            }
        stored = self._ledger.recent(limit, uid) if self._ledger else []
        merged = {record.job_id: record for record in stored} | live
        return sorted(merged.values(), key=lambda r: r.started_at, reverse=True)[:limit]

    # ---- once per sample -------------------------------------------------------------------

    def account(self, sample: SampleEnergy) -> AttributionView:
        with self._lock:
            plan = self._plan()
        activity = self._meter.measure(plan, sample.gpus, sample.now_unix_s)  # all the I/O
        with self._sampled:
            now = sample.now_unix_s
            self._apply(plan, activity, now)
            deltas = dict(sample.deltas)
            overhead_uj = deltas.pop(sample.overhead, 0) if sample.overhead else 0
            split = attribute_sample(
                deltas,
                activity.cpu,
                sample.gpus,
                activity.owner_of_pid,
                self._settings.idle_policy,
            )
            if sample.overhead is not None:  # a platform meter's unmeasured part
                running = frozenset(job_id for job_id, job in self._jobs.items() if job.running)
                self._overhead.add(split, sample.counted, running)
                if overhead_uj > 0:
                    split[sample.overhead] = self._overhead.split(overhead_uj, running)
            add_shares(self._jobs, self._buckets, split, sample)
            if sample.embodied_g:
                held = embodied_split(
                    sample.embodied_g,
                    activity.cpu,
                    sample.gpus,
                    activity.owner_of_pid,
                    self._settings.idle_policy,
                )
                add_embodied(self._jobs, held)
            for job in self._jobs.values():
                if job.running:
                    job.updated_at = now
                    job.dirty = True
            settings = self._settings
            for job_id in expired(
                self._jobs, now, settings.keep_finished_s, settings.max_finished_per_user
            ):
                del self._jobs[job_id]
            view = attribution_view(
                self._jobs.values(),
                self._buckets,
                now,
                settings.keep_finished_s,
                settings.max_exported,
                settings.promoted_tags,
            )
            self._sampled.notify_all()
            return view

    def _plan(self) -> MeasurePlan:
        by_age = sorted(self._jobs.items(), key=lambda item: item[1].seq)
        cgroup_jobs = [job for job in self._jobs.values() if job.running and job.cgroup]
        return MeasurePlan(
            tagged=tuple(
                (job_id, job.processes)
                for job_id, job in by_age
                if job.running and job.processes is not None
            ),
            known=frozenset(self._jobs),
            cgroups_running=frozenset(job.base.job_id for job in cgroup_jobs),
            cgroups_stopping=frozenset(j.base.job_id for j in cgroup_jobs if j.stop_requested),
            resumable=frozenset(self._resumable_cgroup_jobs),
            retired=frozenset(self._retired_cgroups),
        )

    def _apply(self, plan: MeasurePlan, activity: Activity, now: float) -> None:
        """Jobs that ended or appeared during the interval just measured."""
        mono = self._monotonic_s()
        for job_id, _processes in plan.tagged:
            job = self._jobs[job_id]
            if job_id not in activity.alive:
                # A resumed job whose processes did not survive the downtime ended, at the
                # latest, when it was last written; otherwise it ends now.
                if job.resumed_at is not None:  # died while the agent was down
                    job.end(job.resumed_at, None, "processes gone")
                else:
                    job.end(now, mono, "processes gone")
                log.info("job %s ended: all its processes are gone", job_id)
            else:
                if job.resumed_at is not None:  # survived the downtime: it ran meanwhile
                    job.duration_s += job.downtime_s
                if job.stop_requested:
                    job.end(now, mono)
            job.resumed_at = None
        if not self._settings.detect_cgroups:
            self._end_unresumed_cgroup_jobs()
            return
        for found in activity.new_cgroups:
            self._add_cgroup_job(found, now)
        if activity.first_cgroup_scan:
            self._end_unresumed_cgroup_jobs()
        for job_id in plan.cgroups_running:
            job = self._jobs[job_id]
            if job_id in activity.gone_cgroups or job.stop_requested:
                job.end(now, mono, "stopped" if job.stop_requested else "cgroup gone")
                if job.stop_requested:  # never re-created while its cgroup lingers
                    self._retired_cgroups.add(job_id)
            elif job_id in activity.cgroups:
                job.cgroup = activity.cgroups[job_id]
        for found in activity.new_cgroups:  # gone again within its first interval
            if found.cgroup.job_id in activity.gone_cgroups:
                self._jobs[found.cgroup.job_id].end(now, mono, "cgroup gone")

    def _add_cgroup_job(self, found: NewCgroup, now: float) -> None:
        cgroup = found.cgroup
        stored = self._resumable_cgroup_jobs.pop(cgroup.job_id, None)
        self._seq += 1
        if stored is not None:
            job = LiveJob.resume(stored, self._seq, self._monotonic_s(), self._wall_clock_s())
            job.duration_s += job.downtime_s  # its cgroup is still there: it ran meanwhile
        else:
            record = JobRecord(
                job_id=cgroup.job_id,
                name=cgroup.name,
                kind=JobKind.SLURM if cgroup.scheduler == "slurm" else JobKind.KUBERNETES,
                uid=cgroup.uid,
                user=found.user,
                tags=cgroup.tags,
                started_at=found.created_at,
                cgroup=cgroup.hierarchy_path,
                updated_at=now,
            )
            job = LiveJob(base=record, seq=self._seq, mono_mark_s=self._monotonic_s())
            log.info(
                "found %s job %s at %s", cgroup.scheduler, cgroup.job_id, cgroup.hierarchy_path
            )
        job.cgroup = cgroup
        self._jobs[cgroup.job_id] = job

    def _end_unresumed_cgroup_jobs(self) -> None:
        """Slurm jobs and pods that were running at shutdown and whose cgroup is gone."""
        for job_id, record in self._resumable_cgroup_jobs.items():
            self._seq += 1
            job = LiveJob.resume(record, self._seq, self._monotonic_s(), self._wall_clock_s())
            job.end(record.updated_at, None, "cgroup gone")
            self._jobs[job_id] = job
            log.info("job %s ended while the agent was down", job_id)
        self._resumable_cgroup_jobs.clear()

    # ---- persistence -----------------------------------------------------------------------

    def flush(self) -> str | None:
        """Write every changed job to the store (running jobs: their totals so far). Returns
        None when written, else why not; what was not written stays dirty for the next flush."""
        if self._ledger is None:
            return None
        with self._lock:
            dirty = [job for job in self._jobs.values() if job.dirty]
            records = [job.record(self._monotonic_s()) for job in dirty]
            for job in dirty:
                job.dirty = False
        try:
            self._ledger.write(records)
        except Exception as exc:  # noqa: BLE001 - any store failure: keep every record
            log.error("cannot write %d job record(s): %s", len(records), exc)
            with self._lock:
                for job in dirty:
                    job.dirty = True
            return str(exc)
        with self._lock:
            for job, record in zip(dirty, records, strict=True):
                job.forget_written_periods(record)
        return None


def _visible(record: JobRecord, caller: Caller | None) -> bool:
    return caller is None or caller.is_root or record.uid == caller.uid
