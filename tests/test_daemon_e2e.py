"""`carbonscope run` as a subprocess: exact joules and emissions, promtool, sd_notify, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carbonscope.carbon.offline_data import OfflineIntensityData
from carbonscope.units import UJ_PER_KWH
from tests.conftest import assert_promtool_clean
from tests.daemon import Daemon, free_port
from tests.fakes.powercap import two_socket_server

pytestmark = pytest.mark.e2e

NODE = ("carbonscope_node_energy_joules_total", ())


def energy_key(
    component: str, device: str, source: str = "rapl"
) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = (("component", component), ("device", device), ("source", source))
    return ("carbonscope_energy_joules_total", labels)


def emissions_key(method: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("carbonscope_emissions_grams_total", (("method", method),))


def test_exact_joules_and_emissions_from_a_fake_rapl_tree(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    tree = two_socket_server(sysfs, with_psys=False)
    config = tmp_path / "carbonscope.toml"
    config.write_text(  # rapl only: a developer's real GPUs must not enter the exact sums
        '[agent]\ninterval = "100ms"\n[sensors]\nenable = ["rapl"]\n'
        '[carbon]\nlocation = "FR"\npue = 1.5\nmarket_factor = 100\n'
    )
    daemon = Daemon(["--config", str(config), "--sysfs-root", str(sysfs)], workdir=tmp_path)
    try:
        daemon.wait_ready()
        assert daemon.get("/healthz") == "ok\n" and daemon.get("/readyz") == "ready\n"
        before = daemon.samples_after(1)
        injected = {
            "intel-rapl:0": 123_456_789,
            "intel-rapl:0:0": 23_456_789,
            "intel-rapl:0:1": 99_000_000,
            "intel-rapl:1": 98_765_432,
            "intel-rapl:1:0": 8_765_432,
            "intel-rapl-mmio:0": 123_456_789,
        }
        for _ in range(3):
            for zone, delta in injected.items():
                tree.zones[zone].advance(delta)
            time.sleep(0.15)
        after = daemon.samples_after(2)

        def gained(key: tuple[str, tuple[tuple[str, str], ...]]) -> float:
            return after[key] - before[key]

        assert gained(energy_key("cpu", "package-0")) == pytest.approx(3 * 123.456789, abs=1e-9)
        assert gained(energy_key("dram", "dram-0")) == pytest.approx(3 * 23.456789, abs=1e-9)
        assert gained(energy_key("cpu", "package-1")) == pytest.approx(3 * 98.765432, abs=1e-9)
        assert gained(energy_key("dram", "dram-1")) == pytest.approx(3 * 8.765432, abs=1e-9)
        node_uj = 3 * (123_456_789 + 23_456_789 + 98_765_432 + 8_765_432)  # no core, no mmio
        assert gained(NODE) == pytest.approx(node_uj / 1e6, abs=1e-9)
        france = OfflineIntensityData().lookup("FR").intensity_g_per_kwh
        assert gained(emissions_key("location")) == pytest.approx(
            node_uj / UJ_PER_KWH * 1.5 * france, rel=1e-9
        )
        assert gained(emissions_key("market")) == pytest.approx(
            node_uj / UJ_PER_KWH * 1.5 * 100, rel=1e-9
        )
        grid = (
            "carbonscope_grid_intensity_grams_per_kwh",
            (("location", "FR"), ("provider", "static"), ("signal", "average")),
        )
        assert after[grid] == france
        assert after[("carbonscope_pue_ratio", ())] == 1.5

        assert_promtool_clean(daemon.get().encode())
    finally:
        assert daemon.stop() == 0, daemon.log_text()


def test_default_config_on_a_machine_without_rapl_serves_the_model(tmp_path: Path) -> None:
    """What `make run` shows on a VM: modelled CPU/DRAM power, node energy and emissions."""
    empty_sysfs = tmp_path / "sys"
    empty_sysfs.mkdir()
    daemon = Daemon(
        ["--sysfs-root", str(empty_sysfs), "--interval", "100ms"],
        env={"CARBONSCOPE_CONFIG": ""},
        workdir=tmp_path,
    )
    try:
        daemon.wait_ready()
        samples = daemon.wait_for(lambda s: s.get(NODE, 0) > 0)
        # cpu and dram series only: a developer's real GPUs may add nvml ones; CI has none
        host_power = [
            (dict(labels)["component"], dict(labels)["source"], value)
            for (name, labels), value in samples.items()
            if name == "carbonscope_power_watts" and dict(labels)["component"] in ("cpu", "dram")
        ]
        assert sorted((component, source) for component, source, _ in host_power) == [
            ("cpu", "model"),
            ("dram", "model"),
        ]
        assert all(watts > 0 for _, _, watts in host_power)
        assert samples[emissions_key("location")] > 0
        rapl = (
            "carbonscope_source_status",
            (("device", "all"), ("source", "rapl"), ("status", "not_present")),
        )
        assert samples[rapl] == 1
    finally:
        assert daemon.stop(signal.SIGINT) == 0, daemon.log_text()


def test_sd_notify_ready_watchdog_stopping(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    two_socket_server(sysfs)
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify_path))
        listener.settimeout(20)
        daemon = Daemon(
            ["--sysfs-root", str(sysfs), "--interval", "100ms"],
            env={
                "NOTIFY_SOCKET": str(notify_path),
                "WATCHDOG_USEC": "600000",
                "CARBONSCOPE_CONFIG": "",
            },
            workdir=tmp_path,
        )
        try:
            messages: list[str] = []
            while sum("WATCHDOG=1" in m for m in messages) < 2:
                messages.append(listener.recv(4096).decode())
            assert "READY=1" in messages[0].splitlines()
            assert any(line.startswith("STATUS=") for line in messages[0].splitlines())
            assert daemon.stop() == 0, daemon.log_text()
            rest = []
            while not any("STOPPING=1" in m for m in rest):
                rest.append(listener.recv(4096).decode())
        finally:
            daemon.stop()


def test_listen_failure_is_a_one_line_runtime_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                "carbonscope",
                "run",
                "--listen",
                f"127.0.0.1:{port}",
                "--sysfs-root",
                str(tmp_path),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": str(Path(__import__("sys").executable).parent)},
        )
    assert result.returncode == 1
    assert f"carbonscope: error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_start_up_failure_stops_what_started_and_exits_with_one_line(tmp_path: Path) -> None:
    """A second agent on the same job socket: its metrics server has started when the job API
    fails; it must stop it again and exit 1 within seconds, saying what failed, no traceback."""
    first = Daemon(["--sysfs-root", str(tmp_path)], tmp_path, env={"CARBONSCOPE_CONFIG": ""})
    try:
        first.wait_ready()
        port = free_port()
        started = time.monotonic()
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "carbonscope",
                "run",
                "--listen",
                f"127.0.0.1:{port}",
                "--sysfs-root",
                str(tmp_path),
                "--state-dir",
                str(tmp_path / "second-state"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "CARBONSCOPE_SOCKET": str(first.socket), "CARBONSCOPE_CONFIG": ""},
        )
        took_s = time.monotonic() - started
        assert second.returncode == 1, second.stderr
        assert took_s < 5, f"took {took_s:.1f}s"
        errors = [line for line in second.stderr.splitlines() if "error" in line.lower()]
        assert errors == [
            f"carbonscope: error: another agent is already serving the job API on {first.socket}"
            " (while starting the job API; stopped what had started)"
        ], second.stderr
        assert "Traceback" not in second.stderr
        with socket.socket() as probe:  # the metrics server it had started is closed again
            probe.bind(("127.0.0.1", port))
        assert first.get("/healthz") == "ok\n"  # the first agent kept its socket
        assert first.socket.exists()
    finally:
        assert first.stop() == 0


def test_a_plain_run_on_the_static_provider_loads_no_heavy_module(tmp_path: Path) -> None:
    """rich (terminal tables), requests/urllib3 (live grid APIs), rapidfuzz (did-you-mean) and
    codecarbon's tracker load only on the paths that need them; the agent itself needs none,
    nor prometheus_client (/metrics has its own writer: exporters/prometheus/text.py), nor
    http.server or another HTTP client with the ssl it pulls in (http_server.py)."""
    daemon = Daemon(
        ["--sysfs-root", str(tmp_path)],
        tmp_path,
        env={"CARBONSCOPE_CONFIG": "", "PYTHONPROFILEIMPORTTIME": "1"},
    )
    try:
        daemon.wait_ready()
        daemon.samples_after(2)
    finally:
        assert daemon.stop() == 0
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in daemon.log_text().splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "carbonscope.daemon.runner" in imported  # the profile is there
    heavy = {"rich", "requests", "urllib3", "rapidfuzz", "codecarbon", "prometheus_client"}
    heavy |= {"http", "ssl"}
    assert not {name for name in imported if name.split(".")[0] in heavy}


def test_on_utc_with_no_location_the_world_average_is_a_warning_with_the_fix(
    tmp_path: Path,
) -> None:
    """Cloud VMs run UTC: the time zone names no country, so the world average applies, and
    the log says so once, with the config key that fixes it."""
    daemon = Daemon(
        ["--sysfs-root", str(tmp_path)], tmp_path, env={"CARBONSCOPE_CONFIG": "", "TZ": "UTC"}
    )
    try:
        daemon.wait_ready()
        scrape = daemon.scrape()
    finally:
        assert daemon.stop() == 0
    assert (
        scrape[
            ("carbonscope_grid_location_info", (("location", "WORLD"), ("resolved_by", "default")))
        ]
        == 1
    )
    warnings = [line for line in daemon.log_text().splitlines() if " WARNING " in line]
    assert any("grid location WORLD" in line and "carbon.location" in line for line in warnings)
