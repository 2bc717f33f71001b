"""The monitor: missed ticks, emissions per sample, and one broken source among working ones."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from carbonscope.sensors.base import (
    Component,
    DeviceKey,
    Discovery,
    SensorRead,
    SensorRoots,
    SourceStatus,
)
from carbonscope.sensors.rapl import RaplSensor
from carbonscope.units import UJ_PER_KWH
from tests.conftest import MonitorFactory
from tests.fakes.clock import ManualClock
from tests.fakes.intensity import SettableIntensity
from tests.fakes.powercap import FakePowercap


def single_package(sysfs: Path) -> tuple[FakePowercap, RaplSensor]:
    tree = FakePowercap(sysfs)
    tree.add_zone((0,), "package-0", 10_000_000)
    return tree, RaplSensor(SensorRoots(sysfs=sysfs))


def test_late_tick_is_counted_as_missed_and_loses_no_energy(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree, sensor = single_package(sysfs)
    monitor = make_monitor(sensor, interval_s=1.0)
    monitor.sample()
    tree.zones["intel-rapl:0"].advance(400_000_000)  # 100 W for the 4 s the scheduler slept
    clock.advance(4.0)
    snapshot = monitor.sample()
    assert snapshot.samples_missed_total == 3
    assert snapshot.samples_total == 2
    assert snapshot.node_energy_uj == 400_000_000
    assert snapshot.node_power_w == 100.0  # over the real elapsed time, not the nominal interval


def test_emissions_use_the_intensity_in_force_at_each_sample(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree, sensor = single_package(sysfs)
    intensity = SettableIntensity(100.0)
    monitor = make_monitor(sensor, intensity=intensity, pue=1.25, market_factor=20.0)
    monitor.sample()
    expected_location = 0.0
    trace = [(100.0, 50_000_000), (100.0, 70_000_000), (400.0, 30_000_000), (400.0, 90_000_000)]
    for g_per_kwh, delta_uj in trace:
        intensity.g_per_kwh = g_per_kwh
        tree.zones["intel-rapl:0"].advance(delta_uj)
        clock.advance(1.0)
        snapshot = monitor.sample()
        expected_location += delta_uj / UJ_PER_KWH * 1.25 * g_per_kwh
    total_uj = sum(delta for _, delta in trace)
    assert snapshot.emissions.location_g == pytest.approx(expected_location, rel=1e-12)
    # not total energy x the final intensity:
    assert snapshot.emissions.location_g != pytest.approx(
        total_uj / UJ_PER_KWH * 1.25 * 400.0, rel=1e-3
    )
    assert snapshot.emissions.market_g == pytest.approx(
        total_uj / UJ_PER_KWH * 1.25 * 20.0, rel=1e-12
    )


def test_market_based_equals_location_based_without_a_contractual_factor(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree, sensor = single_package(sysfs)
    monitor = make_monitor(sensor, market_factor=None)
    monitor.sample()
    tree.zones["intel-rapl:0"].advance(1_000_000_000)
    clock.advance(1.0)
    snapshot = monitor.sample()
    assert snapshot.emissions.market_g == snapshot.emissions.location_g > 0


class ExplodingSensor:
    name = "broken"

    def discover(self) -> Discovery:
        return Discovery(devices=(DeviceKey(Component.GPU, "gpu0", "broken"),))

    def read(self) -> SensorRead:
        raise RuntimeError("driver wedged")


def test_one_bad_sensor_never_stops_the_others(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree, sensor = single_package(sysfs)
    monitor = make_monitor(ExplodingSensor(), sensor)
    monitor.sample()
    tree.zones["intel-rapl:0"].advance(5_000_000)
    clock.advance(1.0)
    snapshot = monitor.sample()
    assert snapshot.node_energy_uj == 5_000_000
    broken = [s for s in snapshot.statuses if s.source == "broken"]
    assert [(s.device, s.status) for s in broken] == [("gpu0", SourceStatus.ERROR)]
    assert "driver wedged" in broken[0].reason


def test_snapshot_is_published_to_subscribers(sysfs: Path, make_monitor: MonitorFactory) -> None:
    _tree, sensor = single_package(sysfs)
    monitor = make_monitor(sensor)
    seen = []
    monitor.subscribe(seen.append)
    snapshot = monitor.sample()
    assert seen == [snapshot]
    assert monitor.snapshot is snapshot


def test_skipped_ticks_are_counted_and_logged_at_most_once_a_minute(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    _tree, sensor = single_package(sysfs)
    monitor = make_monitor(sensor, interval_s=1.0)
    monitor.sample()
    with caplog.at_level(logging.WARNING, logger="carbonscope.sampling.monitor"):
        for _ in range(30):  # every tick 3 s late: 2 skipped each time, for 90 s
            clock.advance(3.0)
            snapshot = monitor.sample()
    assert snapshot.samples_missed_total == 60
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 2  # at 3 s and at 63 s
    assert lines[0].startswith("2 sampling tick(s) skipped")
    assert lines[1].startswith("40 sampling tick(s) skipped")
