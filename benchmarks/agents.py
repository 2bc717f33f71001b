"""The agents the side-by-side benchmark runs: carbonscope's daemon, Debian's node_exporter
(RAPL collector only) and codecarbon's OfflineEmissionsTracker, each on the same fake tree
and measured from outside the same way (benchmarks/measure.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import (
    Scraper,
    cpu_seconds,
    get,
    histogram_buckets,
    histogram_mean,
    histogram_quantile,
    memory_mib,
    quantile,
    series_count,
    wait_until_answers,
)
from tests.daemon import Daemon, free_port

WARM_UP_S = 3.0
SAMPLE_HISTOGRAM = "carbonscope_sample_duration_seconds"
NODE_EXPORTER = "prometheus-node-exporter"


@dataclass(frozen=True)
class Run:
    """One agent, one run: what an operator pays for it."""

    cpu_pct: float  # of one core, over the measured window
    rss_mib: float  # resident at the end of the window
    peak_rss_mib: float
    startup_s: float  # exec to first answer (exporters) or first reading (codecarbon)
    scrape_p50_ms: float = float("nan")
    scrape_p99_ms: float = float("nan")
    sample_mean_ms: float = float("nan")  # exact: the histogram's _sum / _count
    sample_p50_ms: float = float("nan")  # p50 and p99 as fine as the histogram's buckets
    sample_p99_ms: float = float("nan")
    series: int = 0


def _scraped_window(pid: int, url: str, seconds: float) -> tuple[float, float, float, Scraper]:
    """Warm-up, then ``_window`` while a client scrapes ``url`` once a second."""
    time.sleep(WARM_UP_S)
    scraper = Scraper(url).start()
    try:
        cpu, rss, peak = _window(pid, seconds)
    finally:
        scraper.stop()
    return cpu, rss, peak, scraper


def _scrape_quantiles_ms(scraper: Scraper) -> dict[str, float]:
    return {
        "scrape_p50_ms": quantile(scraper.latencies_s, 0.5) * 1e3,
        "scrape_p99_ms": quantile(scraper.latencies_s, 0.99) * 1e3,
    }


def _window(pid: int, seconds: float) -> tuple[float, float, float]:
    """(CPU % of a core, RSS, peak RSS) over ``seconds`` of steady state."""
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu_after, elapsed = cpu_seconds(pid), time.monotonic() - started
    rss, peak = memory_mib(pid)
    return 100.0 * (cpu_after - cpu_before) / elapsed, rss, peak


def carbonscope(
    workdir: Path,
    sysfs: Path,
    seconds: float,
    config: str = "",
    env: dict[str, str] | None = None,
    before_window: Callable[[Daemon], None] | None = None,
) -> Run:
    """The daemon at a 1 s interval, scraped once a second while measured."""
    config_path = workdir / "carbonscope.toml"
    config_path.write_text('[agent]\ninterval = "1s"\n' + config)
    started = time.monotonic()
    daemon = Daemon(
        ["--config", str(config_path), "--sysfs-root", str(sysfs)],
        workdir,
        env={"CARBONSCOPE_CONFIG": "", **(env or {})},
    )
    try:
        startup = wait_until_answers(daemon.url + "/healthz", started)
        if before_window is not None:
            before_window(daemon)
        first = get(daemon.url + "/metrics")
        cpu, rss, peak, scraper = _scraped_window(
            daemon.process.pid, daemon.url + "/metrics", seconds
        )
        last = get(daemon.url + "/metrics")
    finally:
        daemon.stop()
    before = histogram_buckets(first, SAMPLE_HISTOGRAM)
    after = histogram_buckets(last, SAMPLE_HISTOGRAM)
    return Run(
        cpu,
        rss,
        peak,
        startup,
        **_scrape_quantiles_ms(scraper),
        sample_mean_ms=histogram_mean(first, last, SAMPLE_HISTOGRAM) * 1e3,
        sample_p50_ms=histogram_quantile(0.5, before, after) * 1e3,
        sample_p99_ms=histogram_quantile(0.99, before, after) * 1e3,
        series=series_count(last),
    )


def node_exporter_path() -> str | None:
    return shutil.which(NODE_EXPORTER)


def node_exporter(sysfs: Path, seconds: float) -> Run:
    """node_exporter with only its RAPL collector, scraped once a second."""
    binary = node_exporter_path()
    if binary is None:
        raise RuntimeError(f"{NODE_EXPORTER} not installed (make bench installs it as root)")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    started = time.monotonic()
    process = subprocess.Popen(
        [
            binary,
            f"--path.sysfs={sysfs}",
            "--collector.disable-defaults",
            "--collector.rapl",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        startup = wait_until_answers(url, started)
        cpu, rss, peak, scraper = _scraped_window(process.pid, url, seconds)
    finally:
        process.terminate()
        process.wait(10)
    return Run(
        cpu,
        rss,
        peak,
        startup,
        **_scrape_quantiles_ms(scraper),
        series=series_count(scraper.last_body),
    )


_CODECARBON = """
import sys, time
from codecarbon import OfflineEmissionsTracker
tracker = OfflineEmissionsTracker(
    country_iso_code="FRA", measure_power_secs=1, save_to_file=False, log_level="error",
    tracking_mode="machine",
)
tracker.start()  # ends with the first measurement
print("READY", flush=True)
time.sleep(float(sys.argv[1]))
tracker.stop()
"""


def codecarbon(sysfs: Path, seconds: float) -> Run:
    """OfflineEmissionsTracker measuring every second, with the fake tree bound over /sys in a
    private mount namespace (codecarbon reads /sys/class/powercap/intel-rapl/subsystem)."""
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-rm"]
    script = 'mount --bind "$0" /sys && exec "$@"'
    started = time.monotonic()
    lifetime = str(seconds + WARM_UP_S + 30)
    process = subprocess.Popen(
        [*unshare, "sh", "-c", script, str(sysfs), sys.executable, "-c", _CODECARBON, lifetime],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "READY":
            raise RuntimeError(f"codecarbon did not start (exit {process.wait(10)})")
        first_reading = time.monotonic() - started
        time.sleep(WARM_UP_S)
        cpu, rss, peak = _window(process.pid, seconds)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    return Run(cpu, rss, peak, first_reading)
