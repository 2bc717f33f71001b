"""Polled sources: a slow reader on its own thread, read by the sampler from memory only."""

from __future__ import annotations

import threading
import time

import pytest

from carbonscope.sensors.base import (
    Component,
    DeviceKey,
    DeviceStatus,
    Discovery,
    PowerKind,
    PowerReading,
    SensorRead,
    SourceStatus,
)
from carbonscope.sensors.polled import PolledSensor, PolledSettings
from carbonscope.units import UJ_PER_J
from tests.conftest import MonitorFactory
from tests.fakes.clock import ManualClock

KEY = DeviceKey(Component.PLATFORM, "bmc", "slowmeter")


class SlowMeter:
    """A BMC-like meter: reports a fixed power; a read can be made to hang until released."""

    name = "slowmeter"

    def __init__(self, watts: float = 100.0, kind: PowerKind = PowerKind.INSTANT) -> None:
        self.watts = watts
        self.kind = kind
        self.reads = 0
        self.reader_threads: set[str] = set()
        self.hang = threading.Event()  # set: reads block until `release` is set
        self.release = threading.Event()

    def discover(self) -> Discovery:
        return Discovery(devices=(KEY,))

    def read(self) -> SensorRead:
        self.reads += 1
        self.reader_threads.add(threading.current_thread().name)
        if self.hang.is_set():
            self.release.wait(30)
        reading = PowerReading(KEY, round(self.watts * 1e6), self.kind)
        return SensorRead((reading,), (DeviceStatus(self.name, "bmc", SourceStatus.OK),))


def energy_j(snapshot: object) -> float:
    (device,) = [d for d in snapshot.devices if d.key == KEY]  # type: ignore[attr-defined]
    return float(device.energy_uj / UJ_PER_J)


def status_of(snapshot: object) -> DeviceStatus:
    (status,) = [s for s in snapshot.statuses if s.source == "slowmeter"]  # type: ignore[attr-defined]
    return status


@pytest.mark.parametrize("kind", [PowerKind.INSTANT, PowerKind.INTERVAL_MEAN])
def test_a_polled_power_reading_is_integrated_over_its_real_interval(
    make_monitor: MonitorFactory, clock: ManualClock, kind: PowerKind
) -> None:
    meter = SlowMeter(100.0, kind)
    polled = PolledSensor(meter, period_s=10.0, max_age_s=30.0, clock_ns=clock)
    monitor = make_monitor(polled)  # samples every second, polls every ten
    energies = []
    for second in range(21):
        if second % 10 == 0:
            polled.poll_once()
        snapshot = monitor.sample()
        energies.append(energy_j(snapshot))
        assert status_of(snapshot).status is SourceStatus.OK
        clock.advance(1.0)
    assert meter.reads == 3
    # Energy arrives with each new reading and covers exactly the time since the previous one;
    # the samples in between see the same reading again and add nothing.
    assert energies[:10] == [0.0] * 10
    assert energies[10:20] == [1000.0] * 10
    assert energies[20] == 2000.0  # 100 W x 20 s, exactly
    assert snapshot.devices[0].power_w == 100.0


def test_a_polled_source_goes_stale_after_its_max_age(
    make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    meter = SlowMeter(50.0)
    polled = PolledSensor(meter, period_s=10.0, max_age_s=30.0, clock_ns=clock)
    monitor = make_monitor(polled)
    before = monitor.sample()
    assert status_of(before).status is SourceStatus.STALE
    assert "no reading yet" in status_of(before).reason
    polled.poll_once()
    assert energy_j(monitor.sample()) == 0.0  # the first reading is a baseline
    clock.advance(10.0)
    polled.poll_once()
    fresh = monitor.sample()
    assert status_of(fresh).status is SourceStatus.OK and energy_j(fresh) == 500.0
    clock.advance(31.0)  # no poll since: the last reading is 31 s old
    stale = monitor.sample()
    assert status_of(stale).status is SourceStatus.STALE
    assert status_of(stale).reason == "last reading 31.0s old (max age 30s)"
    assert energy_j(stale) == 500.0  # never a silently repeated value
    assert stale.devices[0].power_w is None
    clock.advance(5.0)
    polled.poll_once()  # back: integration restarts at the fresh reading, the gap is unknown
    back = monitor.sample()
    assert status_of(back).status is SourceStatus.OK and energy_j(back) == 500.0
    clock.advance(10.0)
    polled.poll_once()
    assert energy_j(monitor.sample()) == 1000.0


def test_a_read_longer_than_its_timeout_never_delays_a_sample(
    make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    meter = SlowMeter()
    polled = PolledSensor(meter, period_s=0.05, timeout_s=0.2, max_age_s=1.0, clock_ns=clock)
    monitor = make_monitor(polled)
    polled.poll_once()  # one good reading
    meter.hang.set()
    polled.start()  # the poll thread now hangs inside the meter's read
    try:
        done = threading.Event()
        samples = []

        def sample_many() -> None:
            for _ in range(50):
                samples.append(monitor.sample())
                clock.advance(0.1)
            done.set()

        sampler = threading.Thread(target=sample_many, name="sampler")
        sampler.start()
        # A sample that waited on the hung read would still be waiting after 30 s.
        assert done.wait(10), "a sample waited for the polled source's read"
        sampler.join()
        assert "sampler" not in meter.reader_threads  # the sampler never called the meter
        assert status_of(samples[0]).status is SourceStatus.OK
        assert status_of(samples[-1]).status is SourceStatus.STALE  # 5 s on, past max_age
        deadline = time.monotonic() + 10
        while "timed out" not in status_of(monitor.sample()).reason:
            assert time.monotonic() < deadline, status_of(monitor.sample())
            time.sleep(0.02)
        last = status_of(monitor.sample())
        assert last.status is SourceStatus.STALE
        assert "; last error: " in last.reason and "timed out after 0.2s" in last.reason
        reads_while_hung = meter.reads
        polled.poll_once()  # the hung read is still running: no second read starts
        assert meter.reads == reads_while_hung
        assert "and is still running" in status_of(monitor.sample()).reason
    finally:
        meter.release.set()
        polled.stop()


def test_a_hung_discovery_is_an_error_status_not_a_hang() -> None:
    meter = SlowMeter()
    release = threading.Event()
    meter.discover = lambda: (release.wait(30), Discovery())[1]  # type: ignore[method-assign]
    polled = PolledSensor(meter, period_s=10.0, timeout_s=0.2)
    try:
        found = polled.discover()
    finally:
        release.set()
    assert not found.devices
    assert found.statuses[0].status is SourceStatus.ERROR
    assert found.statuses[0].reason == "discovery timed out after 0.2s"


def test_polled_settings_take_durations_and_default_to_the_catalogue_period() -> None:
    settings = PolledSettings.model_validate({"interval": "5s", "timeout": "1500ms"})
    polled = PolledSensor.from_settings(SlowMeter(), settings, default_period_s=10.0)
    assert (polled.period_s, polled.timeout_s, polled.max_age_s) == (5.0, 1.5, 15.0)
    defaults = PolledSensor.from_settings(SlowMeter(), PolledSettings(), default_period_s=10.0)
    assert (defaults.period_s, defaults.timeout_s, defaults.max_age_s) == (10.0, 10.0, 30.0)
