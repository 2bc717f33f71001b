"""The /metrics exposition: the whole output diffed against a golden file, and promtool-clean."""

from __future__ import annotations

import gzip
import os
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from carbonscope.exporters.prometheus import MetricsServer, render
from carbonscope.jobs.registry import Caller, JobRegistry, JobsSettings
from carbonscope.jobs.validation import JobRequest
from carbonscope.sensors.base import SensorRoots
from carbonscope.sensors.rapl import RaplSensor
from tests.conftest import MonitorFactory, assert_promtool_clean
from tests.fakes.clock import ManualClock
from tests.fakes.intensity import SettableIntensity
from tests.fakes.powercap import two_socket_server
from tests.fakes.procfs import FakeProcess, make_procfs, write_process, write_uptime

GOLDEN = Path(__file__).parent / "golden/two_socket_server.metrics"


def two_socket_exposition(sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock) -> bytes:
    """Two sockets with psys, and one tagged job using a quarter of the busy CPU time."""
    tree = two_socket_server(sysfs)
    procfs = make_procfs(sysfs.parent / "proc")
    write_uptime(procfs.root, 1000.0)
    job_process = FakeProcess(pid=4242, start_ticks=100_000, uid=0)
    write_process(procfs.root, job_process)
    registry = JobRegistry(
        JobsSettings(),
        SensorRoots(sysfs=sysfs, procfs=procfs.root),
        ledger=None,
        clock_ticks_per_s=100,
        wall_clock_s=lambda: 1_700_000_000.0,
        random_job_id=lambda: "j-0123456789ab",
    )
    registry.register(
        Caller(1, 0, 0), JobRequest("bert-finetune", (("project", "llm"), ("team", "nlp")), (4242,))
    )
    monitor = make_monitor(
        RaplSensor(SensorRoots(sysfs=sysfs)),
        intensity=SettableIntensity(56.0),
        pue=1.2,
        market_factor=10.0,
        attributor=registry,
    )
    monitor.sample()
    procfs.tick(busy=80, idle=120)
    job_process.utime += 20
    write_process(procfs.root, job_process)
    for zone, delta in {
        "intel-rapl:0": 150,
        "intel-rapl:0:0": 20,
        "intel-rapl:1": 140,
        "intel-rapl:1:0": 18,
        "intel-rapl:2": 360,
    }.items():
        tree.zones[zone].advance(delta * 1_000_000)
    clock.advance(1.0)
    return render(monitor.sample())


def test_whole_exposition_matches_golden(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    text = two_socket_exposition(sysfs, make_monitor, clock).decode()
    if os.environ.get("CARBONSCOPE_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_exposition_passes_promtool(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    assert_promtool_clean(two_socket_exposition(sysfs, make_monitor, clock))


def test_no_reserved_or_host_labels(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    text = two_socket_exposition(sysfs, make_monitor, clock).decode()
    for reserved in ('job="', 'instance="', 'hostname="', 'host="'):
        assert reserved not in text


def test_metrics_are_rendered_only_for_scraped_samples_and_once_each(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    """Ten samples between two scrapes cost one render; concurrent scrapes of one sample share
    it; gzip and plain answers are the same exposition; after a scrape the next sample is
    rendered ahead of the next scrape, and only that one."""
    two_socket_server(sysfs)
    monitor = make_monitor(RaplSensor(SensorRoots(sysfs=sysfs)))
    server = MetricsServer("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = "http://{}:{}/metrics".format(*server.address)

    def scrape(gzipped: bool = False) -> bytes:
        headers = {"Accept-Encoding": "gzip"} if gzipped else {}
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as answer:
            body = answer.read()
        return gzip.decompress(body) if gzipped else body

    try:
        for _ in range(10):
            clock.advance(1.0)
            server.publish(monitor.sample())
        assert server.renders == 0  # nobody asked
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(scrape, [False, True] * 8))
        assert server.renders == 1
        assert len(set(bodies)) == 1 and b"carbonscope_samples_total 10.0" in bodies[0]
        clock.advance(1.0)
        server.publish(latest := monitor.sample())  # the last one was scraped: rendered now
        assert server.renders == 2
        assert scrape() == render(latest)
        assert server.renders == 2  # the scrape found it ready
        for _ in range(5):  # scrapes stop: the first of these is rendered ahead, no others
            clock.advance(1.0)
            server.publish(monitor.sample())
        assert server.renders == 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_healthz_says_whether_samples_keep_coming_and_readyz_whether_one_came(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    """Liveness fails once the last sample is older than three intervals (on the monotonic
    clock); readiness holds from the first sample on, so a stalled agent is restarted but
    not dropped from its Service's endpoints meanwhile."""
    two_socket_server(sysfs)
    monitor = make_monitor(RaplSensor(SensorRoots(sysfs=sysfs)))
    now = [100.0]
    server = MetricsServer("127.0.0.1", 0, interval_s=2.0, monotonic_s=lambda: now[0])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    base = "http://{}:{}".format(*server.address)

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    try:
        assert get("/healthz") == (503, "starting: no sample yet\n")
        assert get("/readyz") == (503, "starting: no sample yet\n")
        server.publish(monitor.sample())
        assert get("/healthz") == (200, "ok\n") and get("/readyz") == (200, "ready\n")
        now[0] += 6.0  # three intervals: still current
        assert get("/healthz")[0] == 200
        now[0] += 0.5
        assert get("/healthz") == (503, "stale: the last sample is 6.5s old, sampling every 2s\n")
        assert get("/readyz") == (200, "ready\n")
        clock.advance(1.0)
        server.publish(monitor.sample())
        assert get("/healthz") == (200, "ok\n")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
