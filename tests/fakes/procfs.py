"""A /proc with just the files the model sensor reads, in the kernel's formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

XEON_GOLD_6126 = "Intel(R) Xeon(R) Gold 6126 CPU @ 2.60GHz"


@dataclass
class FakeProcfs:
    root: Path
    threads: int = 4
    busy: int = 0
    idle: int = 0
    steal: int = 0

    def write_stat(self) -> None:
        # user nice system idle iowait irq softirq steal guest guest_nice
        user, system = self.busy // 2, self.busy - self.busy // 2
        lines = [f"cpu  {user} 0 {system} {self.idle} 0 0 0 {self.steal} 0 0"]
        lines += [f"cpu{i} 0 0 0 0 0 0 0 0 0 0" for i in range(self.threads)]
        lines += ["intr 0", "ctxt 0", "btime 1700000000", "processes 1"]
        (self.root / "stat").write_text("\n".join(lines) + "\n")

    def tick(self, busy: int, idle: int, steal: int = 0) -> None:
        """Let busy, idle and stolen jiffies pass (summed over all CPUs)."""
        self.busy += busy
        self.idle += idle
        self.steal += steal
        self.write_stat()


def make_procfs(
    root: Path,
    cpu_model: str = XEON_GOLD_6126,
    threads: int = 4,
    sockets: int = 1,
    virtualised: bool = False,
    mem_total_kib: int = 16 * 1024 * 1024,
) -> FakeProcfs:
    root.mkdir(parents=True, exist_ok=True)
    flags = "fpu vme de pse tsc msr pae" + (" hypervisor" if virtualised else "")
    blocks = []
    for cpu in range(threads):
        blocks.append(
            "\n".join(
                [
                    f"processor\t: {cpu}",
                    "vendor_id\t: GenuineIntel",
                    f"model name\t: {cpu_model}",
                    f"physical id\t: {cpu % sockets}",
                    f"flags\t\t: {flags}",
                ]
            )
        )
    (root / "cpuinfo").write_text("\n\n".join(blocks) + "\n")
    (root / "meminfo").write_text(f"MemTotal:       {mem_total_kib} kB\nMemFree:        1024 kB\n")
    procfs = FakeProcfs(root, threads=threads)
    procfs.write_stat()
    return procfs


@dataclass
class FakeProcess:
    pid: int
    ppid: int = 1
    start_ticks: int = 100
    utime: int = 0
    stime: int = 0
    cutime: int = 0
    cstime: int = 0
    uid: int = 1000
    cgroup: str = "0::/user.slice"
    comm: str = "python3"


def _children_file(root: Path, pid: int) -> Path:
    """/proc/PID/task/PID/children: the children of the main thread (proc(5))."""
    return root / str(pid) / "task" / str(pid) / "children"


def _edit_children(root: Path, pid: int, add: int | None = None, drop: int | None = None) -> None:
    path = _children_file(root, pid)
    if not path.parent.is_dir():  # a parent not written (yet): remembered for when it is
        if pid <= 1:
            return  # init or the kernel: never a job's process, and the parent of thousands
        path = root / ".children-of-unwritten" / str(pid)
        path.parent.mkdir(exist_ok=True)
    pids = [int(p) for p in path.read_text().split()] if path.exists() else []
    pids = [p for p in pids if p != drop and p != add] + ([add] if add is not None else [])
    path.write_text("".join(f"{p} " for p in pids))  # the kernel's format: "12 34 "


def _old_ppid(directory: Path) -> int | None:
    try:
        return int((directory / "stat").read_text().rpartition(")")[2].split()[1])
    except FileNotFoundError:
        return None


def write_process(root: Path, process: FakeProcess, children_files: bool = True) -> None:
    """/proc/PID/{stat,status,cgroup} as the kernel writes them (proc(5)), and the parent's
    task/*/children kept in step with the ppid (CONFIG_PROC_CHILDREN; ``children_files=False``
    for a kernel without it)."""
    directory = root / str(process.pid)
    old_ppid = _old_ppid(directory)
    directory.mkdir(parents=True, exist_ok=True)
    p = process
    fields = [
        f"{p.pid} ({p.comm}) S {p.ppid} {p.pid} {p.pid} 0 -1 4194560 100 0 0 0",
        f"{p.utime} {p.stime} {p.cutime} {p.cstime} 20 0 1 0 {p.start_ticks}",
        "12345678 1000 18446744073709551615 1 1 0 0 0 0 0 0 0 17 0 0 0 0 0 0",
    ]
    (directory / "stat").write_text(" ".join(fields) + "\n")
    (directory / "status").write_text(
        f"Name:\t{p.comm}\nState:\tS (sleeping)\nPid:\t{p.pid}\nPPid:\t{p.ppid}\n"
        f"Uid:\t{p.uid}\t{p.uid}\t{p.uid}\t{p.uid}\nGid:\t{p.uid}\t{p.uid}\t{p.uid}\t{p.uid}\n"
    )
    (directory / "cgroup").write_text(process.cgroup + "\n")
    if not children_files:
        return
    children = _children_file(root, p.pid)
    if not children.exists():
        children.parent.mkdir(parents=True, exist_ok=True)
        # children written before their parent: the kernel would list them already
        early = root / ".children-of-unwritten" / str(p.pid)
        children.write_text(early.read_text() if early.exists() else "")
        early.unlink(missing_ok=True)
    if old_ppid is not None and old_ppid != p.ppid:
        _edit_children(root, old_ppid, drop=p.pid)  # re-parented
    _edit_children(root, p.ppid, add=p.pid)


def remove_process(root: Path, pid: int) -> None:
    directory = root / str(pid)
    ppid = _old_ppid(directory)
    for name in ("stat", "status", "cgroup"):
        (directory / name).unlink()
    task = directory / "task" / str(pid)
    if task.is_dir():
        (task / "children").unlink(missing_ok=True)
        task.rmdir()
        (directory / "task").rmdir()
    directory.rmdir()
    if ppid is not None:
        _edit_children(root, ppid, drop=pid)


def write_uptime(root: Path, seconds: float) -> None:
    (root / "uptime").write_text(f"{seconds:.2f} {seconds * 3:.2f}\n")
