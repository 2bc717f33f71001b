"""The fake NVML: build libnvidia-ml.so.1 from fake_nvml.c, and write the state it serves."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).with_name("fake_nvml.c")

# nvml.h return codes
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
DRIVER_NOT_LOADED = 9
GPU_IS_LOST = 15
UNKNOWN = 999
HANG = 100_000  # not an NVML code: the fake blocks the call until the error is removed


def build_library(directory: Path) -> Path:
    """Compile the fake into directory/libnvidia-ml.so.1 (gcc is on every machine we test on)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("gcc not found: the fake NVML library cannot be built")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "libnvidia-ml.so.1"
    subprocess.run(
        [
            compiler,
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-Werror",
            "-Wl,-soname,libnvidia-ml.so.1",
            "-o",
            str(target),
            str(SOURCE),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""
    energy_mj: int = 0
    power_mw: int = 0
    limit_mw: int = 700_000
    util_gpu: int = 0
    util_mem: int = 0
    mem_total: int = 80 * 1024**3
    mem_used: int = 0
    mig: bool = False
    mig_count: int = 0
    processes: list[tuple[int, int, int]] = field(default_factory=list)  # (pid, used bytes, sm %)
    errors: dict[str, int] = field(default_factory=dict)  # NVML function (or "*") -> return code


@dataclass
class FakeNvml:
    """Writes the state file the fake library re-reads on every call."""

    library_dir: Path
    state_path: Path
    gpus: list[FakeGpu] = field(default_factory=list)
    library_errors: dict[str, int] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            "LD_LIBRARY_PATH": str(self.library_dir),
            "CARBONSCOPE_FAKE_NVML_STATE": str(self.state_path),
        }

    def write(self) -> None:
        lines = [f"count {len(self.gpus)}"]
        for i, gpu in enumerate(self.gpus):
            uuid = gpu.uuid or f"GPU-{i:08x}-fake-4000-8000-{i:012x}"
            lines.append(
                f"gpu {i} name={gpu.name.replace(' ', '_')} uuid={uuid} energy_mj={gpu.energy_mj} "
                f"power_mw={gpu.power_mw} limit_mw={gpu.limit_mw} util_gpu={gpu.util_gpu} "
                f"util_mem={gpu.util_mem} mem_total={gpu.mem_total} mem_used={gpu.mem_used} "
                f"mig={int(gpu.mig)} mig_count={gpu.mig_count}"
            )
            lines += [f"proc {i} {pid} {used} {sm}" for pid, used, sm in gpu.processes]
            lines += [f"err {i} {function} {code}" for function, code in gpu.errors.items()]
        lines += [f"err -1 {function} {code}" for function, code in self.library_errors.items()]
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.state_path)
