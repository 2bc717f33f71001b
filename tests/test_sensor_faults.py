"""Fault cases on the RAPL source: zones that vanish and return, permissions that flip, a
counter reset while a zone is away. Each case ends with the exact energy of every device and
of the node, not only "no crash"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carbonscope.sensors.base import SensorRoots, SourceStatus, read_sysfs_text
from carbonscope.sensors.rapl import PERMISSION_HINT, RaplSensor
from carbonscope.snapshot import Snapshot
from tests.conftest import MonitorFactory
from tests.fakes.clock import ManualClock
from tests.fakes.powercap import FakePowercap, two_socket_server

pytestmark = pytest.mark.faults

WATTS = {"intel-rapl:0": 100, "intel-rapl:0:0": 10, "intel-rapl:1": 80, "intel-rapl:1:0": 8}
DEVICES = {"intel-rapl:0": "package-0", "intel-rapl:0:0": "dram-0"}
DEVICES |= {"intel-rapl:1": "package-1", "intel-rapl:1:0": "dram-1"}


def energy(snapshot: Snapshot) -> dict[str, int]:
    return {d.key.device: d.energy_uj for d in snapshot.devices}


def status(snapshot: Snapshot) -> dict[str, SourceStatus]:
    return {s.device: s.status for s in snapshot.statuses if s.source == "rapl"}


class Node:
    """Two sockets drawing constant power; ``second`` advances every counter by one second."""

    def __init__(self, sysfs: Path, clock: ManualClock) -> None:
        self.tree: FakePowercap = two_socket_server(sysfs, with_psys=False, with_mmio=False)
        self.clock = clock
        self.seconds = 0

    def second(self) -> None:
        for name, watts in WATTS.items():
            self.tree.zones[name].advance(watts * 1_000_000)
        self.clock.advance(1.0)
        self.seconds += 1

    def expected(self, missing: dict[str, int] | None = None) -> dict[str, int]:
        """Energy since the baseline, less ``missing`` seconds of the named zones."""
        missing = missing or {}
        return {
            DEVICES[name]: watts * 1_000_000 * (self.seconds - missing.get(name, 0))
            for name, watts in WATTS.items()
        }


@pytest.fixture
def node(sysfs: Path, clock: ManualClock) -> Node:
    return Node(sysfs, clock)


def rapl(sysfs: Path, **kwargs: object) -> RaplSensor:
    return RaplSensor(SensorRoots(sysfs=sysfs, procfs=Path("/nonexistent")), **kwargs)  # type: ignore[arg-type]


def test_a_zone_that_vanishes_and_returns_loses_nothing(
    sysfs: Path, node: Node, make_monitor: MonitorFactory
) -> None:
    """intel_rapl unloaded and loaded again, or a socket's zone gone for a while: the hardware
    counter ran on, so the first read after its return counts the whole gap, once."""
    monitor = make_monitor(rapl(sysfs))
    monitor.sample()
    node.second()
    monitor.sample()
    package1 = node.tree.zones["intel-rapl:1"].path
    away = sysfs.parent / "away"
    shutil.move(package1, away)  # the directory and its dram child vanish
    for _ in range(3):
        node.second()
        gone = monitor.sample()
        assert status(gone)["package-1"] is SourceStatus.NOT_PRESENT
        assert status(gone)["dram-1"] is SourceStatus.NOT_PRESENT
        assert status(gone)["package-0"] is SourceStatus.OK
    # While it is away only the other socket counts; the gap is not guessed at.
    assert energy(gone) == node.expected({"intel-rapl:1": 3, "intel-rapl:1:0": 3})
    shutil.move(away, package1)
    node.second()
    back = monitor.sample()
    assert set(status(back).values()) == {SourceStatus.OK}
    assert energy(back) == node.expected()
    assert back.node_energy_uj == sum(node.expected().values())


def test_a_zone_that_returns_with_a_reset_counter_is_re_based_counting_nothing_twice(
    sysfs: Path, node: Node, make_monitor: MonitorFactory
) -> None:
    zone = node.tree.zones["intel-rapl:1"]
    zone.set_energy(500_000_000)  # some way into its range, as after days of uptime
    monitor = make_monitor(rapl(sysfs))
    monitor.sample()
    node.second()
    monitor.sample()
    away = sysfs.parent / "away"
    shutil.move(zone.path, away)
    node.second()
    monitor.sample()
    shutil.move(away, zone.path)
    zone.set_energy(1_000)  # it came back from a CPU hotplug with a fresh counter
    node.second()  # 80.001 J: below the last good read (580 J), and no plausible wrap
    held = monitor.sample()
    assert status(held)["package-1"] is SourceStatus.ERROR
    node.second()  # the counter goes on from the new value: a reset, re-based
    monitor.sample()
    node.second()
    final = monitor.sample()
    # package-1: 1 s before it left; nothing for the second away nor for the held read (what
    # the old counter did before its reset is unknowable); then each second from the held
    # value on, exactly: the confirming read and the last one.
    expected = node.expected()
    expected["package-1"] = 3 * 80_000_000
    assert energy(final) == expected
    assert final.node_energy_uj == sum(expected.values())
    assert status(final)["package-1"] is SourceStatus.OK


def test_permissions_that_flip_cost_a_status_and_no_joule(
    sysfs: Path, node: Node, make_monitor: MonitorFactory
) -> None:
    """A udev rule or tmpfiles.d mode change revoking, then restoring, read access."""
    denied: set[str] = set()

    def opener(path: Path) -> str:
        if path.name == "energy_uj" and path.parent.name in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return read_sysfs_text(path)

    monitor = make_monitor(rapl(sysfs, opener=opener))
    monitor.sample()
    node.second()
    monitor.sample()
    denied |= {"intel-rapl:0", "intel-rapl:1:0"}
    for _ in range(2):
        node.second()
        flipped = monitor.sample()
    assert status(flipped) == {
        "package-0": SourceStatus.PERMISSION_DENIED,
        "dram-0": SourceStatus.OK,
        "package-1": SourceStatus.OK,
        "dram-1": SourceStatus.PERMISSION_DENIED,
    }
    reasons = {s.device: s.reason for s in flipped.statuses}
    assert reasons["package-0"] == PERMISSION_HINT
    assert energy(flipped) == node.expected({"intel-rapl:0": 2, "intel-rapl:1:0": 2})
    denied.clear()
    node.second()
    restored = monitor.sample()
    assert energy(restored) == node.expected()
    assert restored.node_energy_uj == sum(node.expected().values())
    denied.add("intel-rapl:0")  # and again, for every zone at once
    denied |= set(WATTS)
    node.second()
    monitor.sample()
    denied.clear()
    node.second()
    assert energy(monitor.sample()) == node.expected()
