"""Slurm jobs and Kubernetes pods found from their cgroups: jobs without any tagging.

Layouts recognised (cgroup v2 unified and v1 ``cpu,cpuacct``/``cpuacct`` hierarchies):
- Slurm v2: ``/sys/fs/cgroup/system.slice/slurmstepd.scope/job_<id>/...``
- Slurm v1: ``/sys/fs/cgroup/cpu,cpuacct/slurm/uid_<uid>/job_<id>/...``
- Kubernetes, systemd driver: ``kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice``
  (the pod UID's dashes written as underscores; Guaranteed pods sit directly under
  ``kubepods.slice`` as ``kubepods-pod<uid>.slice``)
- Kubernetes, cgroupfs driver: ``kubepods/<qos>/pod<uid>`` (Guaranteed: ``kubepods/pod<uid>``)
CPU time comes from the cgroup's own accounting: ``cpu.stat`` ``usage_usec`` (v2) or
``cpuacct.usage`` in ns (v1), which includes every process that ever ran in it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_DESCEND = re.compile(
    r"system\.slice|slurm[\w.-]*|uid_\d+|kubepods[\w.-]*|burstable|besteffort|guaranteed"
)
_SLURM_JOB = re.compile(r"job_(\d+)")
_SLURM_UID = re.compile(r"uid_(\d+)")
_POD = re.compile(
    r"(?:kubepods(?:-[a-z]+)?-)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}"
    r"[-_][0-9a-f]{12})(?:\.slice)?"
)
_MAX_DEPTH = 6
V1_CPU_HIERARCHIES = ("cpu,cpuacct", "cpuacct,cpu", "cpuacct")


@dataclass(frozen=True)
class CgroupJob:
    job_id: str  # "slurm-42", "k8s-<pod uid>"
    name: str
    scheduler: str  # "slurm" or "kubernetes"
    directory: Path  # where its accounting files are
    hierarchy_path: str  # as /proc/PID/cgroup writes it: "/system.slice/.../job_42"
    v2: bool
    uid: int | None = None

    @property
    def tags(self) -> tuple[tuple[str, str], ...]:
        if self.scheduler == "slurm":
            return (("scheduler", "slurm"), ("slurm_job_id", self.job_id.removeprefix("slurm-")))
        return (("pod_uid", self.job_id.removeprefix("k8s-")), ("scheduler", "kubernetes"))


def _hierarchies(cgroup_root: Path) -> list[tuple[Path, bool]]:
    """(root of the hierarchy with CPU accounting, is cgroup v2)."""
    for name in V1_CPU_HIERARCHIES:
        if (cgroup_root / name).is_dir():
            return [(cgroup_root / name, False)]
    if (cgroup_root / "cgroup.controllers").is_file():
        return [(cgroup_root, True)]
    return []


def _classify(name: str, ancestors: Sequence[str], directory: Path, v2: bool) -> CgroupJob | None:
    path = "/" + "/".join((*ancestors, name))
    slurm = _SLURM_JOB.fullmatch(name)
    if slurm and any("slurm" in part for part in ancestors):
        uid = next(
            (int(m.group(1)) for part in ancestors if (m := _SLURM_UID.fullmatch(part))), None
        )
        job_id = f"slurm-{slurm.group(1)}"
        return CgroupJob(job_id, job_id, "slurm", directory, path, v2, uid)
    pod = _POD.fullmatch(name)
    if pod and any(part.startswith("kubepods") for part in ancestors):
        uid_text = pod.group(1).replace("_", "-")
        return CgroupJob(f"k8s-{uid_text}", f"pod-{uid_text}", "kubernetes", directory, path, v2)
    return None


def discover_cgroup_jobs(cgroup_root: Path) -> list[CgroupJob]:
    """Every Slurm job and Kubernetes pod cgroup now. Only scheduler-shaped directories are
    entered, so the walk stays cheap on nodes with thousands of cgroups."""
    found: list[CgroupJob] = []
    for root, v2 in _hierarchies(cgroup_root):
        stack: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
        while stack:
            directory, ancestors = stack.pop()
            try:
                entries = sorted(entry for entry in directory.iterdir() if entry.is_dir())
            except OSError:
                continue
            for entry in entries:
                job = _classify(entry.name, ancestors, entry, v2)
                if job is not None:
                    found.append(job)
                elif len(ancestors) < _MAX_DEPTH and _DESCEND.fullmatch(entry.name):
                    stack.append((entry, (*ancestors, entry.name)))
    return sorted(found, key=lambda job: job.job_id)


def read_usage_us(job: CgroupJob) -> int | None:
    """CPU time used by everything that ran in the cgroup, in µs; None once it is gone."""
    try:
        if job.v2:
            for line in (job.directory / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value)
            return None
        return int((job.directory / "cpuacct.usage").read_text().strip()) // 1000
    except (OSError, ValueError):
        return None


def parse_cpu_list(text: str) -> int:
    """How many CPUs a cpuset list names ("0-3,8,10-11" is 7); ValueError if malformed."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        count += (int(last) if last else int(first)) - int(first) + 1
    return count


def read_reserved_millicpus(job: CgroupJob, cgroup_root: Path, node_cpus: int) -> int | None:
    """The CPU capacity the job's cgroup holds, in thousandths of a CPU: the smaller of its
    CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) and its
    cpuset (v2 ``cpuset.cpus.effective``, v1 the cpuset hierarchy's ``cpuset.effective_cpus``
    or ``cpuset.cpus``). None when neither limits it below the whole node: no reservation."""
    limits: list[int] = []
    try:
        if job.v2:
            quota, _, period = (job.directory / "cpu.max").read_text().partition(" ")
            if quota != "max":
                limits.append(int(quota) * 1000 // max(1, int(period)))
        else:
            quota_us = int((job.directory / "cpu.cfs_quota_us").read_text())
            if quota_us > 0:
                period_us = int((job.directory / "cpu.cfs_period_us").read_text())
                limits.append(quota_us * 1000 // max(1, period_us))
    except (OSError, ValueError):
        pass
    cpusets = (
        [job.directory / "cpuset.cpus.effective"]
        if job.v2
        else [
            cgroup_root / "cpuset" / job.hierarchy_path.lstrip("/") / name
            for name in ("cpuset.effective_cpus", "cpuset.cpus")
        ]
    )
    for path in cpusets:
        try:
            cpus = parse_cpu_list(path.read_text())
        except (OSError, ValueError):
            continue
        if cpus > 0:
            limits.append(cpus * 1000)
            break
    held = min(limits, default=None)
    if held is None or held >= node_cpus * 1000:
        return None
    return max(0, held)


def job_of_cgroups(jobs: Sequence[CgroupJob], pid_cgroups: Mapping[str, str]) -> CgroupJob | None:
    """The cgroup job a process sits in, from its /proc/PID/cgroup lines."""
    for job in jobs:
        if job.v2:
            path = pid_cgroups.get("")
        else:
            path = next(
                (p for controllers, p in pid_cgroups.items() if "cpuacct" in controllers), None
            )
        if path is not None and (path + "/").startswith(job.hierarchy_path + "/"):
            return job
    return None
