"""hwmon: power meters and per-socket chips in both sysfs layouts, never counted twice."""

from __future__ import annotations

from pathlib import Path

from carbonscope.accounting.node import NodeEnergyPlan
from carbonscope.config.schema import SensorsSection
from carbonscope.sensors.base import (
    Component,
    CounterReading,
    DeviceKey,
    PowerKind,
    PowerReading,
    SensorRoots,
    SourceStatus,
    read_sysfs_text,
)
from carbonscope.sensors.catalogue import SourceContext, platform_meter_sources
from carbonscope.sensors.hwmon import HwmonSensor, HwmonSettings
from carbonscope.sensors.rapl import RaplSensor
from carbonscope.sensors.selection import select_sensors
from tests.conftest import MonitorFactory
from tests.fakes.clock import ManualClock
from tests.fakes.hwmon import FakeHwmon
from tests.fakes.powercap import FakePowercap

METER = DeviceKey(Component.PLATFORM, "power_meter", "hwmon")


def sensor(sysfs: Path, **settings: list[str]) -> HwmonSensor:
    return HwmonSensor(SensorRoots(sysfs=sysfs), HwmonSettings(**settings))


def test_the_acpi_power_meter_is_the_whole_platform_in_either_layout(sysfs: Path) -> None:
    hwmon = FakeHwmon(sysfs)
    hwmon.add_chip("acpitz", {"temp1_input": 27800})  # no power: not looked at
    hwmon.add_chip("power_meter", {"power1_average": 412_000_000}, legacy=True)
    found = sensor(sysfs).discover()
    assert found.devices == (METER,)
    read = sensor_after(sysfs).read()
    assert read.readings == (PowerReading(METER, 412_000_000, PowerKind.INTERVAL_MEAN),)
    assert [s.status for s in read.statuses] == [SourceStatus.OK]


def sensor_after(sysfs: Path) -> HwmonSensor:
    discovered = sensor(sysfs)
    discovered.discover()
    return discovered


def test_the_current_layout_and_power_input_before_average(sysfs: Path) -> None:
    hwmon = FakeHwmon(sysfs)
    hwmon.add_chip("power_meter", {"power1_average": 398_000_000})
    hwmon.add_chip(
        "amdgpu",
        {"power1_average": 150_000_000, "power1_input": 161_000_000},
        {"power1": "PPT"},
        parent="pci0000:00/0000:03:00.0",
    )
    read = sensor_after(sysfs).read()
    assert set(read.readings) == {
        PowerReading(METER, 398_000_000, PowerKind.INTERVAL_MEAN),
        PowerReading(DeviceKey(Component.GPU, "amdgpu", "hwmon"), 161_000_000, PowerKind.INSTANT),
    }


def test_a_per_socket_chip_counts_its_sockets_not_its_cores(sysfs: Path) -> None:
    hwmon = FakeHwmon(sysfs)
    hwmon.add_chip(
        "amd_energy",
        {"energy1_input": 5_000_000, "energy2_input": 7_000_000, "energy17_input": 90_000_000},
        {"energy1": "Ecore000", "energy2": "Ecore001", "energy17": "Esocket0"},
        mode=0o400,
    )
    discovered = sensor(sysfs)
    found = discovered.discover()
    assert found.devices == (DeviceKey(Component.CPU, "package-0", "hwmon"),)
    assert dict(found.skipped) == {"inside_another": 2}
    (reading,) = discovered.read().readings
    assert isinstance(reading, CounterReading) and reading.energy_uj == 90_000_000


def test_a_per_socket_chip_next_to_rapl_is_never_added(sysfs: Path, tmp_path: Path) -> None:
    """AMD's amd_energy reads the same MSRs as RAPL: RAPL's package-0 is used, hwmon's not."""
    FakePowercap(sysfs).add_zone((0,), "package-0", energy_uj=1_000)
    FakeHwmon(sysfs).add_chip(
        "amd_energy", {"energy1_input": 1_000}, {"energy1": "Esocket0"}, mode=0o400
    )
    context = SourceContext(roots=SensorRoots(sysfs=sysfs, procfs=tmp_path))
    selection = {item.spec.name: item for item in select_sensors(SensorsSection(), context)}
    assert selection["rapl"].used == {DeviceKey(Component.CPU, "package-0", "rapl")}
    assert not selection["hwmon"].used
    assert ("measured by rapl", 1) in selection["hwmon"].discovery.skipped
    assert any("measured by rapl" in line for line in selection["hwmon"].discovery.details)


def test_unknown_chips_are_listed_never_added_and_filters_apply(sysfs: Path) -> None:
    hwmon = FakeHwmon(sysfs)
    hwmon.add_chip("lm25066", {"power1_input": 80_000_000})  # a hot-swap controller: whose?
    hwmon.add_chip("amdgpu", {"power1_average": 100_000_000})
    hwmon.add_chip("amdgpu", {"power1_average": 120_000_000})
    hwmon.add_chip("power_meter", {"power1_average": 500_000_000})
    found = sensor(sysfs).discover()
    assert [k.device for k in found.devices] == ["amdgpu", "amdgpu.1", "power_meter"]
    assert dict(found.skipped) == {"unknown_chip": 1}
    assert any("lm25066" in line and "not added" in line for line in found.details)
    assert [k.device for k in sensor(sysfs, exclude=["amdgpu*"]).discover().devices] == [
        "power_meter"
    ]
    only = sensor(sysfs, include=["power_meter"]).discover()
    assert only.devices == (METER,)


def test_a_meter_that_cannot_be_read_says_why(sysfs: Path) -> None:
    chip = FakeHwmon(sysfs).add_chip("power_meter", {"power1_average": 400_000_000})

    def denied(path: Path) -> str:  # the tests run as root, where a mode does not deny
        if path.name == "power1_average":
            raise PermissionError(13, "Permission denied", str(path))
        return read_sysfs_text(path)

    locked = HwmonSensor(SensorRoots(sysfs=sysfs), HwmonSettings(), denied)
    assert locked.discover().devices == (METER,)
    read = locked.read()
    assert not read.readings
    assert read.statuses[0].status is SourceStatus.PERMISSION_DENIED
    discovered = sensor_after(sysfs)
    (chip.attributes_dir / "power1_average").unlink()
    assert discovered.read().statuses[0].status is SourceStatus.NOT_PRESENT
    assert not sensor(sysfs / "nothing").discover().devices


def test_an_acpi_meter_defines_node_energy_with_the_unmeasured_rest(
    sysfs: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    """RAPL 200 W inside an ACPI power meter reading 260 W: node power 260 W, 60 W unmeasured."""
    tree = FakePowercap(sysfs)
    package = tree.add_zone((0,), "package-0")
    FakeHwmon(sysfs).add_chip("power_meter", {"power1_average": 260_000_000})
    roots = SensorRoots(sysfs=sysfs)
    monitor = make_monitor(RaplSensor(roots), HwmonSensor(roots))
    monitor.sample()
    for _ in range(10):
        package.advance(200_000_000)
        clock.advance(1.0)
        snap = monitor.sample()
    assert NodeEnergyPlan.for_devices([METER], platform_meter_sources()).meter == METER
    devices = {d.key: d for d in snap.devices}
    unmeasured = devices[DeviceKey(Component.PLATFORM, "unmeasured", "reconciled")]
    assert unmeasured.energy_uj == 600_000_000  # 60 W x 10 s
    assert snap.node_energy_uj == devices[METER].energy_uj == 2_600_000_000
    assert snap.node_power_w == 260.0
    assert snap.node_energy_meter == METER
    assert not devices[METER].in_node_energy and unmeasured.in_node_energy
