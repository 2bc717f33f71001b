"""What the side-by-side benchmark measures of a running agent, from outside it: CPU time and
memory from /proc, scrape latency as a Prometheus client sees it, and quantiles read off the
agent's own sample-duration histogram."""

from __future__ import annotations

import os
import statistics
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far (proc(5) fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of ``pid``: VmRSS and VmHWM."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def get(url: str, timeout_s: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as answer:
        return bytes(answer.read())


def wait_until_answers(url: str, started: float, timeout_s: float = 60.0) -> float:
    """Seconds from ``started`` (monotonic) until ``url`` answers 200."""
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        try:
            get(url, timeout_s=2.0)
            return time.monotonic() - started
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g}s")


@dataclass
class Scraper:
    """Scrapes ``url`` once per ``period_s`` on its own thread, as Prometheus would."""

    url: str
    period_s: float = 1.0
    latencies_s: list[float] = field(default_factory=list)
    last_body: bytes = b""
    errors: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.last_body = get(self.url)
                self.latencies_s.append(time.monotonic() - started)
            except OSError:
                self.errors += 1
            next_at += self.period_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def series_count(exposition: bytes) -> int:
    return sum(1 for line in exposition.decode().splitlines() if line and not line.startswith("#"))


def histogram_buckets(exposition: bytes, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram in an exposition, +Inf last."""
    for family in text_string_to_metric_families(exposition.decode()):
        if family.name == name:
            return sorted(
                (float(s.labels["le"]), s.value)
                for s in family.samples
                if s.name == name + "_bucket"
            )
    return []


def histogram_mean(exposition_before: bytes, exposition_after: bytes, name: str) -> float:
    """The exact mean of the observations between two scrapes (_sum and _count)."""

    def totals(exposition: bytes) -> tuple[float, float]:
        for family in text_string_to_metric_families(exposition.decode()):
            if family.name == name:
                found = {s.name: s.value for s in family.samples}
                return found[name + "_sum"], found[name + "_count"]
        return 0.0, 0.0

    (sum_before, count_before), (sum_after, count_after) = (
        totals(exposition_before),
        totals(exposition_after),
    )
    count = count_after - count_before
    return (sum_after - sum_before) / count if count > 0 else float("nan")


def histogram_quantile(
    q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> float:
    """Prometheus's histogram_quantile over the observations between two scrapes: linear
    within the bucket the rank falls in (so as fine as the buckets, no finer)."""
    counts = [(bound, end - start) for (bound, end), (_b, start) in zip(after, before, strict=True)]
    total = counts[-1][1] if counts else 0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower
