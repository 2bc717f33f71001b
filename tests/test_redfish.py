"""Redfish against a loopback HTTPS BMC with its own CA: both power models and the sensors
collection, one session reused and renewed on 401, busy and slow BMCs, TLS verified, and
the password and token never in a log, a status or the exposition."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from carbonscope.config.schema import Config
from carbonscope.exporters.prometheus.collector import render
from carbonscope.sensors.base import (
    Component,
    CounterReading,
    DeviceKey,
    PowerKind,
    PowerReading,
    SensorRead,
    SourceStatus,
)
from carbonscope.sensors.polled import PolledSensor
from carbonscope.sensors.redfish import RedfishSensor, RedfishSettings
from tests.conftest import MonitorFactory
from tests.fakes.clock import ManualClock
from tests.fakes.redfish import FakeBmc

KEY = DeviceKey(Component.PLATFORM, "chassis-1", "redfish")


@pytest.fixture
def bmc(tmp_path: Path) -> Any:
    server = FakeBmc(tmp_path)
    yield server
    server.close()


def settings_for(bmc: FakeBmc, **overrides: Any) -> RedfishSettings:
    values: dict[str, Any] = {
        "url": bmc.url,
        "username": bmc.username,
        "password_file": str(bmc.password_file),
        "ca_file": str(bmc.ca_file),
        "timeout": "2s",
    }
    return RedfishSettings.model_validate(values | overrides)


def discovered(bmc: FakeBmc, **overrides: Any) -> RedfishSensor:
    sensor = RedfishSensor(settings_for(bmc, **overrides))
    found = sensor.discover()
    assert found.devices == (KEY,), found.statuses
    return sensor


def only_status(read: SensorRead) -> tuple[SourceStatus, str]:
    (status,) = read.statuses
    return status.status, status.reason


def test_the_older_power_model_with_one_session_for_every_read(bmc: FakeBmc) -> None:
    sensor = discovered(bmc)
    for watts in (412.0, 430.5):
        bmc.watts = watts
        assert sensor.read().readings == (PowerReading(KEY, round(watts * 1e6), PowerKind.INSTANT),)
    assert bmc.logins == 1
    gets = [headers for method, _path, headers in bmc.requests if method == "GET"]
    assert gets and all("X-Auth-Token" in headers for headers in gets)
    assert all("Authorization" not in headers for _m, _p, headers in bmc.requests)


@pytest.mark.parametrize("model", ["environment", "sensors"])
def test_the_newer_models_prefer_the_energy_counter(tmp_path: Path, model: str) -> None:
    bmc = FakeBmc(tmp_path, model)
    try:
        bmc.watts = 388.0
        (reading,) = discovered(bmc).read().readings
        assert reading == PowerReading(KEY, 388_000_000, PowerKind.INSTANT)
        bmc.energy_kwh = 1234.567
        sensor = discovered(bmc)
        (reading,) = sensor.read().readings
        assert isinstance(reading, CounterReading)
        assert reading.energy_uj == 1234567 * 3_600_000_000  # kWh to µJ, exact
    finally:
        bmc.close()


def test_an_expired_session_logs_in_again_once(bmc: FakeBmc) -> None:
    sensor = discovered(bmc)
    bmc.expire_sessions()
    assert sensor.read().readings[0].power_uw == 412_000_000
    assert bmc.logins == 2


def test_a_busy_or_slow_bmc_is_an_error_status(bmc: FakeBmc) -> None:
    sensor = discovered(bmc, timeout="500ms")
    bmc.busy = True
    assert only_status(sensor.read()) == (
        SourceStatus.ERROR,
        "/redfish/v1/Chassis/1/Power: the BMC is busy (HTTP 503)",
    )
    bmc.busy, bmc.delay_s = False, 1.5
    status, reason = only_status(sensor.read())
    assert status is SourceStatus.ERROR and "gave no answer in 0.5s" in reason


def test_wrong_credentials_are_permission_denied(bmc: FakeBmc, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    found = RedfishSensor(settings_for(bmc, password_file=str(wrong))).discover()
    (status,) = found.statuses
    assert status.status is SourceStatus.PERMISSION_DENIED
    assert "refused the login of 'monitor' (HTTP 401)" in status.reason


def test_tls_is_verified_and_the_wrong_ca_gives_an_error_never_data(
    bmc: FakeBmc, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    for overrides in ({"ca_file": str(other)}, {"ca_file": ""}):  # a stranger's CA, the system's
        found = RedfishSensor(settings_for(bmc, **overrides)).discover()
        assert not found.devices
        (status,) = found.statuses
        assert status.status is SourceStatus.ERROR and "TLS error" in status.reason
        assert "CERTIFICATE_VERIFY_FAILED" in status.reason
    assert bmc.logins == 0  # the password never left for an unverified peer


def test_the_url_must_be_https_and_unconfigured_redfish_says_so() -> None:
    with pytest.raises(ValidationError, match="must be https://"):
        Config.model_validate({"sensors": {"redfish": {"url": "http://bmc.example"}}})
    (status,) = RedfishSensor(RedfishSettings()).discover().statuses
    assert status.status is SourceStatus.NOT_PRESENT


def test_secrets_never_reach_a_log_a_status_or_the_exposition(
    bmc: FakeBmc,
    make_monitor: MonitorFactory,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sensor = discovered(bmc)
    monitor = make_monitor(sensor)
    monitor.sample()
    bmc.expire_sessions()
    clock.advance(1.0)
    monitor.sample()
    bmc.busy = True
    clock.advance(1.0)
    snap = monitor.sample()
    tokens = {h["X-Auth-Token"] for _m, _p, h in bmc.requests if "X-Auth-Token" in h}
    assert len(tokens) == 2
    exposition = render(snap).decode()
    statuses = " ".join(s.reason for s in snap.statuses)
    for secret in (bmc.password, *tokens):
        assert secret not in caplog.text
        assert secret not in exposition
        assert secret not in statuses


def test_the_session_is_ended_when_the_source_stops(bmc: FakeBmc) -> None:
    """A BMC keeps a handful of sessions: a restarted agent must not leave its old one."""
    polled = PolledSensor.from_settings(RedfishSensor(settings_for(bmc)), settings_for(bmc), 10.0)
    assert polled.discover().devices == (KEY,)
    polled.poll_once()
    assert len(bmc.tokens) == 1
    polled.stop()
    assert not bmc.tokens
    method, path, _headers = bmc.requests[-1]
    assert (method, path) == ("DELETE", "/redfish/v1/SessionService/Sessions/1")
