from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from carbonscope.accounting.intensity_log import IntensityLog
from carbonscope.carbon.intensity import IntensityProvider
from carbonscope.sampling.monitor import CarbonSettings, EnergyAttributor, Monitor
from carbonscope.sensors.base import Sensor
from tests.fakes.clock import ManualClock
from tests.fakes.intensity import SettableIntensity
from tests.fakes.nvml import FakeNvml, build_library

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> NoReturn:
    """Something a test needs is missing: in CI (which has it) a failure, elsewhere a skip."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The path of a system tool; in CI a missing tool fails the test instead of skipping it."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not installed (make test installs it when run as root)")
    return path


def assert_promtool_clean(exposition: bytes) -> None:
    """`promtool check metrics` finds nothing to say about this /metrics body."""
    promtool = require_tool("promtool")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


MonitorFactory = Callable[..., Monitor]


@pytest.fixture
def make_monitor(clock: ManualClock) -> MonitorFactory:
    def factory(
        *sensors: Sensor,
        intensity: IntensityProvider | None = None,
        pue: float = 1.0,
        market_factor: float | None = None,
        interval_s: float = 1.0,
        attributor: EnergyAttributor | None = None,
        intensity_log: IntensityLog | None = None,
    ) -> Monitor:
        return Monitor(
            [(sensor, sensor.discover()) for sensor in sensors],
            intensity=intensity or SettableIntensity(100.0),
            carbon=CarbonSettings(pue, market_factor),
            interval_s=interval_s,
            version="test",
            clock_ns=clock,
            wall_clock_s=lambda: 1_700_000_000.0 + clock() / 1e9,
            attributor=attributor,
            intensity_log=intensity_log,
        )

    return factory


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def nvml_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake libnvidia-ml.so.1, compiled once per test run."""
    require_tool("gcc")
    return build_library(tmp_path_factory.mktemp("fake-nvml")).parent


@pytest.fixture
def fake_nvml(nvml_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """A fake NVML loaded into this process: the real pynvml binding calls into it."""
    ctypes.CDLL(str(nvml_library / "libnvidia-ml.so.1"), mode=ctypes.RTLD_GLOBAL)
    fake = FakeNvml(nvml_library, tmp_path / "nvml.state")
    fake.write()
    monkeypatch.setenv("CARBONSCOPE_FAKE_NVML_STATE", str(fake.state_path))
    return fake


REPO = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout built as the wheel users install (once per run: the packaging and
    install-service tests share it)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("carbonscope-*.whl")
    return built
