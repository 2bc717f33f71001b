"""carbonscope benchmarks: what one sample, one render and one scrape cost, and daemon memory.

Run with `make bench`. Targets (docs/architecture.md): a sample well under 1 ms per zone,
a scrape that does no work beyond sending bytes, and a resident set under 100 MiB.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.architecture import hung_polled_source_rows, job_api_under_scan_rows
from benchmarks.history import history_rows
from benchmarks.measure import memory_mib
from benchmarks.timing import timed
from carbonscope.accounting.intensity_log import IntensityLog
from carbonscope.carbon.feed import FeedSettings, IntensityFeed
from carbonscope.carbon.intensity import IntensityProvider, StaticIntensityProvider
from carbonscope.carbon.location import ResolvedLocation
from carbonscope.carbon.providers.file import IntensityFileSource
from carbonscope.exporters.prometheus import render
from carbonscope.jobs.registry import Caller, JobRegistry, JobsSettings
from carbonscope.jobs.validation import JobRequest
from carbonscope.sampling.monitor import CarbonSettings, Monitor
from carbonscope.sensors.base import SensorRoots
from carbonscope.sensors.rapl import RaplSensor
from tests.daemon import Daemon
from tests.fakes.powercap import FakePowercap
from tests.fakes.procfs import FakeProcess, make_procfs, write_process, write_uptime


def timing_row(label: str, samples: list[float]) -> tuple[str, str, str, str, str]:
    median = statistics.median(samples) * 1e6
    p99 = statistics.quantiles(samples, n=100)[98] * 1e6
    return label, f"{median:.0f} us", f"{p99:.0f} us", str(len(samples)), "-"


def server_tree(sysfs: Path, sockets: int) -> FakePowercap:
    tree = FakePowercap(sysfs)
    for socket in range(sockets):
        tree.add_zone((socket,), f"package-{socket}", 1000)
        tree.add_zone((socket, 0), "dram", 1000)
    tree.add_zone((sockets,), "psys", 1000)
    return tree


def job_sampler(sysfs: Path, procfs: Path, jobs: int | None) -> Callable[[], object]:
    """A monitor with the job registry: 5 RAPL zones, tagged jobs tracked through procfs."""
    roots = SensorRoots(sysfs=sysfs, procfs=procfs)
    settings = JobsSettings(detect_cgroups=False, max_created_per_minute=10_000)
    registry = JobRegistry(settings, roots, ledger=None)
    if jobs is None:
        registry.register(Caller(1, 0, 0), JobRequest("bench", (), (os.getpid(),)))
    else:
        make_procfs(procfs, threads=64)
        write_uptime(procfs, 1000.0)
        for pid in range(100, 2100):  # 200 trees of 10: a leader and its 9 children
            leader = pid - (pid - 100) % 10
            write_process(procfs, FakeProcess(pid, ppid=1 if pid == leader else leader, uid=0))
        for job in range(jobs):
            registry.register(Caller(1, 0, 0), JobRequest(f"job{job}", (), (100 + 10 * job,)))
    return rapl_monitor(roots, registry).sample


def rapl_monitor(
    roots: SensorRoots,
    attributor: JobRegistry | None = None,
    intensity: IntensityProvider | None = None,
    intensity_log: IntensityLog | None = None,
) -> Monitor:
    sensor = RaplSensor(roots)
    return Monitor(
        [(sensor, sensor.discover())],
        intensity or StaticIntensityProvider(ResolvedLocation("FR", "config", "")),
        CarbonSettings(1.2, None),
        interval_s=1.0,
        version="bench",
        attributor=attributor,
        intensity_log=intensity_log,
    )


def year_of_hours(path: Path) -> IntensityFeed:
    """A file feed replaying a year of hourly values (8760 points), loaded once."""
    start = time.time() - 180 * 86400
    rows = (f"{start + hour * 3600:.0f},{200 + hour % 24 * 10}" for hour in range(8760))
    path.write_text("timestamp,g_per_kwh\n" + "\n".join(rows) + "\n")
    static = StaticIntensityProvider(ResolvedLocation("FR", "config", ""))
    return IntensityFeed(IntensityFileSource(path, "FR"), static, FeedSettings(900, 7200))


def main() -> None:
    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for sockets in (2, 8):
            sysfs = Path(tmp) / f"sys{sockets}"
            server_tree(sysfs, sockets)
            monitor = rapl_monitor(SensorRoots(sysfs=sysfs))
            zones = 2 * sockets + 1
            sample = timed(monitor.sample, 2000)
            snapshot = monitor.sample()
            rendering = timed(lambda snapshot=snapshot: render(snapshot), 2000)
            rows.append(timing_row(f"sample ({zones} RAPL zones)", sample))
            rows.append(timing_row(f"render /metrics ({zones} zones)", rendering))

        feed = year_of_hours(Path(tmp) / "year.csv")
        rows.append(
            timing_row(
                "load a year of hourly intensity (file, 8760 rows)",
                timed(lambda: IntensityFileSource(Path(tmp) / "year.csv", "FR").fetch(), 20),
            )
        )
        feed.refresh_once()
        live = rapl_monitor(SensorRoots(sysfs=Path(tmp) / "sys2"), None, feed, IntensityLog(None))
        rows.append(
            timing_row("sample, live feed + intensity log (5 zones)", timed(live.sample, 2000))
        )

        for label, procfs, jobs in (
            ("this machine's /proc, 1 job", Path("/proc"), None),
            ("fake /proc: 2000 processes, 200 jobs", Path(tmp) / "proc", 200),
        ):
            sample = timed(job_sampler(Path(tmp) / "sys2", procfs, jobs), 300)
            rows.append(timing_row(f"sample with attribution ({label})", sample))

        rows += history_rows(Path(tmp), rapl_monitor(SensorRoots(sysfs=Path(tmp) / "sys2")))
        rows += hung_polled_source_rows(Path(tmp) / "sys2")
        rows += job_api_under_scan_rows(Path(tmp) / "sys2", Path(tmp) / "proc5000")

        sysfs = Path(tmp) / "daemon-sys"
        server_tree(sysfs, 2)
        daemon = Daemon(
            ["--sysfs-root", str(sysfs), "--interval", "100ms"],
            workdir=Path(tmp),
            env={"CARBONSCOPE_CONFIG": ""},
        )
        try:
            daemon.wait_ready()
            daemon.samples_after(20)
            scrape = timed(
                lambda: urllib.request.urlopen(daemon.url + "/metrics", timeout=5).read(), 500
            )
            rows.append(timing_row("scrape over HTTP (5 zones)", scrape))
            rows.append(
                (
                    "daemon RSS after warm-up",
                    f"{memory_mib(daemon.process.pid)[0]:.1f} MiB",
                    "-",
                    "-",
                    "-",
                )
            )
        finally:
            daemon.stop()

    header = ("benchmark", "median", "p99", "runs", "target")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    if any(row[4].startswith("FAIL") for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
