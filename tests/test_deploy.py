"""The shipped systemd unit: valid offline, and hardened (systemd-analyze security score)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from carbonscope.config.schema import AgentSection
from tests.conftest import require_tool

UNIT = Path(__file__).parents[1] / "deploy/systemd/carbonscope.service"
MAX_EXPOSURE_X10 = 25  # "2.5 OK" at worst; the unit scores 2.0


def installed_unit(tmp_path: Path) -> Path:
    """The unit as installed, pointing at this checkout's carbonscope (verify checks ExecStart)."""
    executable = shutil.which("carbonscope", path=str(Path(sys.executable).parent))
    assert executable is not None
    unit = tmp_path / "carbonscope.service"
    unit.write_text(UNIT.read_text().replace("/opt/carbonscope/bin/carbonscope", executable))
    return unit


def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "verify", str(installed_unit(tmp_path))], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # unknown keys only warn: a warning is a failure here


def test_unit_is_hardened(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    result = subprocess.run(
        [
            analyze,
            "security",
            "--offline=yes",
            f"--threshold={MAX_EXPOSURE_X10}",
            str(installed_unit(tmp_path)),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level" in result.stdout


def test_unit_is_a_notify_service_with_a_watchdog() -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text
    assert "WatchdogSec=" in text
    assert "ExecStart=/opt/carbonscope/bin/carbonscope run" in text


def test_unit_sets_the_fd_limit_above_the_connection_caps() -> None:
    lines = UNIT.read_text().splitlines()
    (limit,) = [int(line.split("=", 1)[1]) for line in lines if line.startswith("LimitNOFILE=")]
    assert limit >= 8 * 2 * AgentSection().max_connections  # two servers, far below the limit
