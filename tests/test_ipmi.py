"""IPMI DCMI through a fake ``ipmitool`` on PATH: the exact output parsed, every failure a
status with its reason, and a hung BMC never delaying a sample."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from carbonscope.config.schema import Config
from carbonscope.sensors.base import (
    Component,
    DeviceKey,
    PowerKind,
    PowerReading,
    SensorRoots,
    SourceStatus,
)
from carbonscope.sensors.catalogue import SourceContext
from carbonscope.sensors.ipmi import IpmiSensor, IpmiSettings
from carbonscope.sensors.polled import PolledSensor
from carbonscope.sensors.selection import select_sensors
from tests.conftest import MonitorFactory
from tests.fakes.ipmitool import DENIED, NO_BMC, UNSUPPORTED, FakeIpmitool

KEY = DeviceKey(Component.PLATFORM, "dcmi", "ipmi")


@pytest.fixture
def ipmitool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeIpmitool:
    fake = FakeIpmitool(tmp_path)
    monkeypatch.setenv("PATH", fake.path_env())
    return fake


def test_the_dcmi_power_reading_is_the_whole_server(ipmitool: FakeIpmitool) -> None:
    ipmitool.reads(620)
    sensor = IpmiSensor()
    found = sensor.discover()
    assert found.devices == (KEY,)
    assert found.details == ("ipmitool dcmi power reading: 620 W (whole server, AC)",)
    read = sensor.read()
    assert read.readings == (PowerReading(KEY, 620_000_000, PowerKind.INSTANT),)
    assert ipmitool.calls == 2


@pytest.mark.parametrize(
    ("output", "status", "says"),
    [
        (UNSUPPORTED, SourceStatus.UNSUPPORTED, "Command not supported on this system"),
        (NO_BMC, SourceStatus.NOT_PRESENT, "no BMC device: Could not open device at /dev/ipmi0"),
        (DENIED, SourceStatus.PERMISSION_DENIED, "Permission denied"),
        ("sudo: a password is required\n", SourceStatus.PERMISSION_DENIED, "password is required"),
    ],
)
def test_each_failure_is_a_status_with_its_reason(
    ipmitool: FakeIpmitool, output: str, status: SourceStatus, says: str
) -> None:
    ipmitool.fails(output)
    found = IpmiSensor().discover()
    assert not found.devices
    (got,) = found.statuses
    assert (got.source, got.device, got.status) == ("ipmi", "dcmi", status)
    assert says in got.reason


def test_a_deactivated_reading_and_a_missing_ipmitool(
    ipmitool: FakeIpmitool, tmp_path: Path
) -> None:
    ipmitool.reads(400)
    output = (ipmitool.state / "output").read_text().replace("activated", "deactivated")
    ipmitool.fails(output)
    (ipmitool.state / "rc").write_text("0\n")
    (got,) = IpmiSensor().discover().statuses
    assert got.status is SourceStatus.UNSUPPORTED and "deactivated" in got.reason
    missing = IpmiSensor(IpmiSettings(command=str(tmp_path / "no-such-ipmitool")))
    (got,) = missing.discover().statuses
    assert got.status is SourceStatus.NOT_PRESENT and "not found" in got.reason


def test_a_wrapper_command_is_split_like_a_shell_line(ipmitool: FakeIpmitool) -> None:
    ipmitool.reads(333)
    sensor = IpmiSensor(IpmiSettings(command=f"env LC_ALL=C {ipmitool.path}"))
    assert sensor.discover().devices == (KEY,)
    assert sensor.read().readings[0].power_uw == 333_000_000


def test_ipmi_is_asked_only_when_listed_and_polled_with_its_settings(
    ipmitool: FakeIpmitool, tmp_path: Path
) -> None:
    context = SourceContext(roots=SensorRoots(sysfs=tmp_path / "sys", procfs=tmp_path))
    auto = select_sensors(Config().sensors, context)
    assert "ipmi" not in [item.spec.name for item in auto] and ipmitool.calls == 0
    config = Config.model_validate(
        {"sensors": {"enable": ["ipmi"], "ipmi": {"interval": "2s", "timeout": "1500ms"}}}
    )
    (item,) = select_sensors(config.sensors, context)
    assert isinstance(item.sensor, PolledSensor)
    assert (item.sensor.period_s, item.sensor.timeout_s) == (2.0, 1.5)
    assert item.used == {KEY}


def test_a_hung_bmc_is_killed_at_the_timeout_and_sampling_never_waits(
    ipmitool: FakeIpmitool, make_monitor: MonitorFactory
) -> None:
    ipmitool.reads(500)
    polled = PolledSensor.from_settings(
        IpmiSensor(IpmiSettings(timeout=0.5)), IpmiSettings(interval=0.2, timeout=0.5), 10.0
    )
    monitor = make_monitor(polled)
    polled.poll_once()
    ipmitool.hang()
    polled.start()
    try:
        worst_s = 0.0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            snap = monitor.sample()
            worst_s = max(worst_s, time.monotonic() - started)
            time.sleep(0.05)
        assert worst_s < 0.25, f"a sample waited {worst_s:.2f}s for the BMC"
        (status,) = [s for s in snap.statuses if s.source == "ipmi"]
        assert status.status is SourceStatus.STALE
        assert "gave no answer in 0.5s (BMC hung)" in status.reason
        ipmitool.hang(False)  # the BMC answers again: readings resume on the same thread
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            status = next(s for s in monitor.sample().statuses if s.source == "ipmi")
            if status.status is SourceStatus.OK:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the source never recovered")
    finally:
        polled.stop()
