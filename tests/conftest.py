from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.accounting.monitor import CarbonSettings, Monitor
from agent.sensors.base import Sensor
from tests.fakes.clock import ManualClock
from tests.fakes.intensity import SettableIntensity

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The path of a system tool; in CI a missing tool fails the test instead of skipping it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (make test installs it when run as root)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


MonitorFactory = Callable[..., Monitor]


@pytest.fixture
def make_monitor(clock: ManualClock) -> MonitorFactory:
    def factory(
        *sensors: Sensor,
        intensity: SettableIntensity | None = None,
        pue: float = 1.0,
        market_factor: float | None = None,
        interval_s: float = 1.0,
    ) -> Monitor:
        return Monitor(
            [(sensor, sensor.discover()) for sensor in sensors],
            intensity=intensity or SettableIntensity(100.0),
            carbon=CarbonSettings(pue, market_factor),
            interval_s=interval_s,
            version="test",
            clock_ns=clock,
            wall_clock_s=lambda: 1_700_000_000.0,
        )

    return factory


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    root.mkdir()
    return root
