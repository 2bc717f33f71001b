"""What jobs did during one sample: CPU time of the machine, of each tagged job's processes
and of each Slurm job or pod cgroup, and which job owns each GPU process.

All the /proc and cgroup reading of a sample happens here, on the sampler thread and outside
the registry's lock: the registry hands in a frozen ``MeasurePlan`` (which jobs run) and gets
a frozen ``Activity`` back, so a job-API call never waits for a /proc scan. The meter keeps
what only the sampler needs between samples (previous CPU times, cgroup usage baselines, the
cgroup paths of processes seen before).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from carbonscope.accounting.attribution import CpuActivity
from carbonscope.jobs.cgroups import (
    CgroupJob,
    discover_cgroup_jobs,
    job_of_cgroups,
    read_reserved_millicpus,
    read_usage_us,
)
from carbonscope.jobs.model import user_name
from carbonscope.jobs.processes import JobProcesses, TrackedSample, track
from carbonscope.jobs.rescan import PacedRescan
from carbonscope.procfs import (
    CpuTimes,
    ProcStat,
    read_cpu_stat,
    read_pid_cgroups,
    read_pid_stat,
    read_process_table,
    read_process_tree,
    read_uptime_ticks,
)
from carbonscope.sensors.base import GpuDetails, SensorRoots
from carbonscope.units import US_PER_S

log = logging.getLogger(__name__)

# Each sample reads the tagged jobs' process trees (from their known members, through the
# kernel's children lists) and a slice of the whole process table, all of it this often
# (rescan.py); the whole table at once on every sample where the kernel has no children lists.
FULL_SCAN_EVERY_S = 60.0
# Processes the rescan reads per sample at most (~0.3 ms): at a 1 s interval, a pass takes
# longer than the period on machines of more than 1,920 processes.
RESCAN_BUDGET = 32
# Walking a process costs about twice reading its stat in the full scan (the children list as
# well: benchmarks/run.py). When the jobs hold more than half the machine's processes, the
# full scan is the cheaper way to the same answer.
WALK_COST = 2


@dataclass(frozen=True)
class MeasurePlan:
    """The registry's jobs as the meter needs them, taken under its lock."""

    tagged: tuple[tuple[str, JobProcesses], ...] = ()  # running tagged jobs, oldest first
    known: frozenset[str] = frozenset()  # every job id in memory, running or not
    cgroups_running: frozenset[str] = frozenset()  # running Slurm jobs and pods
    cgroups_stopping: frozenset[str] = frozenset()  # asked to stop: their interval is not counted
    resumable: frozenset[str] = frozenset()  # cgroup jobs the ledger had running at start-up
    retired: frozenset[str] = frozenset()  # stopped cgroup jobs, never re-created


@dataclass(frozen=True)
class NewCgroup:
    cgroup: CgroupJob
    user: str
    created_at: float  # unix seconds, at most now


@dataclass(frozen=True)
class Activity:
    cpu: CpuActivity | None  # None without two readable /proc/stat samples
    owner_of_pid: Mapping[int, str]
    alive: frozenset[str]  # tagged jobs with a live process
    new_cgroups: tuple[NewCgroup, ...] = ()  # found now, not yet jobs
    gone_cgroups: frozenset[str] = frozenset()  # running cgroup jobs whose cgroup is gone
    first_cgroup_scan: bool = False
    cgroups: Mapping[str, CgroupJob] = field(default_factory=dict)  # every cgroup job found
    # running cgroup jobs whose cgroup limits them to part of the node -> thousandths of a CPU
    reserved_millicpus: Mapping[str, int] = field(default_factory=dict)
    nested_us: Mapping[str, int] = field(default_factory=dict)  # cgroup job -> its tagged jobs' use


