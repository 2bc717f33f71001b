"""Benchmarks for the architecture's promises: a hung polled source never delays a sample, and
the job API answers while the sampler scans a large /proc (the scan runs outside its lock)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.timing import timed
from carbonscope.carbon.intensity import StaticIntensityProvider
from carbonscope.carbon.location import ResolvedLocation
from carbonscope.daemon.runner import SWITCH_INTERVAL_S
from carbonscope.daemon.services import ServerService
from carbonscope.jobs.api import JobApiServer
from carbonscope.jobs.registry import Caller, JobRegistry, JobsSettings
from carbonscope.jobs.validation import JobRequest
from carbonscope.sampling.monitor import CarbonSettings, Monitor
from carbonscope.sensors.base import (
    Component,
    DeviceKey,
    Discovery,
    PowerKind,
    PowerReading,
    Sensor,
    SensorRead,
    SensorRoots,
)
from carbonscope.sensors.polled import PolledSensor
from carbonscope.sensors.rapl import RaplSensor
from tests.daemon import short_socket_path
from tests.fakes.procfs import FakeProcess, make_procfs, write_process, write_uptime

Row = tuple[str, str, str, str, str]
ROOT = Caller(1, 0, 0)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def row(label: str, samples: list[float], target: str) -> Row:
    median = statistics.median(samples) * 1e6
    return label, f"{median:.0f} us", f"{p99(samples) * 1e6:.0f} us", str(len(samples)), target


class HungMeter:
    """A BMC whose every read hangs until the benchmark ends."""

    name = "bmc"
    key = DeviceKey(Component.PLATFORM, "bmc", "bmc")

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def discover(self) -> Discovery:
        return Discovery(devices=(self.key,))

    def read(self) -> SensorRead:
        self.release.wait(60)
        return SensorRead((PowerReading(self.key, 100_000_000, PowerKind.INSTANT),))


def _monitor(sensors: list[Sensor]) -> Monitor:
    return Monitor(
        [(sensor, sensor.discover()) for sensor in sensors],
        StaticIntensityProvider(ResolvedLocation("FR", "config", "")),
        CarbonSettings(1.2, None),
        interval_s=1.0,
        version="bench",
    )


def hung_polled_source_rows(sysfs: Path) -> list[Row]:
    """Sample p99 with a polled source whose reads hang past their timeout, against the same
    sample without it, in the same run."""
    release = threading.Event()
    polled = PolledSensor(HungMeter(release), period_s=0.01, timeout_s=0.05)
    plain = _monitor([RaplSensor(SensorRoots(sysfs=sysfs))])
    with_hung = _monitor([RaplSensor(SensorRoots(sysfs=sysfs)), polled])
    polled.start()  # every read hangs: the poller times out and then refuses to start another
    try:
        baseline = timed(plain.sample, 2000)
        hung = timed(with_hung.sample, 2000)
    finally:
        release.set()
        polled.stop()
    limit = 1.5 * p99(baseline) + 50e-6
    verdict = "PASS" if p99(hung) <= limit else "FAIL"
    return [
        row("sample (5 zones), reference for the next row", baseline, "-"),
        row(
            "sample (5 zones) + a polled source hung in its read",
            hung,
            f"{verdict}: p99 <= 1.5x reference + 50 us ({limit * 1e6:.0f} us)",
        ),
    ]


def job_api_under_scan_rows(sysfs: Path, procfs: Path) -> list[Row]:
    """GET /v1/jobs/ID over the Unix socket while a sampler scans 5,000 fake processes
    back to back (100 tagged jobs of 50 processes)."""
    make_procfs(procfs, threads=64)
    write_uptime(procfs, 1000.0)
    for pid in range(100, 5100):
        leader = pid - (pid - 100) % 50
        write_process(procfs, FakeProcess(pid, ppid=1 if pid == leader else leader, uid=0))
    roots = SensorRoots(sysfs=sysfs, procfs=procfs)
    registry = JobRegistry(JobsSettings(detect_cgroups=False, max_exported=100), roots, None)
    job_ids = [
        registry.register(ROOT, JobRequest(f"job{n}", (), (100 + 50 * n,))).job_id
        for n in range(100)
    ]
    sensor = RaplSensor(roots)
    monitor = Monitor(
        [(sensor, sensor.discover())],
        StaticIntensityProvider(ResolvedLocation("FR", "config", "")),
        CarbonSettings(1.2, None),
        interval_s=1.0,
        version="bench",
        attributor=registry,
    )
    path = short_socket_path()
    default_switch_s = sys.getswitchinterval()
    server = ServerService("job API", lambda: JobApiServer(path, registry))
    server.start()
    stop = threading.Event()
    scans: list[float] = []

    def sample_forever() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            monitor.sample()
            scans.append(time.perf_counter() - start)

    sampler = threading.Thread(target=sample_forever, daemon=True)
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as `carbonscope run` sets it
    client = (  # another process, as a training script is: only the agent's side is shared
        "import json, sys, time\n"
        "from carbonscope.client import JobClient\n"
        f"client, ids = JobClient({str(path)!r}), {job_ids!r}\n"
        "out = []\n"
        "for n in range(1000):\n"
        "    start = time.perf_counter()\n"
        "    client.get(ids[n % len(ids)])\n"
        "    out.append(time.perf_counter() - start)\n"
        "    time.sleep(0.002)  # a caller paced like real clients, not a second busy core\n"
        "print(json.dumps(out))\n"
    )
    try:
        sampler.start()
        time.sleep(0.2)
        result = subprocess.run(
            [sys.executable, "-c", client], capture_output=True, text=True, check=True
        )
        latencies = [float(x) for x in json.loads(result.stdout)]
    finally:
        stop.set()
        sampler.join(10)
        server.stop()
        sys.setswitchinterval(default_switch_s)
    verdict = "PASS" if p99(latencies) <= 0.005 else "FAIL"
    return [
        row("sample with attribution, 5000 processes, 100 jobs (concurrent)", scans, "-"),
        row("job API GET while that sampler runs", latencies, f"{verdict}: p99 <= 5 ms"),
    ]
