"""The power model for machines without sensors, and the auto selection rule."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from carbonscope.config.schema import SensorsSection
from carbonscope.exporters.prometheus.collector import render
from carbonscope.sensors.base import Component, PowerReading, SensorRoots, read_sysfs_text
from carbonscope.sensors.catalogue import SourceContext
from carbonscope.sensors.cpu_tdp import lookup_tdp, normalise_cpu_name
from carbonscope.sensors.model import CPU_KEY, DRAM_KEY, ModelSensor, ModelSettings, curve_fraction
from carbonscope.sensors.selection import SelectedSensor, select_sensors
from tests.conftest import MonitorFactory
from tests.fakes.clock import ManualClock
from tests.fakes.powercap import FakePowercap, two_socket_server
from tests.fakes.procfs import make_procfs


@pytest.mark.parametrize(
    ("utilisation", "fraction"),
    [(0.0, 0.12), (0.05, 0.22), (0.10, 0.32), (0.30, 0.535), (0.50, 0.75), (1.0, 1.0), (1.7, 1.0)],
)
def test_curve_runs_from_idle_to_tdp(utilisation: float, fraction: float) -> None:
    assert curve_fraction(utilisation) == pytest.approx(fraction)


def test_tdp_lookup_exact_and_fuzzy() -> None:
    assert lookup_tdp("Intel(R) Xeon(R) Gold 6126 CPU @ 2.60GHz").tdp_watts == 125.0  # type: ignore[union-attr]
    assert lookup_tdp("AMD EPYC 7763 64-Core Processor").tdp_watts == 280.0  # type: ignore[union-attr]
    fuzzy = lookup_tdp("Genuine Intel(R) Xeon(R) Gold 6126 (engineering sample)")
    assert fuzzy is not None and not fuzzy.exact and fuzzy.model == "Intel Xeon Gold 6126"
    assert lookup_tdp("Intel(R) Xeon(R) Processor") is None  # no model number: no guess
    assert normalise_cpu_name("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz") == "intel core i7-8700k"


@pytest.mark.faults
def test_a_table_row_without_a_finite_tdp_is_no_figure(tmp_path: Path) -> None:
    table = tmp_path / "cpu_power.csv"
    table.write_text(
        "Name,TDP\nIntel Xeon Gold 6126,nan\nIntel Xeon Gold 6130,inf\nAMD EPYC 7763,0\n"
    )
    for name in ("Intel Xeon Gold 6126", "Intel Xeon Gold 6130", "AMD EPYC 7763"):
        assert lookup_tdp(name, table) is None


def model(procfs_root: Path, settings: ModelSettings | None = None) -> ModelSensor:
    return ModelSensor(
        SensorRoots(sysfs=Path("/nonexistent"), procfs=procfs_root),
        settings or ModelSettings(),
    )


def test_bare_metal_cpu_power_from_table_tdp_and_utilisation(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    procfs = make_procfs(tmp_path / "proc", threads=8, sockets=2, mem_total_kib=64 * 1024 * 1024)
    monitor = make_monitor(model(procfs.root))
    monitor.sample()
    procfs.tick(busy=400, idle=400)  # 50 % busy
    clock.advance(2.0)
    snapshot = monitor.sample()
    energy = {d.key: d.energy_uj for d in snapshot.devices}
    power = {d.key: d.power_w for d in snapshot.devices}
    assert power[CPU_KEY] == pytest.approx(2 * 125.0 * 0.75)  # 2 sockets x TDP x f(0.5)
    assert energy[CPU_KEY] == 375_000_000  # 187.5 W x 2 s
    assert power[DRAM_KEY] == pytest.approx(64 * 0.375)
    assert all(d.key.source == "model" for d in snapshot.devices)


def test_time_stolen_by_the_hypervisor_is_not_this_vms_busy_time(tmp_path: Path) -> None:
    """/proc/stat's steal column: another tenant ran on this vCPU. 30 busy + 70 stolen ticks
    is a VM busy 30 % of the time, not 100 %."""
    procfs = make_procfs(tmp_path / "proc", threads=4, virtualised=True)
    sensor = model(procfs.root)
    sensor.discover()
    sensor.read()
    procfs.tick(busy=30, idle=0, steal=70)
    [cpu, _dram] = sensor.read().readings
    assert isinstance(cpu, PowerReading)
    assert cpu.power_uw == round(16 * curve_fraction(0.3) * 1e6)  # 4 W x 4 threads x f(0.3)
    assert "0 0 0 70 0 0" in (procfs.root / "stat").read_text().splitlines()[0]


def test_vm_uses_per_thread_wattage_and_config_overrides(tmp_path: Path) -> None:
    procfs = make_procfs(tmp_path / "proc", threads=4, virtualised=True)
    sensor = model(procfs.root)
    assert any(
        "4 W/thread x 4 threads (virtual machine)" in line for line in sensor.discover().details
    )
    procfs.tick(busy=0, idle=100)
    [cpu, _dram] = sensor.read().readings
    assert isinstance(cpu, PowerReading) and cpu.power_uw == round(16 * 0.12 * 1e6)

    overridden = model(procfs.root, ModelSettings(cpu_tdp_watts=200, dram_watts_per_gb=0.5))
    overridden.discover()
    procfs.tick(busy=100, idle=0)
    [cpu, dram] = overridden.read().readings
    assert isinstance(cpu, PowerReading) and cpu.power_uw == 200_000_000
    assert isinstance(dram, PowerReading) and dram.power_uw == 8_000_000  # 16 GiB x 0.5


def roots(sysfs: Path, procfs: Path) -> SensorRoots:
    return SensorRoots(sysfs=sysfs, procfs=procfs)


def no_nvidia_driver() -> ModuleType:
    raise ImportError("tests of the selection rule do not look at the host's GPUs")


def select(
    settings: SensorsSection, sensor_roots: SensorRoots, **kwargs: Any
) -> list[SelectedSensor]:
    context = SourceContext(sensor_roots, load_nvml=no_nvidia_driver, **kwargs)
    return select_sensors(settings, context)


def used(selection: list[SelectedSensor]) -> dict[str, list[str]]:
    return {
        item.sensor.name: sorted(f"{k.component}/{k.device}" for k in item.discovery.devices)
        for item in selection
    }


def test_auto_on_a_vm_models_cpu_and_dram(sysfs: Path, tmp_path: Path) -> None:
    procfs = make_procfs(tmp_path / "proc", virtualised=True)
    assert used(select(SensorsSection(), roots(sysfs, procfs.root))) == {
        "rapl": [],
        "nvml": [],
        "hwmon": [],
        "model": ["cpu/host", "dram/host"],
    }


def test_auto_models_only_what_rapl_does_not_measure(sysfs: Path, tmp_path: Path) -> None:
    procfs = make_procfs(tmp_path / "proc")
    FakePowercap(sysfs).add_zone((0,), "package-0")  # AMD-like: no dram zone
    assert used(select(SensorsSection(), roots(sysfs, procfs.root))) == {
        "rapl": ["cpu/package-0"],
        "nvml": [],
        "hwmon": [],
        "model": ["dram/host"],
    }


def test_auto_with_psys_needs_no_model(sysfs: Path, tmp_path: Path) -> None:
    procfs = make_procfs(tmp_path / "proc")
    two_socket_server(sysfs)
    assert list(used(select(SensorsSection(), roots(sysfs, procfs.root)))) == [
        "rapl",
        "nvml",
        "hwmon",
    ]


def test_auto_replaces_unreadable_rapl_with_the_model(sysfs: Path, tmp_path: Path) -> None:
    procfs = make_procfs(tmp_path / "proc")
    two_socket_server(sysfs, with_psys=False)

    def root_only(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_sysfs_text(path)

    selection = select(SensorsSection(), roots(sysfs, procfs.root), opener=root_only)
    # rapl stays listed (its statuses say permission_denied) but accounts nothing: no double count
    assert used(selection) == {
        "rapl": [],
        "nvml": [],
        "hwmon": [],
        "model": ["cpu/host", "dram/host"],
    }


def test_explicit_rapl_only_keeps_failing_devices_visible(sysfs: Path, tmp_path: Path) -> None:
    procfs = make_procfs(tmp_path / "proc")
    FakePowercap(sysfs).add_zone((0,), "package-0")
    selection = select(SensorsSection(enable=["rapl"]), roots(sysfs, procfs.root))
    assert used(selection) == {"rapl": ["cpu/package-0"]}
    assert Component.DRAM not in {k.component for i in selection for k in i.discovery.devices}


def test_the_model_says_how_sure_it_is_from_the_published_coefficients(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    """±: half the spread of the cited coefficients over the value in use
    (sensors/model_uncertainty.py): CCF's 1.69-8.58 W per vCPU at full load against 4 W per
    thread; Teads' idle 0.12 against CCF's 0.195 of full load; CodeCarbon 3's 5 W per DIMM
    (0.078-0.625 W/GB) against 0.375 W/GiB."""
    vm = make_procfs(tmp_path / "vm", threads=4, virtualised=True)
    found = dict(model(vm.root).discover().uncertainty)
    assert found[Component.CPU] == pytest.approx((8.58 - 1.69) / 8.0)
    assert found[Component.DRAM] == pytest.approx((5 / 8 - 5 / 64) / 0.75)
    metal = make_procfs(tmp_path / "metal", threads=8, sockets=2)
    idle_ccf = (0.74 / 3.5 + 0.71 / 4.26 + 0.78 / 3.76) / 3
    curve = dict(model(metal.root).discover().uncertainty)[Component.CPU]
    assert curve == pytest.approx((idle_ccf - 0.12) / 0.24)
    assert 0.25 < curve < 0.35
    # exported with every snapshot, and passed by promtool with the rest (golden tests)
    monitor = make_monitor(model(vm.root))
    monitor.sample()
    vm.tick(busy=10, idle=90)
    clock.advance(1.0)
    snapshot = monitor.sample()
    assert dict(snapshot.model_uncertainty) == found
    text = render(snapshot).decode()
    assert f'carbonscope_model_uncertainty_ratio{{component="cpu"}} {found[Component.CPU]!r}' in (
        text
    )
