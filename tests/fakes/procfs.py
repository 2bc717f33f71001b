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

    def write_stat(self) -> None:
        # user nice system idle iowait irq softirq steal guest guest_nice
        user, system = self.busy // 2, self.busy - self.busy // 2
        lines = [f"cpu  {user} 0 {system} {self.idle} 0 0 0 0 0 0"]
        lines += [f"cpu{i} 0 0 0 0 0 0 0 0 0 0" for i in range(self.threads)]
        lines += ["intr 0", "ctxt 0", "btime 1700000000", "processes 1"]
        (self.root / "stat").write_text("\n".join(lines) + "\n")

    def tick(self, busy: int, idle: int) -> None:
        """Let busy and idle jiffies pass (summed over all CPUs)."""
        self.busy += busy
        self.idle += idle
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
