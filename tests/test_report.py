"""`carbonscope report` on a ledger built by the agent's own parts (fake RAPL and /proc, a
grid intensity that changes, two tagged jobs, embodied emissions, a 10-minute downtime):
totals are the sum of the minute rows, job rows the jobs' ledger totals, every figure
recomputes from stored energy x stored factors, in every format parsed back; the downtime is
a gap everywhere; and the real daemon's history is what `report` reads."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from codecarbon.output_methods.emissions_data import EmissionsData

from carbonscope.accounting.attribution import IdlePolicy
from carbonscope.accounting.embodied import EmbodiedRate
from carbonscope.accounting.emissions import grams
from carbonscope.jobs.registry import JobRegistry, JobsSettings
from carbonscope.jobs.validation import JobRequest
from carbonscope.ledger import JobLedger
from carbonscope.ledger.history import NodeHistory
from carbonscope.reports.formats import CODECARBON_COLUMNS
from carbonscope.sampling.monitor import CarbonSettings, Monitor
from carbonscope.sensors.base import SensorRoots
from carbonscope.sensors.rapl import RaplSensor
from carbonscope.units import UJ_PER_KWH
from tests.daemon import Daemon
from tests.fakes.clock import ManualClock
from tests.fakes.intensity import SettableIntensity
from tests.fakes.powercap import FakePowercap, two_socket_server
from tests.fakes.procfs import FakeProcess, make_procfs, write_process, write_uptime
from tests.test_job_registry import USER

WALL0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SERVER_KG, LIFETIME_S = 1_261.44, 4 * 365 * 86400.0  # 10 mg/s: easy to check


@dataclass
class Built:
    state: Path
    jobs: list[str]
    since: float
    until: float
    downtime: tuple[float, float]


def build_ledger(tmp_path: Path) -> Built:
    """Two runs of the agent's parts with a 10-minute downtime between them."""
    sysfs, state = tmp_path / "sys", tmp_path / "state"
    tree = FakePowercap(sysfs)
    package = tree.add_zone((0,), "package-0")
    dram = tree.add_zone((0, 0), "dram")
    procfs = make_procfs(tmp_path / "proc", threads=4)
    uptime = [1000.0]
    write_uptime(procfs.root, uptime[0])
    processes = {pid: FakeProcess(pid, 1, start_ticks=100_000, uid=1000) for pid in (10, 11)}
    for process in processes.values():
        write_process(procfs.root, process, True)
    clock = ManualClock()
    intensity = SettableIntensity(300.0, location="DE")
    roots = SensorRoots(sysfs=sysfs, procfs=procfs.root)
    jobs: list[str] = []

    def wall() -> float:
        return WALL0 + (clock() - 1_000_000_000_000) / 1e9

    def one_run(seconds: int, register: bool) -> None:
        ledger = JobLedger(state / "ledger.sqlite", wall_clock_s=wall)
        registry = JobRegistry(
            JobsSettings(idle_policy=IdlePolicy.RESERVED),
            roots,
            ledger,
            clock_ticks_per_s=100,
            wall_clock_s=wall,
        )
        monitor = Monitor(
            [(sensor, sensor.discover()) for sensor in (RaplSensor(roots),)],
            intensity=intensity,
            carbon=CarbonSettings(1.2, 50.0),
            interval_s=1.0,
            version="test",
            clock_ns=clock,
            wall_clock_s=wall,
            attributor=registry,
            embodied=EmbodiedRate.of(SERVER_KG, 0.0, LIFETIME_S),
        )
        history = NodeHistory(ledger)
        monitor.subscribe(history)
        monitor.sample()
        if register:
            for pid, (name, team) in zip(
                (10, 11), (("train", "nlp"), ("eval", "vision")), strict=True
            ):
                jobs.append(
                    registry.register(USER, JobRequest(name, (("team", team),), (pid,))).job_id
                )
        for second in range(seconds):
            procfs.tick(300, 100)
            uptime[0] += 1
            write_uptime(procfs.root, uptime[0])
            processes[10].utime += 200
            processes[11].utime += 50
            for process in processes.values():
                write_process(procfs.root, process, True)
            package.advance(80_000_000)
            dram.advance(20_000_000)
            clock.advance(1.0)
            if second == 200:
                intensity.g_per_kwh = 150.0  # a cleaner grid from here on
            monitor.sample()
            if second % 30 == 29:
                registry.flush()
                history.flush(wall())
        registry.flush()
        history.flush(wall(), final=True)
        ledger.close()

    one_run(300, register=True)
    down_from = wall()
    clock.advance(600.0)  # the agent is down for 10 minutes
    uptime[0] += 600
    down_until = wall()
    one_run(300, register=False)
    return Built(state, jobs, WALL0, wall(), (down_from, down_until))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_ledger(tmp_path_factory.mktemp("report"))


