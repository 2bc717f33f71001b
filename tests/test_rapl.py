"""The RAPL sensor on powercap trees shaped like the kernel's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from carbonscope.exporters.prometheus import render
from carbonscope.sensors.base import (
    Component,
    DeviceKey,
    SensorRoots,
    SourceStatus,
    read_sysfs_text,
)
from carbonscope.sensors.rapl import PERMISSION_HINT, RaplSensor
from carbonscope.units import UJ_PER_J
from tests.conftest import MonitorFactory
from tests.fakes.clock import ManualClock
from tests.fakes.powercap import FakePowercap, two_socket_server


def rapl(sysfs: Path, **kwargs: object) -> RaplSensor:
    return RaplSensor(SensorRoots(sysfs=sysfs, procfs=Path("/nonexistent")), **kwargs)  # type: ignore[arg-type]


def key(component: Component, device: str) -> DeviceKey:
    return DeviceKey(component, device, "rapl")


def test_walks_the_real_hierarchy_and_skips_duplicates(sysfs: Path) -> None:
    two_socket_server(sysfs)
    discovery = rapl(sysfs).discover()
    assert sorted(discovery.devices) == sorted(
        [
            key(Component.CPU, "package-0"),
            key(Component.DRAM, "dram-0"),
            key(Component.CPU, "package-1"),
            key(Component.DRAM, "dram-1"),
            key(Component.PLATFORM, "psys"),
        ]
    )
    assert any("intel-rapl-mmio ignored" in line for line in discovery.details)
    assert any("core" in line for line in discovery.details)  # the core child is inside package-0


def test_no_powercap_is_not_present_not_an_error(sysfs: Path) -> None:
    discovery = rapl(sysfs).discover()
    assert discovery.devices == ()
    [status] = discovery.statuses
    assert status.status is SourceStatus.NOT_PRESENT
    assert "powercap" in status.reason


def test_amd_package_with_core_child(sysfs: Path) -> None:
    tree = FakePowercap(sysfs)
    tree.add_zone((0,), "package-0")
    tree.add_zone((0, 0), "core")
    assert rapl(sysfs).discover().devices == (key(Component.CPU, "package-0"),)


def test_node_energy_is_psys_exactly_never_psys_plus_packages(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree = two_socket_server(sysfs)
    monitor = make_monitor(rapl(sysfs))
    monitor.sample()
    injected = {
        "intel-rapl:0": 110_000_001,
        "intel-rapl:0:0": 20_000_003,
        "intel-rapl:0:1": 90_000_000,  # core: inside package-0
        "intel-rapl:1": 95_000_007,
        "intel-rapl:1:0": 18_000_011,
        "intel-rapl:2": 280_000_013,  # psys: packages + dram + the rest of the platform
        "intel-rapl-mmio:0": 110_000_001,  # duplicate of package-0
    }
    for _ in range(3):
        for zone, delta in injected.items():
            tree.zones[zone].advance(delta)
        clock.advance(1.0)
        snapshot = monitor.sample()
    energy = {d.key.device: d.energy_uj for d in snapshot.devices}
    assert energy == {
        "package-0": 3 * 110_000_001,
        "dram-0": 3 * 20_000_003,
        "package-1": 3 * 95_000_007,
        "dram-1": 3 * 18_000_011,
        "psys": 3 * 280_000_013,
    }
    assert snapshot.node_energy_uj == 3 * 280_000_013
    assert snapshot.node_power_w == 280.000013


def test_without_psys_node_energy_is_packages_plus_dram(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree = two_socket_server(sysfs, with_psys=False)
    monitor = make_monitor(rapl(sysfs))
    monitor.sample()
    for zone, delta in {
        "intel-rapl:0": 7,
        "intel-rapl:0:0": 11,
        "intel-rapl:0:1": 13,
        "intel-rapl:1": 17,
        "intel-rapl:1:0": 19,
        "intel-rapl-mmio:0": 23,
    }.items():
        tree.zones[zone].advance(delta * UJ_PER_J)
    clock.advance(1.0)
    snapshot = monitor.sample()
    assert snapshot.node_energy_uj == (7 + 11 + 17 + 19) * UJ_PER_J


@pytest.mark.faults
def test_counter_crossing_max_range_gives_exact_energy_and_no_spike(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree = FakePowercap(sysfs)
    max_range = 65_532_610_987
    zone = tree.add_zone((0,), "package-0", max_range - 100_000_000, max_energy_range_uj=max_range)
    monitor = make_monitor(rapl(sysfs))
    monitor.sample()
    powers = []
    for _ in range(4):
        zone.advance(150_000_000)  # 150 W for 1 s; wraps during the first second
        clock.advance(1.0)
        snapshot = monitor.sample()
        powers.append(snapshot.devices[0].power_w)
    assert zone.energy_uj < 150_000_000 * 4  # the fake counter did wrap
    assert snapshot.devices[0].energy_uj == 600_000_000
    assert powers == [150.0] * 4


@pytest.mark.faults
def test_counter_reset_counts_nothing_never_negative(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree = FakePowercap(sysfs)
    zone = tree.add_zone((0,), "package-0", 50_000_000_000)
    monitor = make_monitor(rapl(sysfs))
    monitor.sample()
    zone.advance(100_000_000)
    clock.advance(1.0)
    monitor.sample()
    zone.set_energy(3_000_000)  # driver reload: the counter starts again near zero
    clock.advance(1.0)
    after_reset = monitor.sample()
    zone.advance(120_000_000)
    clock.advance(1.0)
    final = monitor.sample()
    assert after_reset.devices[0].energy_uj == 100_000_000
    assert after_reset.devices[0].power_w == 0.0
    assert final.devices[0].energy_uj == 220_000_000
    assert final.devices[0].power_w == 120.0


@pytest.mark.faults
def test_permission_denied_is_a_status_with_the_fix_not_zeros(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    two_socket_server(sysfs, with_psys=False)

    def root_only(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_sysfs_text(path)

    monitor = make_monitor(rapl(sysfs, opener=root_only))
    monitor.sample()
    clock.advance(1.0)
    snapshot = monitor.sample()
    statuses = {s.device: s for s in snapshot.statuses}
    assert {s.status for s in statuses.values()} == {SourceStatus.PERMISSION_DENIED}
    assert set(statuses) == {"package-0", "dram-0", "package-1", "dram-1"}
    assert statuses["package-0"].reason == PERMISSION_HINT
    assert all(d.power_w is None for d in snapshot.devices)  # absent, not a fake 0 W


@pytest.mark.faults
def test_an_implausible_read_shows_in_the_status_and_the_event_counter(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree = FakePowercap(sysfs)
    zone = tree.add_zone((0,), "package-0", 1_000_000_000)
    monitor = make_monitor(rapl(sysfs))
    monitor.sample()
    zone.set_energy(201_000_000_000)  # +200 kJ in a second
    clock.advance(1.0)
    held = monitor.sample()
    [status] = [s for s in held.statuses if s.device == "package-0"]
    assert status.status is SourceStatus.ERROR and "not counted" in status.reason
    assert held.devices[0].energy_uj == 0
    zone.set_energy(1_080_000_000)  # it was a glitch: 80 J in two seconds on the old line
    clock.advance(1.0)
    back = monitor.sample()
    assert back.devices[0].energy_uj == 80_000_000
    [status] = [s for s in back.statuses if s.device == "package-0"]
    assert status.status is SourceStatus.OK
    text = render(back).decode()
    assert (
        'carbonscope_energy_reading_events_total{device="package-0",event="rejected",'
        'source="rapl"} 1.0' in text
    )


@pytest.mark.faults
def test_zone_indices_are_hexadecimal_as_the_kernel_writes_them(sysfs: Path) -> None:
    tree = FakePowercap(sysfs)
    for socket in range(12):  # the eleventh package is intel-rapl:a
        tree.add_zone((socket,), f"package-{socket}")
    assert (tree.devices_dir / "intel-rapl" / "intel-rapl:a").is_dir()
    discovery = rapl(sysfs).discover()
    assert [k.device for k in discovery.devices] == [f"package-{n}" for n in range(12)]


@pytest.mark.faults
def test_one_unreadable_zone_never_drops_the_others(sysfs: Path) -> None:
    tree = two_socket_server(sysfs, with_psys=False, with_mmio=False)
    (tree.zones["intel-rapl:1:0"].path / "max_energy_range_uj").unlink()  # an odd DRAM zone
    discovery = rapl(sysfs).discover()
    assert [k.device for k in discovery.devices] == ["package-0", "dram-0", "package-1"]
    assert dict(discovery.skipped) == {"inside_package": 1, "unreadable": 1}
    assert any("intel-rapl:1:0: unreadable" in line for line in discovery.details)


@pytest.mark.faults
def test_mmio_counts_a_package_nothing_else_counts(sysfs: Path) -> None:
    tree = FakePowercap(sysfs)
    tree.add_zone((0,), "package-0", 5_000_000, control_type="intel-rapl-mmio")
    discovery = rapl(sysfs).discover()
    assert discovery.devices == (key(Component.CPU, "package-0"),)
    assert any("intel-rapl-mmio used for package-0" in line for line in discovery.details)


@pytest.mark.faults
def test_zones_in_a_class_powercap_of_plain_directories(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    """Only class/powercap bind-mounted into a container, its entries plain directories (as
    node_exporter's and Kepler's fixtures lay it out)."""
    source = sysfs.parent / "host-sys"
    tree = two_socket_server(source, with_psys=False, with_mmio=False)
    flat = sysfs / "class/powercap"
    flat.mkdir(parents=True)
    for name, zone in tree.zones.items():
        shutil.copytree(
            zone.path, flat / name, ignore=shutil.ignore_patterns("intel-rapl:*", "subsystem")
        )
    monitor = make_monitor(rapl(sysfs))
    first = monitor.sample()
    assert sorted(d.key.device for d in first.devices) == [
        "dram-0",
        "dram-1",
        "package-0",
        "package-1",
    ]
    for name in ("intel-rapl:0", "intel-rapl:0:0"):
        energy = flat / name / "energy_uj"
        os.chmod(energy, 0o600)
        energy.write_text(str(int(energy.read_text()) + 7_000_000) + "\n")
    clock.advance(1.0)
    energies = {d.key.device: d.energy_uj for d in monitor.sample().devices}
    assert energies == {"package-0": 7_000_000, "dram-0": 7_000_000, "package-1": 0, "dram-1": 0}


def test_a_zone_declaring_its_max_power_gets_its_own_ceiling(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    tree = FakePowercap(sysfs)
    zone = tree.add_zone((0,), "package-0", 1_000_000_000)
    (zone.path / "constraint_0_max_power_uw").write_text("100000000\n")  # 100 W: ceiling 200 W
    monitor = make_monitor(rapl(sysfs))
    monitor.sample()
    zone.advance(190_000_000)  # 190 W: plausible for this zone
    clock.advance(1.0)
    assert monitor.sample().devices[0].energy_uj == 190_000_000
    zone.advance(500_000_000)  # 500 W: within the global 2 kW, not within this zone's 200 W
    clock.advance(1.0)
    held = monitor.sample()
    assert held.devices[0].energy_uj == 190_000_000
    assert dict(held.devices[0].counter_events) == {"rejected": 1}
