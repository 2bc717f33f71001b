"""The node history: minute rows from the monitor's snapshots, one set of factors per row,
sums exact against the node's counters, kept through a ledger that cannot write, downsampled
to hours and expired."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from carbonscope.accounting.emissions import grams
from carbonscope.ledger import JobLedger
from carbonscope.ledger.history import Factors, HistoryRow, NodeHistory
from carbonscope.sensors.base import Component, SensorRoots
from carbonscope.sensors.rapl import RaplSensor
from carbonscope.snapshot import Snapshot
from tests.conftest import MonitorFactory
from tests.fakes.clock import ManualClock
from tests.fakes.intensity import SettableIntensity
from tests.fakes.powercap import FakePowercap
from tests.fakes.procfs import make_procfs
from tests.test_model_sensor import model

START = 1_700_001_000.0  # make_monitor's wall clock when the manual clock starts (1000 s)


class FailingLedger:
    """A ledger on a full disk, until ``heal``."""

    def __init__(self, inner: JobLedger) -> None:
        self.inner = inner
        self.full = True

    def write_history(self, rows: list[HistoryRow]) -> None:
        if self.full:
            raise OSError(28, "No space left on device")
        self.inner.write_history(rows)

    def compact_history(self, now_unix_s: float) -> None:
        self.inner.compact_history(now_unix_s)


def node(tmp_path: Path, make_monitor: MonitorFactory, intensity: SettableIntensity) -> tuple:
    sysfs = tmp_path / "sys"
    tree = FakePowercap(sysfs)
    package = tree.add_zone((0,), "package-0")
    dram = tree.add_zone((0, 0), "dram")
    monitor = make_monitor(RaplSensor(SensorRoots(sysfs=sysfs)), intensity=intensity, pue=1.5)
    return monitor, package, dram


def run(monitor, package, dram, clock: ManualClock, seconds: int) -> Snapshot:  # type: ignore[no-untyped-def]
    snap = None
    for _ in range(seconds):
        package.advance(90_000_000)  # 90 W
        dram.advance(10_000_000)  # 10 W
        clock.advance(1.0)
        snap = monitor.sample()
    assert snap is not None
    return snap


def test_minute_rows_sum_to_the_node_and_recompute_from_their_factors(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    intensity = SettableIntensity(300.0)
    monitor, package, dram = node(tmp_path, make_monitor, intensity)
    ledger = JobLedger(tmp_path / "ledger.sqlite")
    history = NodeHistory(ledger)
    monitor.subscribe(history)
    first = monitor.sample()  # t = 0: the baseline
    run(monitor, package, dram, clock, 100)
    intensity.g_per_kwh = 120.0  # the grid gets cleaner mid-minute (t = 100 s)
    last = run(monitor, package, dram, clock, 150)
    assert history.flush(START + 250, final=True) is None
    rows = ledger.history(0, START + 1e6)
    # minutes [0,60) [60,100) [100,120) [120,180) [180,240) [240,250]: the change splits one
    assert [(r.started_at - START, r.ended_at - START) for r in rows] == [
        (0, 59), (59, 100), (100, 119), (119, 179), (179, 239), (239, 250)
    ]  # fmt: skip
    assert [r.factors.g_per_kwh for r in rows] == [300, 300, 120, 120, 120, 120]
    assert all(r.started_at == p.ended_at for p, r in pairwise(rows))
    assert sum(r.node_uj for r in rows) == last.node_energy_uj - first.node_energy_uj
    assert sum(r.covered_s for r in rows) == 250
    assert sum(r.component_uj[Component.CPU] for r in rows) == 250 * 90_000_000
    assert sum(r.measured_uj for r in rows) == sum(r.node_uj for r in rows)
    for row in rows:
        assert row.location_g == pytest.approx(grams(row.node_uj, row.factors.g_per_kwh, 1.5))
        assert row.factors.pue == 1.5 and row.factors.provider == "fake"
        assert row.device_uj["cpu/rapl/package-0"] == row.component_uj[Component.CPU]
    assert sum(r.location_g for r in rows) == pytest.approx(last.emissions.location_g)


def test_a_full_disk_keeps_the_rows_until_it_takes_them(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    monitor, package, dram = node(tmp_path, make_monitor, SettableIntensity(200.0))
    ledger = JobLedger(tmp_path / "ledger.sqlite")
    disk = FailingLedger(ledger)
    history = NodeHistory(disk)
    monitor.subscribe(history)
    monitor.sample()
    run(monitor, package, dram, clock, 300)
    assert "No space left on device" in (history.flush(START + 300) or "")
    assert history.pending == 6 and not ledger.history(0, START + 1e6)  # 5 closed, 1 open
    disk.full = False
    assert history.flush(START + 300, final=True) is None
    rows = ledger.history(0, START + 1e6)
    assert sum(r.covered_s for r in rows) == 300 and history.pending == 0


def test_past_its_bound_the_oldest_rows_are_dropped_and_show_as_a_gap(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    monitor, package, dram = node(tmp_path, make_monitor, SettableIntensity(200.0))
    ledger = JobLedger(tmp_path / "ledger.sqlite")
    disk = FailingLedger(ledger)
    history = NodeHistory(disk, max_pending=3)
    monitor.subscribe(history)
    monitor.sample()
    run(monitor, package, dram, clock, 360)  # six minutes closed and one open, room for three
    disk.full = False
    history.flush(START + 360, final=True)
    rows = ledger.history(0, START + 1e6)
    assert history.dropped_rows == 3
    assert rows[0].started_at - START == 179  # the first three minutes are gone: a gap
    assert sum(r.covered_s for r in rows) == 360 - 179


def test_old_minutes_become_hours_and_expire(tmp_path: Path) -> None:
    day = 86400.0
    ledger = JobLedger(
        tmp_path / "ledger.sqlite", history_hourly_after_s=35 * day, history_retention_s=400 * day
    )
    factors = Factors("static", "FR", "average", "lifecycle", "ember 2024", 56.0, 56.0, None, 1.2)
    base = 1_000_000_000.0 // 3600 * 3600
    rows = [
        HistoryRow(
            base + i * 60,
            base + (i + 1) * 60,
            factors,
            covered_s=60,
            node_uj=6_000_000_000,
            measured_uj=6_000_000_000,
            component_uj={Component.CPU: 6_000_000_000},
            device_uj={"cpu/rapl/package-0": 6_000_000_000},
            location_g=0.112,
        )
        for i in range(180)  # three hours
    ]
    ledger.write_history(rows)
    ledger.compact_history(base + 40 * day)  # older than 35 days: hourly
    hours = ledger.history(0, base + 1e9)
    assert [(h.resolution_s, h.covered_s) for h in hours] == [(3600, 3600.0)] * 3
    assert sum(h.node_uj for h in hours) == 180 * 6_000_000_000
    assert sum(h.location_g for h in hours) == pytest.approx(180 * 0.112)
    assert hours[0].device_uj == {"cpu/rapl/package-0": 60 * 6_000_000_000}
    ledger.compact_history(base + 401 * day)  # past the retention: gone
    assert not ledger.history(0, base + 1e9)


def test_modelled_energy_carries_the_models_uncertainty(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    """On a VM nothing measures: the rows' energy is modelled, with the model's ± (its
    relative half-width per component) carried as µJ, so a report can state it."""
    vm = make_procfs(tmp_path / "vm", threads=4, virtualised=True)
    sensor = model(vm.root)
    ratios = dict(sensor.discover().uncertainty)
    monitor = make_monitor(sensor)
    history = NodeHistory(None)
    monitor.subscribe(history)
    monitor.sample()
    for _ in range(30):
        vm.tick(busy=200, idle=200)
        clock.advance(1.0)
        monitor.sample()
    row = history._open  # the row in memory
    assert row is not None and row.measured_uj == 0 and row.modelled_uj == row.node_uj > 0
    expected = sum(uj * ratios[c] for c, uj in row.component_uj.items())
    assert abs(row.modelled_uncertainty_uj - expected) <= 30  # rounded per sample


def test_a_wall_clock_step_is_not_covered_time(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    """NTP moves the wall clock an hour on between two samples: the row lands in wall time,
    but it covers the one second that passed, not the hour."""
    monitor, package, _dram = node(tmp_path, make_monitor, SettableIntensity(200.0))
    wall = [START]
    monitor._wall_clock_s = lambda: wall[0]  # the wall clock, on its own
    history = NodeHistory(None)
    monitor.subscribe(history)
    monitor.sample()
    for step in (1.0, 3600.0 + 1.0, 1.0):
        package.advance(1_000_000)
        clock.advance(1.0)
        wall[0] += step
        monitor.sample()
    history.flush(final=True)
    rows = [*history._closed, *([history._open] if history._open else [])]
    assert sum(r.covered_s for r in rows) == 3.0
