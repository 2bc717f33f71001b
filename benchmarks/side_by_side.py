"""`make bench`, side by side: carbonscope against node_exporter's RAPL collector and
codecarbon's OfflineEmissionsTracker on the same fake tree in the same run, then a fleet node
and the scaling with processes and jobs. One table, PASS/FAIL per target (docs/performance.md).

BENCH_SECONDS (30) is each measured window, BENCH_REPEATS (3) the repeats of the side-by-side
scenarios; figures are medians with the spread (min-max) over repeats.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.agents import Run, carbonscope, codecarbon, node_exporter
from carbonscope.client import JobClient
from tests.daemon import Daemon
from tests.fakes.nvml import FakeGpu, FakeNvml, build_library
from tests.fakes.powercap import two_socket_server

SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
JOB_LIMITS = "[jobs]\nmax_created_per_minute = 1000\nmax_running_per_user = 1000\n"

Row = tuple[str, str, str, str, str, str, str]


@contextmanager
def sleepers(count: int) -> Iterator[list[int]]:
    """``count`` real sleeping processes on this machine: a busy node's process table."""
    processes = [subprocess.Popen(["sleep", "3600"]) for _ in range(count)]
    try:
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


def eight_gpus(directory: Path, pids: list[int]) -> dict[str, str]:
    """The fake libnvidia-ml.so.1 serving 8 GPUs with 4 compute processes each."""
    nvml = FakeNvml(build_library(directory).parent, directory / "nvml.state")
    nvml.gpus = [
        FakeGpu(
            energy_mj=1_000_000 * (i + 1),
            processes=[(pid, 2 * 1024**3, 20) for pid in pids[4 * i : 4 * i + 4]],
        )
        for i in range(8)
    ]
    nvml.write()
    return nvml.env


def jobs_on(pids: list[int], count: int) -> Callable[[Daemon], None]:
    def register(daemon: Daemon) -> None:
        client = JobClient(daemon.socket, timeout_s=10)
        for index in range(count):
            client.start(f"bench-{index}", {"team": "bench"}, pids=[pids[index % len(pids)]])

    return register


def median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def figure(runs: list[Run], field: str, digits: int = 2) -> str:
    values = [getattr(run, field) for run in runs]
    mid = statistics.median(values)
    if len(values) == 1:
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def compare(
    scenario: str,
    measure: str,
    ours: list[Run],
    peers: list[Run],
    field: str,
    peer_field: str | None = None,
    limit: float | None = None,
) -> Row:
    """A row: our figure, the peer's, the ratio of medians, and the ratio target if any."""
    peer_field = peer_field or field
    mine, theirs = median(ours, field), median(peers, peer_field)
    ratio = mine / theirs if theirs else float("nan")
    target = result = "-"
    if limit is not None:
        target = f"<= {limit:g}x"
        result = "PASS" if ratio <= limit else "FAIL"
    return (
        scenario,
        measure,
        figure(ours, field),
        figure(peers, peer_field),
        f"{ratio:.2f}x",
        target,
        result,
    )


def absolute(
    scenario: str, measure: str, ours: list[Run], field: str, limit: float | None = None
) -> Row:
    mine = median(ours, field)
    target = result = "-"
    if limit is not None:
        target = f"<= {limit:g}"
        result = "PASS" if mine <= limit else "FAIL"
    return scenario, measure, figure(ours, field), "-", "-", target, result


