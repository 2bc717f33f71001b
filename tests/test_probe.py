"""`carbonscope probe`: every source looked for, its status and reason, one reading, exit code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.hwmon import FakeHwmon
from tests.fakes.ipmitool import NO_BMC, FakeIpmitool
from tests.fakes.nvml import NOT_SUPPORTED, FakeGpu, FakeNvml
from tests.fakes.powercap import FakePowercap, two_socket_server
from tests.fakes.procfs import make_procfs


def probe(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "carbonscope", "probe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONSCOPE_CONFIG": "", "CARBONSCOPE_CARBON__LOCATION": "DE"},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def rows_by_device(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["source"], r["component"], r["device"]): r for r in report["sources"]}


def test_probe_json_on_a_two_socket_server(tmp_path: Path) -> None:
    two_socket_server(tmp_path / "sys")
    procfs = make_procfs(tmp_path / "proc")
    code, out = probe(
        "--json", "--sysfs-root", str(tmp_path / "sys"), "--procfs-root", str(procfs.root)
    )
    assert code == 0
    report = json.loads(out)
    rows = rows_by_device(report)
    psys = rows[("rapl", "platform", "psys")]
    assert psys["status"] == "ok" and psys["used"] is True
    assert rows[("rapl", "cpu", "package-1")]["status"] == "ok"
    # the model is looked at too, but psys covers cpu and dram: not used
    assert rows[("model", "cpu", "host")]["used"] is False
    assert any("intel-rapl-mmio ignored" in line for line in report["details"]["rapl"])
    assert report["carbon"]["location"] == "DE"
    assert report["carbon"]["resolved_by"] == "config"
    # host facts through psutil, from the configured procfs root (the fake's 16 GiB, btime)
    host = report["host"]
    assert host["memory_total_bytes"] == 16 * 1024**3
    assert host["boot_time_unix_s"] == 1_700_000_000
    assert host["logical_cpus"] >= 1


def test_probe_table_on_a_vm_says_why_rapl_is_missing(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    procfs = make_procfs(tmp_path / "proc", virtualised=True)
    code, out = probe("--sysfs-root", str(tmp_path / "sys"), "--procfs-root", str(procfs.root))
    assert code == 0  # the model works
    assert "not_present" in out
    assert "powercap" in out
    assert "model" in out
    assert re.search(r"\d+\.\d\d W", out), out  # a modelled power reading, in watts
    assert re.search(r"≈ \d+\.\d\d W \(±86%\)", out), out  # ... shown with its uncertainty
    assert "gCO2e/kWh" in out
    code, out = probe(
        "--json", "--sysfs-root", str(tmp_path / "sys"), "--procfs-root", str(procfs.root)
    )
    result = json.loads(out)
    assert result["model_uncertainty"] == {
        "cpu": pytest.approx(0.86125),
        "dram": pytest.approx(0.7291666),
    }
    [cpu] = [
        row for row in result["sources"] if row["source"] == "model" and row["component"] == "cpu"
    ]
    assert cpu["uncertainty_ratio"] == pytest.approx(0.86125)


def test_probe_exits_1_when_nothing_works(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    (tmp_path / "proc").mkdir()  # no /proc/stat: the model cannot work either
    code, out = probe(
        "--json", "--sysfs-root", str(tmp_path / "sys"), "--procfs-root", str(tmp_path / "proc")
    )
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    statuses = {(r["source"], r["status"]) for r in report["sources"]}
    assert ("rapl", "not_present") in statuses
    assert ("model", "error") in statuses


def test_probe_lists_each_gpu_with_name_uuid_method_power_status(
    nvml_library: Path, tmp_path: Path
) -> None:
    fake = FakeNvml(
        nvml_library,
        tmp_path / "nvml.state",
        gpus=[
            FakeGpu(uuid="GPU-11111111-2222-3333-4444-555555555555", energy_mj=1, power_mw=280_000),
            FakeGpu(power_mw=95_000, errors={"nvmlDeviceGetTotalEnergyConsumption": NOT_SUPPORTED}),
        ],
    )
    fake.write()
    (tmp_path / "sys").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "carbonscope", "probe", "--sysfs-root", str(tmp_path / "sys")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONSCOPE_CONFIG": "", **fake.env},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "GPU-11111111-2222-3333-4444-555555555555" in out
    assert "NVIDIA H100" in out
    assert "counter" in out and "integrated" in out
    assert "95.0 W" in out  # the integrated GPU's power over the probe window
    json_out = subprocess.run(
        [
            sys.executable,
            "-m",
            "carbonscope",
            "probe",
            "--json",
            "--sysfs-root",
            str(tmp_path / "sys"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONSCOPE_CONFIG": "", **fake.env},
    ).stdout
    report = json.loads(json_out)
    gpus = {g["device"]: g for g in report["gpus"]}
    assert gpus["gpu1"]["energy_method"] == "integrated"
    rows = rows_by_device(report)
    assert rows[("nvml", "gpu", "gpu0")]["status"] == "ok"


def test_probe_lists_every_platform_source_and_says_which_defines_node_energy(
    tmp_path: Path,
) -> None:
    """RAPL plus an ACPI power meter (used), a BMC that is not there (ipmi, not enabled: asked
    anyway, and why it is not used is said), Redfish without a URL, hwmon's per-socket chip
    set aside for RAPL's counters."""
    sysfs = tmp_path / "sys"
    FakePowercap(sysfs).add_zone((0,), "package-0", energy_uj=1_000)
    hwmon = FakeHwmon(sysfs)
    hwmon.add_chip("power_meter", {"power1_average": 310_000_000}, legacy=True)
    hwmon.add_chip("amd_energy", {"energy1_input": 5_000}, {"energy1": "Esocket0"})
    ipmitool = FakeIpmitool(tmp_path)
    ipmitool.fails(NO_BMC)
    procfs = make_procfs(tmp_path / "proc")
    env_path = ipmitool.path_env()
    command = [sys.executable, "-m", "carbonscope", "probe"]
    command += ["--sysfs-root", str(sysfs), "--procfs-root", str(procfs.root)]
    result = subprocess.run(
        [*command, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONSCOPE_CONFIG": "", "PATH": env_path},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = rows_by_device(report)
    meter = rows[("hwmon", "platform", "power_meter")]
    assert (meter["status"], meter["used"]) == ("ok", True)
    assert meter["power_watts"] == pytest.approx(310.0, rel=1e-6)
    unmeasured = rows[("reconciled", "platform", "unmeasured")]
    assert unmeasured["used"] is True
    socket = rows[("hwmon", "cpu", "package-0")]
    assert socket["used"] is False and socket["reason"] == "measured by rapl: not added twice"
    ipmi = {r["source"]: r for r in report["sources"] if r["component"] == ""}
    assert ipmi["ipmi"]["status"] == "not_present"
    assert "no BMC device: Could not open device at /dev/ipmi0" in ipmi["ipmi"]["reason"]
    assert ipmi["redfish"]["reason"] == "no [sensors.redfish] url configured"
    assert report["node_energy"] == {
        "meter": {"source": "hwmon", "device": "power_meter"},
        "devices": [
            {"source": "rapl", "device": "package-0"},
            {"source": "model", "device": "host"},  # DRAM: no RAPL zone for it here
            {"source": "reconciled", "device": "unmeasured"},
        ],
    }
    table = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONSCOPE_CONFIG": "", "PATH": env_path, "COLUMNS": "200"},
    )
    assert "node energy follows the platform meter hwmon power_meter" in table.stdout