def report(built: Built, *args: str, until: str = "2026-01-01T01:00:00Z") -> str:
    """`carbonscope report` on the built ledger, from 2026-01-01T00:00Z; its stdout."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "carbonscope", "report", "--state-dir", str(built.state)),
            *("--since", "2026-01-01T00:00:00Z", "--until", until, *args),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONSCOPE_CONFIG": "", "COLUMNS": "140"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def history_rows(built: Built) -> list[Any]:
    ledger = JobLedger(built.state / "ledger.sqlite", read_only=True)
    try:
        return ledger.history(built.since, built.until + 3600)
    finally:
        ledger.close()


def test_node_totals_are_the_minute_rows_and_recompute_from_their_factors(built: Built) -> None:
    rows = history_rows(built)
    data = json.loads(report(built, "--by", "day", "--format", "json"))
    assert set(data) == {
        "since",
        "until",
        "group_by",
        "coverage_hours",
        "gaps",
        "pue",
        "rows",
        "total",
    }
    assert data["since"] == "2026-01-01T00:00:00Z" and data["group_by"] == "day"
    total = data["total"]
    assert set(total) == {
        "energy_kwh",
        "emissions_location_kg",
        "emissions_market_kg",
        "embodied_kg",
        "measured_share",
    }
    node_uj = sum(r.node_uj for r in rows)
    assert node_uj == 600 * 100_000_000  # 100 W for the 600 s the agent ran
    assert total["energy_kwh"] == pytest.approx(node_uj / UJ_PER_KWH, rel=1e-12)
    location = sum(grams(r.node_uj, r.factors.g_per_kwh, r.factors.pue) for r in rows)
    market = sum(grams(r.node_uj, r.factors.market_g_per_kwh, r.factors.pue) for r in rows)
    assert total["emissions_location_kg"] == pytest.approx(location / 1000, rel=1e-9)
    assert total["emissions_market_kg"] == pytest.approx(market / 1000, rel=1e-9)
    assert {r.factors.g_per_kwh for r in rows} == {300.0, 150.0}
    assert total["embodied_kg"] == pytest.approx(600 * 0.01 / 1000, rel=1e-6)  # 10 mg/s
    assert total["measured_share"] == 1.0 and data["pue"] == pytest.approx(1.2)
    assert [row["group"] for row in data["rows"]] == ["2026-01-01"]
    assert data["coverage_hours"] == pytest.approx(600 / 3600)


def test_the_downtime_is_a_gap_in_every_format(built: Built) -> None:
    data = json.loads(report(built, "--format", "json"))
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    down = {
        "from": time.strftime(stamp, time.gmtime(built.downtime[0])),
        "until": time.strftime(stamp, time.gmtime(built.downtime[1])),
    }
    assert down in data["gaps"]
    assert data["gaps"][-1]["until"] == "2026-01-01T01:00:00Z"  # after the last sample, too
    assert data["coverage_hours"] < (built.until - built.since) / 3600
    page = report(built, "--format", "html")
    assert f"gap {down['from']} to {down['until']}" in page
    table = report(built, "--format", "table")
    assert "gap(s)" in table and "covered 0.17 h" in table
    impact = yaml.safe_load(report(built, "--format", "impact"))
    stamps = [o["timestamp"] for o in impact["tree"]["children"]["node"]["inputs"]]
    assert not [s for s in stamps if down["from"] < s < down["until"]]  # no zero rows inside


def test_job_rows_are_the_jobs_ledger_totals_with_their_sci(built: Built) -> None:
    data = json.loads(report(built, "--by", "job", "--format", "json"))
    ledger = JobLedger(built.state / "ledger.sqlite", read_only=True)
    records = {job_id: ledger.get(job_id) for job_id in built.jobs}
    ledger.close()
    by_id = {row["group"]: row for row in data["rows"]}
    assert set(by_id) == set(built.jobs)
    for job_id, record in records.items():
        assert record is not None
        row = by_id[job_id]
        assert row["energy_kwh"] == pytest.approx(record.totals.energy_total_uj / UJ_PER_KWH)
        assert row["emissions_location_kg"] == pytest.approx(
            record.totals.emissions.location_g / 1000
        )
        assert row["embodied_kg"] == pytest.approx(record.totals.embodied_g / 1000)
        assert record.totals.embodied_g > 0  # it held part of the node
        sci = row["sci"]
        assert sci["sci_g_per_job"] == pytest.approx(sci["E_kwh"] * sci["I_g_per_kwh"] + sci["M_g"])
        assert sci["M_g"] == pytest.approx(record.totals.embodied_g)
    teams = json.loads(report(built, "--by", "tag:team", "--format", "json"))
    assert {row["group"] for row in teams["rows"]} == {"nlp", "vision"}
    train = next(r for r in records.values() if r and r.name == "train")
    nlp = next(row for row in teams["rows"] if row["group"] == "nlp")
    assert nlp["energy_kwh"] == pytest.approx(train.totals.energy_total_uj / UJ_PER_KWH)


def test_csv_codecarbon_and_impact_parse_back_to_the_json_figures(built: Built) -> None:
    data = json.loads(report(built, "--by", "day", "--format", "json"))
    rows = list(csv.DictReader(io.StringIO(report(built, "--by", "day", "--format", "csv"))))
    assert list(rows[0]) == [
        "group",
        "energy_kwh",
        "emissions_location_kg",
        "emissions_market_kg",
        "embodied_kg",
        "measured_share",
    ]
    assert float(rows[0]["energy_kwh"]) == pytest.approx(data["rows"][0]["energy_kwh"])
    assert rows[-1]["group"] == "total"
    assert float(rows[-1]["emissions_market_kg"]) == pytest.approx(
        data["total"]["emissions_market_kg"]
    )
    codecarbon = list(
        csv.DictReader(io.StringIO(report(built, "--by", "day", "--format", "codecarbon")))
    )
    assert tuple(codecarbon[0]) == CODECARBON_COLUMNS == tuple(EmissionsData.__dataclass_fields__)
    assert float(codecarbon[0]["emissions"]) == pytest.approx(
        data["rows"][0]["emissions_location_kg"]
    )
    assert float(codecarbon[0]["energy_consumed"]) == pytest.approx(data["rows"][0]["energy_kwh"])
    # the gap is not in codecarbon's duration: the seconds the ledger covers
    assert float(codecarbon[0]["duration"]) == pytest.approx(data["coverage_hours"] * 3600)
    impact = yaml.safe_load(report(built, "--by", "day", "--format", "impact"))
    assert impact["initialize"] == {"plugins": {}}
    inputs = impact["tree"]["children"]["node"]["inputs"]
    assert sum(o["energy"] for o in inputs) == pytest.approx(data["total"]["energy_kwh"])
    assert sum(o["carbon"] for o in inputs) / 1000 == pytest.approx(
        data["total"]["emissions_location_kg"]
    )
    assert all({"timestamp", "duration", "energy", "carbon"} <= set(o) for o in inputs)


def test_the_html_report_is_self_contained(built: Built) -> None:
    page = report(built, "--by", "job", "--format", "html")
    assert "<script" not in page and "<link" not in page
    assert not re.findall(r"(?:src|href)=", page)
    assert not [
        u for u in re.findall(r"https?://[^\s\"'<>]+", page) if "www.w3.org/2000/svg" not in u
    ]
    paths = re.findall(r'<path d="([^"]+)"', page)
    assert len(paths) > 10 and all(paths)


def test_bad_arguments_are_usage_errors(built: Built) -> None:
    for args, says in (
        (("--by", "week"), "one of job, user, tag:KEY, day, month, node"),
        (("--since", "yesterday-ish"), "expected now, a date"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "carbonscope", "report", "--state-dir", str(built.state), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and says in result.stderr, result.stderr


@pytest.fixture
def daemon_state(tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    two_socket_server(tmp_path / "sys", with_psys=False)
    config = tmp_path / "carbonscope.toml"
    config.write_text(
        '[agent]\ninterval = "100ms"\n[sensors]\nenable = ["rapl"]\n'
        "[embodied]\nserver_kgco2e = 1000\n"
    )
    daemon = Daemon(["--config", str(config), "--sysfs-root", str(tmp_path / "sys")], tmp_path)
    yield daemon, tmp_path
    daemon.stop()


@pytest.mark.e2e
def test_the_daemon_writes_the_history_report_reads(daemon_state: tuple[Daemon, Path]) -> None:
    daemon, _tmp = daemon_state
    daemon.wait_ready()
    time.sleep(1.5)
    assert "carbonscope_embodied_grams_total" in daemon.get()
    running = subprocess.run(  # read-only, beside the daemon that writes it
        [sys.executable, "-m", "carbonscope", "report", "--state-dir", str(daemon.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONSCOPE_CONFIG": "", "COLUMNS": "120"},
    )
    assert running.returncode == 0 and "carbonscope report by day" in running.stdout
    assert daemon.stop() == 0
    result = subprocess.run(
        [
            *(sys.executable, "-m", "carbonscope", "report", "--state-dir", str(daemon.state_dir)),
            *("--since", "1h", "--by", "node", "--format", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONSCOPE_CONFIG": ""},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["rows"]) == 1 and data["total"]["embodied_kg"] > 0
    assert 1.0 < data["coverage_hours"] * 3600 < 10.0


def test_a_missing_or_older_ledger_is_a_clear_error(tmp_path: Path) -> None:
    """No traceback: no ledger at all, or one from before the node history (read-only: the
    report never migrates it)."""

    def run(state: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "carbonscope", "report", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    missing = run(tmp_path / "nothing")
    assert missing.returncode == 1 and "cannot read the job ledger" in missing.stderr
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / "ledger.sqlite") as db:
        db.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY)")
    db.close()
    older = run(old)
    assert older.returncode == 1 and "Traceback" not in older.stderr
    assert "has no node history" in older.stderr and "older carbonscope" in older.stderr
