"""Readers for the process side of procfs: CPU time of the whole machine and of processes.

Every function takes the procfs root, so tests point them at a fake tree and containers at
/host/proc. Formats are the kernel's (proc(5)); times are in clock ticks (USER_HZ).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuTimes:
    """Aggregate jiffies of all CPUs: busy and total. Busy is user + nice + system + irq +
    softirq: this machine's own work. Steal (a hypervisor running another tenant on this
    vCPU) is in the total but not busy: it is no work of this VM's. Guest time is already
    inside user and nice."""

    busy: int
    total: int

    @property
    def idle(self) -> int:
        return self.total - self.busy


def parse_proc_stat(text: str) -> tuple[CpuTimes, int]:
    """Aggregate CPU jiffies and the number of CPUs from /proc/stat."""
    aggregate: CpuTimes | None = None
    cpus = 0
    for line in text.splitlines():
        if line.startswith("cpu "):
            # user nice system idle iowait irq softirq steal [guest guest_nice: inside user/nice]
            fields = [int(v) for v in line.split()[1:]]
            values = fields[:8] + [0] * (8 - len(fields[:8]))
            not_busy = values[3] + values[4] + values[7]  # idle, iowait, steal
            total = sum(values)
            aggregate = CpuTimes(busy=total - not_busy, total=total)
        elif line.startswith("cpu") and line[3:4].isdigit():
            cpus += 1
    if aggregate is None:
        raise ValueError("no aggregate 'cpu' line")
    return aggregate, max(cpus, 1)


def read_cpu_stat(procfs: Path) -> tuple[CpuTimes, int]:
    """The aggregate CPU times and the number of CPUs, from /proc/stat."""
    return parse_proc_stat((procfs / "stat").read_text(encoding="ascii", errors="replace"))


@dataclass(frozen=True)
class ProcStat:
    """One process from /proc/PID/stat. ``start_ticks`` is its start time after boot."""

    pid: int
    ppid: int
    start_ticks: int
    own_ticks: int  # utime + stime, all threads
    reaped_ticks: int  # cutime + cstime: children it has waited for
    threads: int = 1

    @property
    def identity(self) -> tuple[int, int]:
        """(pid, start time): unique for the life of the machine, unlike a PID alone."""
        return self.pid, self.start_ticks


def parse_pid_stat(text: str) -> ProcStat:
    """proc(5) /proc/PID/stat. The command name may hold spaces and ')': split after the last."""
    pid_part, _, rest = text.rpartition(")")
    pid = int(pid_part.split("(", 1)[0])
    fields = rest.split()
    # fields[0] is field 3 (state): field N of proc(5) is fields[N - 3]
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        start_ticks=int(fields[19]),
        own_ticks=int(fields[11]) + int(fields[12]),
        reaped_ticks=int(fields[13]) + int(fields[14]),
        threads=int(fields[17]),
    )


def _read_stat_file(path: str) -> ProcStat | None:
    """One /proc/PID/stat through plain os calls (the table scan does thousands per sample,
    and pathlib's per-call overhead dominated it: benchmarks/run.py). None once it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        raw = os.read(fd, 4096)
    except ProcessLookupError:  # exited between open and read
        return None
    finally:
        os.close(fd)
    try:
        return parse_pid_stat(raw.decode(errors="replace"))
    except (ValueError, IndexError):
        return None


def read_pid_stat(procfs: Path, pid: int) -> ProcStat | None:
    """None when the process is gone (or was never there)."""
    return _read_stat_file(f"{os.fspath(procfs)}/{pid}/stat")


# The scan is pure Python between tiny syscalls: without a pause, another thread waiting for the
# interpreter (a job-API request) waits for the whole scan. Every SCAN_BATCH processes it sleeps
# SCAN_PAUSE_S with the interpreter released (benchmarks/architecture.py measures both sides).
SCAN_BATCH = 128
SCAN_PAUSE_S = 0.0001


def list_pids(procfs: Path) -> list[int]:
    """The PIDs in procfs now (its numeric entries); [] without a procfs."""
    try:
        return [int(name) for name in os.listdir(procfs) if name.isdigit()]
    except FileNotFoundError:
        return []


def read_pid_stats(procfs: Path, pids: Iterable[int]) -> dict[int, ProcStat]:
    """The stat of each of ``pids`` still running. Processes that exit meanwhile are absent."""
    table: dict[int, ProcStat] = {}
    root = os.fspath(procfs)
    for index, pid in enumerate(pids, 1):
        if (stat := _read_stat_file(f"{root}/{pid}/stat")) is not None:
            table[stat.pid] = stat
        if index % SCAN_BATCH == 0:
            time.sleep(SCAN_PAUSE_S)
    return table


def read_process_table(procfs: Path) -> dict[int, ProcStat]:
    """Every process now. Processes that exit during the scan are simply absent."""
    return read_pid_stats(procfs, list_pids(procfs))


def _read_children(root: str, pid: int, threads: int) -> list[int] | None:
    """Children of every thread of ``pid`` (/proc/PID/task/TID/children, proc(5)); [] once the
    process is gone; None when the kernel has no such file (CONFIG_PROC_CHILDREN off). A
    single-threaded process (most of them) costs one open and read, no listing."""
    if threads == 1:
        tids = [str(pid)]
    else:
        try:
            tids = os.listdir(f"{root}/{pid}/task")
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            return []
    children: list[int] = []
    for tid in tids:
        try:
            fd = os.open(f"{root}/{pid}/task/{tid}/children", os.O_RDONLY)
        except (FileNotFoundError, ProcessLookupError):
            if tid == str(pid) and os.path.isdir(f"{root}/{pid}/task/{tid}"):
                return None  # the main thread is there, its children file is not
            continue  # a thread that just ended
        try:
            raw = chunk = os.read(fd, 1 << 16)
            while len(chunk) == 1 << 16:  # a seq_file read gives all it has, up to the size
                chunk = os.read(fd, 1 << 16)
                raw += chunk
        except ProcessLookupError:
            continue
        finally:
            os.close(fd)
        children.extend(int(word) for word in raw.split())
    return children


def read_process_tree(procfs: Path, roots: Iterable[int]) -> dict[int, ProcStat] | None:
    """The processes ``roots`` and all their descendants, found through the kernel's children
    lists: the cost follows the jobs' processes, not the machine's. None when the kernel has
    no children lists (the caller scans the whole table instead)."""
    root = os.fspath(procfs)
    table: dict[int, ProcStat] = {}
    frontier = list(dict.fromkeys(roots))
    while frontier:
        pid = frontier.pop()
        if pid in table or (stat := _read_stat_file(f"{root}/{pid}/stat")) is None:
            continue
        table[pid] = stat
        children = _read_children(root, pid, stat.threads)
        if children is None:
            return None
        frontier.extend(child for child in children if child not in table)
        if len(table) % SCAN_BATCH == 0:
            time.sleep(SCAN_PAUSE_S)
    return table


def read_pid_uid(procfs: Path, pid: int) -> int | None:
    """The real uid of a process (the ``Uid:`` line of /proc/PID/status), None if it is gone."""
    try:
        text = (procfs / str(pid) / "status").read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def process_owner_uid(procfs: Path, pid: int) -> int | None:
    """The real uid of a live process, through psutil (None if it is gone or a zombie).

    psutil reads ``psutil.PROCFS_PATH``; it is pointed at ``procfs`` first, so a container's
    /host/proc or a test's fake tree is read like the real one."""
    import psutil  # noqa: PLC0415 - the job API's path only, never the sampler's

    psutil.PROCFS_PATH = os.fspath(procfs)
    try:
        return int(psutil.Process(pid).uids().real)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def read_pid_cgroups(procfs: Path, pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as {controllers: path}; cgroup v2's single line has controllers ""."""
    try:
        text = (procfs / str(pid) / "cgroup").read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return {}
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    return paths


def read_uptime_ticks(procfs: Path, clock_ticks_per_s: int) -> int:
    """Seconds since boot, in the unit of ProcStat.start_ticks."""
    seconds = float((procfs / "uptime").read_text().split()[0])
    return int(seconds * clock_ticks_per_s)
