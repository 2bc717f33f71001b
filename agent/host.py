"""Facts about the host, through psutil (the well-kept way), for `carbonscope probe`.

psutil reads ``psutil.PROCFS_PATH``: it is pointed at the configured procfs root first, so a
container reading the host's /proc (``procfs_root = "/host/proc"``) reports the host.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class HostFacts:
    logical_cpus: int | None
    physical_cores: int | None
    memory_total_bytes: int | None
    boot_time_unix_s: float | None


def host_facts(procfs: Path = Path("/proc")) -> HostFacts:
    psutil.PROCFS_PATH = os.fspath(procfs)
    with warnings.catch_warnings():  # a partial meminfo makes psutil warn about fields we ignore
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            memory: int | None = int(psutil.virtual_memory().total)
        except (OSError, KeyError, ValueError):
            memory = None
    try:
        boot: float | None = float(psutil.boot_time())
    except (OSError, RuntimeError, ValueError):
        boot = None
    return HostFacts(
        logical_cpus=psutil.cpu_count(logical=True),
        physical_cores=psutil.cpu_count(logical=False),
        memory_total_bytes=memory,
        boot_time_unix_s=boot,
    )