class ActivityMeter:
    def __init__(
        self,
        roots: SensorRoots,
        detect_cgroups: bool = True,
        clock_ticks_per_s: int | None = None,
        wall_clock_s: Callable[[], float] = time.time,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._procfs = roots.procfs
        self._rescan = PacedRescan(roots.procfs, FULL_SCAN_EVERY_S, RESCAN_BUDGET, monotonic_s)
        self._children_lists = True  # until the kernel shows it has none
        self._job_processes = 0  # members of tagged jobs at the last sample
        self._cgroup_root = roots.sysfs / "fs" / "cgroup"
        self._detect_cgroups = detect_cgroups
        self._ticks_per_s = clock_ticks_per_s or os.sysconf("SC_CLK_TCK")
        self._wall_clock_s = wall_clock_s
        self._previous_cpu: CpuTimes | None = None
        self._node_cpus = os.cpu_count() or 1  # then from /proc/stat's cpuN lines
        self._previous_uptime_ticks: int | None = None
        self._cgroups_scanned = False
        self._usage_us: dict[str, int] = {}  # cgroup job -> usage at the previous sample
        self._pid_cgroups: dict[tuple[int, int], dict[str, str]] = {}

    def measure(self, plan: MeasurePlan, gpus: tuple[GpuDetails, ...], now: float) -> Activity:
        """CPU time of the machine and of every running job over the last interval."""
        try:
            cpu_now: CpuTimes | None
            cpu_now, self._node_cpus = read_cpu_stat(self._procfs)
            uptime = read_uptime_ticks(self._procfs, self._ticks_per_s)
        except (OSError, ValueError) as exc:
            log.warning("cannot read CPU activity from %s: %s", self._procfs, exc)
            cpu_now, uptime = None, None
        cpu_before, self._previous_cpu = self._previous_cpu, cpu_now
        since_ticks, self._previous_uptime_ticks = self._previous_uptime_ticks, uptime

        tagged = dict(plan.tagged)
        gpu_pids = (
            {process.pid for gpu in gpus for process in gpu.processes}
            if self._detect_cgroups
            else set()
        )
        table = self._process_table(tagged, gpu_pids) if tagged or gpu_pids else {}
        tracked = track(tagged, table, since_ticks)
        self._job_processes = len(tracked.owner_of_pid)
        jobs_us: dict[str, int] = {
            job_id: self._us(max(0, sum(per_pid.values())))
            for job_id, per_pid in tracked.cpu_ticks.items()
        }
        owner_of_pid = dict(tracked.owner_of_pid)
        activity = Activity(None, owner_of_pid, tracked.alive)
        if self._detect_cgroups:
            activity = self._measure_cgroups(plan, tracked, table, jobs_us, gpus, now)
        if cpu_now is None or cpu_before is None:
            return activity
        busy_us = self._us(max(0, cpu_now.busy - cpu_before.busy))
        idle_us = self._us(max(0, cpu_now.idle - cpu_before.idle))
        cpu = CpuActivity(
            busy_us=busy_us,
            idle_us=idle_us,
            jobs_us=jobs_us,
            held_us=self._held_us(activity, busy_us + idle_us),
        )
        return dataclasses.replace(activity, cpu=cpu)

    def _process_table(
        self, tagged: Mapping[str, JobProcesses], gpu_pids: set[int]
    ) -> Mapping[int, ProcStat]:
        """The processes attribution needs: every tagged job's tree and the GPU processes."""
        machine = self._rescan.machine_processes  # None: not counted yet, a walk is likely
        walk_pays = machine is None or self._job_processes * WALK_COST < machine
        if self._children_lists and walk_pays:
            roots = [pid for job in tagged.values() for pid, _start in (*job.roots, *job.members)]
            table = read_process_tree(self._procfs, roots)
            if table is not None:
                for pid, rescanned in self._rescan.next_slice().items():
                    table.setdefault(pid, rescanned)
                for pid in gpu_pids - table.keys():
                    if (stat := read_pid_stat(self._procfs, pid)) is not None:
                        table[pid] = stat
                return table
            self._children_lists = False
            log.info(
                "%s has no task/*/children lists (CONFIG_PROC_CHILDREN): every sample reads "
                "the whole process table",
                self._procfs,
            )
        table = read_process_table(self._procfs)
        self._rescan.read_whole(table)
        return table

    def _held_us(self, activity: Activity, capacity_us: int) -> dict[str, int]:
        """The CPU capacity each cgroup job with a reservation holds over the interval, less
        what the tagged jobs nested in it used (they hold that themselves)."""
        held: dict[str, int] = {}
        node_millicpus = self._node_cpus * 1000
        for job_id, millicpus in activity.reserved_millicpus.items():
            reserved_us = millicpus * capacity_us // node_millicpus
            held[job_id] = max(0, reserved_us - activity.nested_us.get(job_id, 0))
        return held

    def _us(self, ticks: int) -> int:
        return ticks * US_PER_S // self._ticks_per_s

    def _measure_cgroups(
        self,
        plan: MeasurePlan,
        tracked: TrackedSample,
        table: Mapping[int, ProcStat],
        jobs_us: dict[str, int],
        gpus: tuple[GpuDetails, ...],
        now: float,
    ) -> Activity:
        first_scan, self._cgroups_scanned = not self._cgroups_scanned, True
        found = {job.job_id: job for job in discover_cgroup_jobs(self._cgroup_root)}
        new = []
        for job_id, cgroup in found.items():
            if job_id in plan.known or job_id in plan.retired:
                continue
            new.append(NewCgroup(cgroup, user_name(cgroup.uid), _created_at(cgroup, now)))
            # Usage before the first scan (or a restart) is not ours to count; a cgroup born
            # since the previous scan is counted from zero.
            baseline = read_usage_us(cgroup) if first_scan or job_id in plan.resumable else 0
            if baseline is not None:
                self._usage_us[job_id] = baseline

        running = plan.cgroups_running | {item.cgroup.job_id for item in new}
        gone: set[str] = set()
        for job_id in sorted(running):
            usage = read_usage_us(found[job_id]) if job_id in found else None
            if usage is None:
                gone.add(job_id)
            if usage is None or job_id in plan.cgroups_stopping:
                self._usage_us.pop(job_id, None)
                continue
            before = self._usage_us.get(job_id, usage)
            jobs_us[job_id] = max(0, usage - before)
            self._usage_us[job_id] = usage
        cgroups = [found[job_id] for job_id in sorted(running) if job_id in found]
        owner_of_pid = dict(tracked.owner_of_pid)
        nested_us: dict[str, int] = {}
        reserved: dict[str, int] = {}
        for cgroup in cgroups:
            if cgroup.job_id in jobs_us:
                millicpus = read_reserved_millicpus(cgroup, self._cgroup_root, self._node_cpus)
                if millicpus is not None:
                    reserved[cgroup.job_id] = millicpus
        if cgroups:
            # A tagged job inside a Slurm job or pod: its CPU time is the tagged job's only.
            self._pid_cgroups = {
                identity: paths
                for identity, paths in self._pid_cgroups.items()
                if identity[0] in table
            }
            for per_pid in tracked.cpu_ticks.values():
                for pid, ticks in per_pid.items():
                    container = self._cgroup_job_of(pid, table, cgroups)
                    if container is not None and container.job_id in jobs_us:
                        used = self._us(ticks)
                        jobs_us[container.job_id] = max(0, jobs_us[container.job_id] - used)
                        nested_us[container.job_id] = nested_us.get(container.job_id, 0) + used
            for gpu in gpus:
                for process in gpu.processes:
                    if process.pid not in owner_of_pid:
                        container = self._cgroup_job_of(process.pid, table, cgroups)
                        if container is not None:
                            owner_of_pid[process.pid] = container.job_id
        return Activity(
            None,
            owner_of_pid,
            tracked.alive,
            tuple(new),
            frozenset(gone),
            first_scan,
            found,
            reserved,
            nested_us,
        )

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


def _created_at(cgroup: CgroupJob, now: float) -> float:
    directory: Path = cgroup.directory
    try:
        return min(now, directory.stat().st_ctime)
    except OSError:
        return now