def main() -> int:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sysfs = tmp / "sys"
        two_socket_server(sysfs, with_psys=False, with_mmio=True)

        def ours(name: str, **kwargs: object) -> Run:
            workdir = tmp / name
            workdir.mkdir(exist_ok=True)
            return carbonscope(workdir, sysfs, SECONDS, **kwargs)  # type: ignore[arg-type]

        plain = [ours(f"rapl-{i}") for i in range(REPEATS)]
        exporters = [node_exporter(sysfs, SECONDS) for _ in range(REPEATS)]
        trackers = [codecarbon(sysfs, SECONDS) for _ in range(REPEATS)]
        rapl = "RAPL only vs node_exporter"
        rows += [
            compare(rapl, "CPU % of a core", plain, exporters, "cpu_pct", limit=1.0),
            compare(rapl, "RSS MiB", plain, exporters, "rss_mib"),
            absolute(rapl, "RSS MiB (target)", plain, "rss_mib", limit=40.0),
            compare(rapl, "scrape p50 ms", plain, exporters, "scrape_p50_ms"),
            compare(rapl, "scrape p99 ms", plain, exporters, "scrape_p99_ms", limit=1.0),
            absolute(rapl, "sample mean ms", plain, "sample_mean_ms"),
            absolute(rapl, "sample p99 ms", plain, "sample_p99_ms"),
            compare(rapl, "series", plain, exporters, "series"),
            compare(rapl, "start-up s (first answer)", plain, exporters, "startup_s"),
        ]
        cc = "vs CodeCarbon, 1 s"
        rows += [
            compare(cc, "CPU % of a core", plain, trackers, "cpu_pct", limit=0.5),
            compare(cc, "RSS MiB", plain, trackers, "rss_mib", limit=0.5),
            compare(cc, "time to first reading s", plain, trackers, "startup_s", limit=0.5),
        ]

        with sleepers(1000) as pids:
            env = eight_gpus(tmp / "nvml", pids)
            fleet = [
                ours(f"fleet-{i}", config=JOB_LIMITS, env=env, before_window=jobs_on(pids, 100))
                for i in range(REPEATS)
            ]
        node = "fleet node (8 GPUs, +1000 procs, 100 jobs)"
        rows += [
            absolute(node, "CPU % of a core", fleet, "cpu_pct", limit=1.0),
            absolute(node, "sample mean ms", fleet, "sample_mean_ms"),
            absolute(node, "sample p99 ms", fleet, "sample_p99_ms", limit=10.0),
            absolute(node, "scrape p50 ms", fleet, "scrape_p50_ms"),
            absolute(node, "scrape p99 ms", fleet, "scrape_p99_ms", limit=5.0),
            absolute(node, "peak RSS MiB", fleet, "peak_rss_mib", limit=60.0),
            absolute(node, "series", fleet, "series"),
        ]

        by_processes: dict[int, Run] = {}
        for extra in (100, 1000, 5000):
            with sleepers(extra) as pids:
                run = ours(f"procs-{extra}", config=JOB_LIMITS, before_window=jobs_on(pids, 100))
            by_processes[extra] = run
            scaling = f"scaling: +{extra} procs, 100 jobs"
            rows.append(absolute(scaling, "sample mean ms", [run], "sample_mean_ms"))
            rows.append(absolute(scaling, "CPU % of a core", [run], "cpu_pct"))
        flat = by_processes[5000].sample_mean_ms / by_processes[1000].sample_mean_ms
        rows.append(
            (
                "scaling: processes",
                "sample mean, 5000 / 1000 procs",
                f"{flat:.2f}x",
                "-",
                "-",
                "<= 1.2x",
                "PASS" if flat <= 1.2 else "FAIL",
            )
        )
        with sleepers(1000) as pids:
            for jobs in (10, 100, 500):
                run = ours(f"jobs-{jobs}", config=JOB_LIMITS, before_window=jobs_on(pids, jobs))
                scaling = f"scaling: +1000 procs, {jobs} jobs"
                rows.append(absolute(scaling, "sample mean ms", [run], "sample_mean_ms"))
                rows.append(absolute(scaling, "CPU % of a core", [run], "cpu_pct"))

    print(
        f"side by side on {platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or ''}"
        f" {platform.release()}; windows of {SECONDS:g} s, {REPEATS} repeats"
    )
    header = ("scenario", "measure", "carbonscope", "peer", "ratio", "target", "result")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    return 1 if any(row[6] == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
