"""The real daemon on a live provider (a local Electricity Maps): per-sample intensity,
fallback to static and back without a gap, the stored series, and no secret anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from carbonscope.carbon.offline_data import OfflineIntensityData
from carbonscope.carbon.providers.electricitymaps import LATEST_PATH
from carbonscope.ledger import LEDGER_FILE_NAME, JobLedger
from carbonscope.units import UJ_PER_KWH
from tests.daemon import Daemon, Labels, free_port, parse
from tests.fakes.grid_apis import Failure, GridApiServer
from tests.fakes.powercap import FakePowercap, two_socket_server

pytestmark = pytest.mark.e2e

Scrape = dict[tuple[str, Labels], float]
GRID = "carbonscope_grid_intensity_grams_per_kwh"
GERMANY = OfflineIntensityData().lookup("DE").intensity_g_per_kwh


@dataclass(frozen=True)
class Observation:
    samples: float
    node_j: float
    emissions_g: float
    provider: str
    location: str
    intensity: float
    status: str


def observe(scrape: Scrape) -> Observation:
    (grid,) = [(dict(labels), value) for (name, labels), value in scrape.items() if name == GRID]
    (status,) = [
        dict(labels)["status"]
        for (name, labels), value in scrape.items()
        if name == "carbonscope_intensity_provider_status" and value == 1
    ]
    return Observation(
        samples=scrape[("carbonscope_samples_total", ())],
        node_j=scrape[("carbonscope_node_energy_joules_total", ())],
        emissions_g=scrape[("carbonscope_emissions_grams_total", (("method", "location"),))],
        provider=grid[0]["provider"],
        location=grid[0]["location"],
        intensity=grid[1],
        status=status,
    )


@pytest.fixture
def api() -> Iterator[GridApiServer]:
    server = GridApiServer()
    yield server
    server.close()


def write_config(tmp_path: Path, api: GridApiServer) -> Path:
    token_file = api.write_em_token(tmp_path / "electricitymaps.token")
    config = tmp_path / "carbonscope.toml"
    config.write_text(
        '[agent]\ninterval = "500ms"\nlog_level = "debug"\n'
        '[sensors]\nenable = ["rapl"]\n'
        '[carbon]\nprovider = "electricitymaps"\nrefresh = "1s"\nmax_age = "3s"\n'
        'timeout = "1s"\n'
        f'[carbon.electricitymaps]\nurl = "{api.url}"\ntoken_file = "{token_file}"\n'
        'zone = "DE"\n'
        '[jobs]\nflush = "500ms"\n'
    )
    return config


class Recorder:
    """Scrapes every ~20 ms (many times per 500 ms sample), adding energy before each scrape."""

    def __init__(self, daemon: Daemon, tree: FakePowercap) -> None:
        self.daemon = daemon
        self.tree = tree
        self.observations: list[Observation] = []
        self.scrapes: list[str] = []
        self.joules_per_poll = 3

    def poll(self) -> Observation:
        if self.joules_per_poll:
            self.tree.zones["intel-rapl:0"].advance(self.joules_per_poll * 1_000_000)
        text = self.daemon.get()
        self.scrapes.append(text)
        observation = observe(parse(text))
        self.observations.append(observation)
        time.sleep(0.02)
        return observation

    def until(self, condition: Callable[[Observation], bool], timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition(self.poll()):
                return
        raise AssertionError(
            f"not reached in {timeout_s}s; last: {self.observations[-1]}\n{self.daemon.log_text()}"
        )

    def samples(self, count: int) -> None:
        start = self.poll().samples
        self.until(lambda o: o.samples >= start + count)


@pytest.mark.faults
def test_emissions_follow_the_provider_sample_by_sample_through_an_outage(
    tmp_path: Path, api: GridApiServer
) -> None:
    tree = two_socket_server(tmp_path / "sys", with_psys=False, with_mmio=False)
    config = write_config(tmp_path, api)
    api.em_value = 100.0
    daemon = Daemon(["--config", str(config), "--sysfs-root", str(tmp_path / "sys")], tmp_path)
    recorder = Recorder(daemon, tree)
    try:
        daemon.wait_ready()
        recorder.until(lambda o: o.provider == "electricitymaps" and o.intensity == 100.0)
        assert recorder.observations[-1].status == "ok"
        recorder.samples(4)

        api.em_value = 400.0  # the grid gets dirtier mid-run
        recorder.until(lambda o: o.intensity == 400.0)
        recorder.samples(4)

        # The provider goes bad: a 401, a 429 asking for 1 s, an answer slower than the
        # timeout, one trickling in a byte at a time, garbage, then 500s.
        api.fail_next(
            LATEST_PATH,
            Failure(401, {"message": "Invalid authentication credentials"}),
            Failure(429, {"message": "Too many requests"}, headers={"Retry-After": "1"}),
            Failure(200, {"carbonIntensity": 1.0}, delay_s=1.5),
            Failure(200, raw=b'{"carbonIntensity": 999, "datetime": "x"}', trickle_s=0.1),
            Failure(200, raw=b"<html><body>502 Bad Gateway</body></html>"),
        )
        api.fail_always(LATEST_PATH, Failure(500, {"error": "Internal Server Error"}))
        recorder.until(lambda o: o.status == "stale")
        assert recorder.observations[-1].intensity == 400.0  # the last good value, for now
        recorder.until(lambda o: o.status == "fallback")
        fallback = recorder.observations[-1]
        assert (fallback.provider, fallback.location, fallback.intensity) == (
            "static",
            "DE",
            GERMANY,
        )
        scrape_text = recorder.scrapes[-1]
        assert 'carbonscope_intensity_provider_up{provider="electricitymaps"} 0.0' in scrape_text
        age = [
            line
            for line in scrape_text.splitlines()
            if line.startswith('carbonscope_intensity_age_seconds{provider="electricitymaps"}')
        ]
        assert age and float(age[0].split()[-1]) > 3.0
        recorder.samples(3)
        recorder.until(lambda _o: not api.failures[LATEST_PATH])  # every scripted answer given
        scripted = len(api.requests_to(LATEST_PATH))
        recorder.until(lambda _o: len(api.requests_to(LATEST_PATH)) > scripted)  # then a 500

        api.fail_always(LATEST_PATH, None)  # back
        recorder.until(lambda o: o.provider == "electricitymaps" and o.status == "ok")
        assert recorder.observations[-1].intensity == 400.0
        recorder.samples(2)
        recorder.joules_per_poll = 0  # quiet: the last samples add nothing after the last scrape
        recorder.samples(3)
    finally:
        assert daemon.stop() == 0, daemon.log_text()

    observations = recorder.observations
    expected_g = 0.0
    for before, after in pairwise(observations):
        assert after.emissions_g >= before.emissions_g  # a counter, through every phase
        if after.node_j > before.node_j:
            assert after.emissions_g > before.emissions_g  # no gap: every joule is weighed
        if after.samples - before.samples > 1 and before.intensity != after.intensity:
            raise AssertionError(f"scrapes missed a sample at an intensity change: {after}")
        expected_g += (after.node_j - before.node_j) * 1e6 * after.intensity / UJ_PER_KWH
    first, last = observations[0], observations[-1]
    gained_g = last.emissions_g - first.emissions_g
    assert gained_g == pytest.approx(expected_g, rel=1e-3)
    final_only = (last.node_j - first.node_j) * 1e6 * last.intensity / UJ_PER_KWH
    assert abs(final_only - gained_g) > 0.05 * gained_g  # not total energy x final intensity
    assert {o.intensity for o in observations} >= {100.0, 400.0, GERMANY}

    # The stored series recomputes the counter: energy x intensity, period by period.
    ledger = JobLedger(daemon.state_dir / LEDGER_FILE_NAME, read_only=True)
    periods = ledger.periods()
    ledger.close()
    assert {(p.provider, p.factors.location_g_per_kwh) for p in periods} >= {
        ("electricitymaps", 100.0),
        ("electricitymaps", 400.0),
        ("static", GERMANY),
    }
    assert sum(p.energy_uj for p in periods) == round(last.node_j * 1e6)
    recomputed = sum(
        p.energy_uj * p.factors.pue * p.factors.location_g_per_kwh / UJ_PER_KWH for p in periods
    )
    assert recomputed == pytest.approx(last.emissions_g, rel=1e-9)

    # The token is nowhere: not in the log (which has the errors), not in /metrics, not stored.
    log = daemon.log_text()
    assert "HTTP 500" in log and "HTTP 401" in log and "HTTP 429" in log
    assert "no answer within 1s" in log and "no whole answer within 1s" in log
    assert "body is not JSON" in log
    assert api.em_token not in log
    assert all(api.em_token not in text for text in recorder.scrapes)
    assert api.em_token.encode() not in (daemon.state_dir / LEDGER_FILE_NAME).read_bytes()


def probe(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbonscope", "probe", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )


def test_probe_shows_the_provider_value_age_and_error_but_never_the_token(
    tmp_path: Path, api: GridApiServer
) -> None:
    two_socket_server(tmp_path / "sys", with_psys=False, with_mmio=False)
    config = write_config(tmp_path, api)
    api.em_value = 222.0
    env_sysfs = ("--sysfs-root", str(tmp_path / "sys"))
    shown = probe(config, *env_sysfs)
    assert shown.returncode == 0, shown.stderr
    assert "provider electricitymaps: ok (up)" in shown.stdout
    assert "222.0 gCO2e/kWh average for DE" in shown.stdout
    assert "last error: none" in shown.stdout
    as_json = json.loads(probe(config, "--json", *env_sysfs).stdout)
    feed = as_json["carbon"]["feed"]
    assert feed["provider"] == "electricitymaps" and feed["state"] == "ok"
    assert feed["last_value"]["g_per_kwh"] == 222.0 and feed["last_value"]["age_s"] < 60
    assert as_json["carbon"]["g_per_kwh"] == 222.0

    api.fail_always(LATEST_PATH, Failure(401, {"message": "Invalid authentication credentials"}))
    failing = probe(config, *env_sysfs)
    assert "provider electricitymaps: fallback (down)" in failing.stdout
    assert "HTTP 401" in failing.stdout and "Invalid authentication credentials" in failing.stdout
    assert f"{GERMANY:.1f} gCO2e/kWh average, provider static" in failing.stdout
    for output in (shown.stdout, shown.stderr, failing.stdout, failing.stderr, json.dumps(as_json)):
        assert api.em_token not in output


def test_unreadable_token_file_stops_the_start_naming_the_key(
    tmp_path: Path, api: GridApiServer
) -> None:
    config = write_config(tmp_path, api)
    (tmp_path / "electricitymaps.token").unlink()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "carbonscope",
            "run",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot read carbon.electricitymaps.token_file" in result.stderr
    assert "Traceback" not in result.stderr
