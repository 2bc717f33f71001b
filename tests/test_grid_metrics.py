"""Live-provider metrics on /metrics, and the stored intensity series that recomputes emissions."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from carbonscope.accounting.intensity_log import IntensityLog
from carbonscope.carbon.intensity import MARGINAL, ForecastPoint
from carbonscope.carbon.providers.base import FetchErrorReason, ProviderError
from carbonscope.exporters.prometheus import render
from carbonscope.exporters.prometheus.grid import forecast_by_hour
from carbonscope.jobs.registry import Caller, JobRegistry, JobsSettings
from carbonscope.jobs.validation import JobRequest
from carbonscope.ledger import LEDGER_FILE_NAME, JobLedger, store
from carbonscope.sensors.base import SensorRoots
from carbonscope.sensors.rapl import RaplSensor
from carbonscope.units import UJ_PER_KWH
from tests.conftest import MonitorFactory, assert_promtool_clean
from tests.daemon import parse
from tests.fakes.clock import ManualClock
from tests.fakes.intensity import Clock, make_feed
from tests.fakes.powercap import FakePowercap, two_socket_server
from tests.fakes.procfs import FakeProcess, make_procfs, write_process, write_uptime


def wall(clock: ManualClock) -> float:
    """The make_monitor wall clock now."""
    return 1_700_000_000.0 + clock() / 1e9


NODE_ZONES = ("intel-rapl:0", "intel-rapl:0:0", "intel-rapl:1", "intel-rapl:1:0")


def _advance(tree: FakePowercap, clock: ManualClock, joules: int) -> None:
    """``joules`` of node energy in one second, spread over the packages and DRAM: one zone
    drawing 3.6 kW would be held as implausible (above sensors.rapl.max_zone_watts)."""
    total_uj = joules * 1_000_000
    for index, zone in enumerate(NODE_ZONES):
        share = total_uj // len(NODE_ZONES) + (total_uj % len(NODE_ZONES) if index == 0 else 0)
        tree.zones[zone].advance(share)
    clock.advance(1.0)


def test_marginal_provider_metrics_pass_promtool(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree = two_socket_server(sysfs, with_psys=False, with_mmio=False)
    feed_clock = Clock(wall(clock))
    feed, source = make_feed(feed_clock, signal=MARGINAL)
    source.script.extend(
        [500.0, ProviderError(FetchErrorReason.RATE_LIMITED, "HTTP 429: slow down", 30.0)]
    )
    feed.refresh_once()
    monitor = make_monitor(RaplSensor(SensorRoots(sysfs=sysfs)), intensity=feed)
    monitor.sample()
    _advance(tree, clock, 3600)  # 1 Wh
    feed.refresh_once()  # 429: the marginal value stays in force, stale
    exposition = render(monitor.sample())
    samples = parse(exposition.decode())

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    germany = value(
        "carbonscope_grid_intensity_grams_per_kwh",
        location="DE",
        provider="static",
        signal="average",
    )
    assert (
        value(
            "carbonscope_grid_intensity_grams_per_kwh",
            location="DE",
            provider="scripted",
            signal="marginal",
        )
        == 500.0
    )
    assert value("carbonscope_emissions_grams_total", method="marginal") == pytest.approx(0.5)
    assert value("carbonscope_emissions_grams_total", method="location") == pytest.approx(
        germany / 1000
    )  # Scope 2 stays on the average
    assert value("carbonscope_intensity_provider_up", provider="scripted") == 0
    assert value("carbonscope_intensity_provider_status", provider="scripted", status="stale") == 1
    assert value("carbonscope_intensity_provider_status", provider="scripted", status="ok") == 0
    assert (
        value(
            "carbonscope_intensity_fetch_errors_total", provider="scripted", reason="rate_limited"
        )
        == 1
    )
    assert (
        value("carbonscope_intensity_fetch_errors_total", provider="scripted", reason="timeout")
        == 0
    )
    assert value("carbonscope_intensity_fetch_duration_seconds_count", provider="scripted") == 2
    assert value("carbonscope_intensity_age_seconds", provider="scripted") == pytest.approx(1.0)
    assert (
        value(
            "carbonscope_grid_intensity_info",
            location="DE",
            provider="scripted",
            signal="marginal",
            emission_factor_type="lifecycle",
        )
        == 1
    )

    assert_promtool_clean(exposition)


def test_forecast_gauge_by_hours_ahead(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    two_socket_server(sysfs, with_psys=False, with_mmio=False)
    feed_clock = Clock(wall(clock))
    feed, source = make_feed(feed_clock)
    hour = feed_clock.now - feed_clock.now % 3600
    source.forecast = tuple(ForecastPoint(hour + h * 3600, 100.0 + h) for h in range(0, 6))
    source.script.append(250.0)
    feed.refresh_once()
    monitor = make_monitor(RaplSensor(SensorRoots(sysfs=sysfs)), intensity=feed)
    samples = parse(render(monitor.sample()).decode())
    forecast = {
        dict(labels)["hours_ahead"]: value
        for (name, labels), value in samples.items()
        if name == "carbonscope_grid_intensity_forecast_grams_per_kwh"
    }
    # now is inside hour 0; the last point covers one more step: hours 1..5 are known
    assert forecast == {str(h): 100.0 + h for h in range(1, 6)}


def test_forecast_by_hour_uses_the_interval_covering_each_hour() -> None:
    points = (ForecastPoint(0.0, 10.0), ForecastPoint(1800.0, 20.0), ForecastPoint(3600.0, 30.0))
    # the last point covers one median step (1800 s): up to 5400 s
    assert forecast_by_hour(points, 100.0, hours=3) == [(1, 30.0)]
    assert forecast_by_hour(points, -3000.0, hours=3) == [(1, 10.0), (2, 30.0)]
    assert forecast_by_hour((), 0.0) == []


def test_stored_intensity_series_recomputes_the_emissions_counter(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock, tmp_path: Path
) -> None:
    tree = two_socket_server(sysfs, with_psys=False, with_mmio=False)
    feed_clock = Clock(wall(clock))
    feed, source = make_feed(feed_clock, max_age_s=5.0)
    ledger = JobLedger(tmp_path / LEDGER_FILE_NAME)
    log = IntensityLog(ledger)
    monitor = make_monitor(
        RaplSensor(SensorRoots(sysfs=sysfs)), intensity=feed, intensity_log=log, pue=1.3
    )
    source.script.extend([100.0, 400.0])
    feed.refresh_once()
    monitor.sample()
    energies = [7200, 3600, 1800, 900, 450, 225, 100, 50, 25, 13]
    for index, joules in enumerate(energies):
        if index == 3:
            feed_clock.now = wall(clock)
            feed.refresh_once()  # 100 -> 400 g/kWh from here
        _advance(tree, clock, joules)
        snapshot = monitor.sample()
        if index == 5:
            log.flush()  # a flush in the middle of a period: rewritten, not duplicated
    log.flush()

    periods = ledger.periods()
    assert [(p.provider, p.factors.location_g_per_kwh) for p in periods] == [
        ("scripted", 100.0),
        ("scripted", 400.0),
        (
            "static",
            periods[2].factors.location_g_per_kwh,
        ),  # 5 s after the last value: max_age passed
    ]
    assert sum(p.energy_uj for p in periods) == snapshot.node_energy_uj
    recomputed = sum(
        p.energy_uj * p.factors.pue * p.factors.location_g_per_kwh / UJ_PER_KWH for p in periods
    )
    assert recomputed == pytest.approx(snapshot.emissions.location_g, rel=1e-12)
    final_only = snapshot.node_energy_uj * 1.3 * periods[-1].factors.location_g_per_kwh / UJ_PER_KWH
    assert abs(final_only - snapshot.emissions.location_g) > 0.1 * snapshot.emissions.location_g
    assert (
        periods[0].started_at_unix_s < periods[1].started_at_unix_s < periods[2].started_at_unix_s
    )
    ledger.close()
    reopened = JobLedger(tmp_path / LEDGER_FILE_NAME)
    assert reopened.next_period_id() == periods[-1].period_id + 1
    reopened.close()


def test_a_jobs_emissions_are_recomputable_from_its_energy_per_period(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock, tmp_path: Path
) -> None:
    tree = two_socket_server(sysfs, with_psys=False, with_mmio=False)
    procfs = make_procfs(tmp_path / "proc")
    write_uptime(procfs.root, 1000.0)
    worker = FakeProcess(pid=4242, start_ticks=100_000, uid=0)
    write_process(procfs.root, worker)
    ledger = JobLedger(tmp_path / LEDGER_FILE_NAME)
    registry = JobRegistry(
        JobsSettings(detect_cgroups=False),
        SensorRoots(sysfs=sysfs, procfs=procfs.root),
        ledger=ledger,
        clock_ticks_per_s=100,
        wall_clock_s=lambda: wall(clock),
    )
    job = registry.register(Caller(1, 0, 0), JobRequest("train", (), (4242,)))
    feed_clock = Clock(wall(clock))
    feed, source = make_feed(feed_clock)
    log = IntensityLog(ledger)
    monitor = make_monitor(
        RaplSensor(SensorRoots(sysfs=sysfs)),
        intensity=feed,
        intensity_log=log,
        attributor=registry,
        pue=1.1,
    )
    source.script.extend([120.0, 480.0, 240.0])
    feed.refresh_once()
    monitor.sample()
    for step in range(9):
        if step in (3, 6):
            feed_clock.now = wall(clock)
            feed.refresh_once()  # a new value: a new period
        procfs.tick(busy=100 + 10 * step, idle=100)
        worker.utime += 50 + 5 * step
        write_process(procfs.root, worker)
        _advance(tree, clock, 500 + 100 * step)
        monitor.sample()
        if step in (2, 4):
            registry.flush()
            log.flush()
    registry.flush()
    log.flush()

    record = registry.get(job.job_id)
    stored = ledger.job_periods(job.job_id)
    assert [period.factors.location_g_per_kwh for period, _uj in stored] == [120.0, 480.0, 240.0]
    assert sum(uj for _period, uj in stored) == record.totals.energy_total_uj > 0
    recomputed = sum(
        uj * p.factors.pue * p.factors.location_g_per_kwh / UJ_PER_KWH for p, uj in stored
    )
    assert recomputed == pytest.approx(record.totals.emissions.location_g, rel=1e-12)
    ledger.close()


def test_a_version_1_ledger_gains_the_intensity_tables(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILE_NAME
    with sqlite3.connect(path) as db:  # what carbonscope 0.1 with job ledger v1 left behind
        v1_jobs = store._SCHEMA.split("CREATE TABLE IF NOT EXISTS intensity_periods")[0]
        # without the columns later versions added (duration_s in 3, outcome in 4, the idle
        # shares in 5, embodied_g in 6)
        v1_jobs = re.sub(r"(updated_at REAL NOT NULL),.*?\n\);", r"\1\n);", v1_jobs, flags=re.S)
        assert "duration_s" not in v1_jobs and "idle_uj" not in v1_jobs, v1_jobs
        db.executescript(v1_jobs)
        db.execute(
            "INSERT INTO jobs (job_id, name, kind, user, tags, started_at, processes, updated_at)"
            " VALUES ('j-old', 'kept', 'tagged', 'ml', '{}', 1.0, '[]', 1.0)"
        )
        db.execute("PRAGMA user_version=1")
    db.close()
    ledger = JobLedger(path)
    assert ledger.periods() == [] and ledger.next_period_id() == 1
    ledger.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 6
        rows = db.execute(
            "SELECT name, duration_s, outcome, cpu_idle_uj, embodied_g FROM jobs"
        ).fetchall()
        assert rows == [("kept", None, None, 0, 0.0)]
        # version 6: the node history
        assert db.execute("SELECT count(*) FROM node_history").fetchone()[0] == 0
    db.close()
    reopened = JobLedger(path)
    old = reopened.get("j-old")
    assert old is not None and old.totals.idle_uj == () and old.totals.idle_total_uj == 0
    reopened.close()
