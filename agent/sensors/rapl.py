"""RAPL energy counters through the powercap sysfs interface.

Walks the real zone hierarchy, ``<sysfs>/devices/virtual/powercap/intel-rapl/intel-rapl:N[:M]``,
never the flat ``/sys/class/powercap`` symlinks (they list parents and children side by side).
Top-level ``package-N`` / ``package-N-die-M`` zones are CPU devices, their ``dram`` children
DRAM devices, ``psys`` the platform. ``core``/``uncore`` children are parts of a package and
are skipped; ``intel-rapl-mmio`` repeats the package counter and is never read. AMD Zen
exposes the same ``intel-rapl`` control type (``package-N`` + ``core``), handled alike.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from carbonscope.sensors.base import (
    SOURCE_WIDE,
    Component,
    CounterReading,
    DeviceKey,
    DeviceStatus,
    Discovery,
    SensorRead,
    SensorRoots,
    SourceSettings,
    SourceStatus,
    read_sysfs_text,
)

log = logging.getLogger(__name__)

SOURCE = "rapl"
# Control types that carry the package counters, in order of preference. The MMIO interface
# (intel-rapl-mmio) duplicates the MSR package counter on client CPUs and is deliberately absent.
CONTROL_TYPES = ("intel-rapl", "intel-rapl-tpmi")
DUPLICATE_CONTROL_TYPES = ("intel-rapl-mmio",)
SKIP_INSIDE_PACKAGE = "inside_package"  # core, uncore: parts of their package's energy
SKIP_DUPLICATE = "duplicate"  # intel-rapl-mmio repeating a package counted elsewhere
SKIP_UNREADABLE = "unreadable"  # name or max_energy_range_uj could not be read
_PACKAGE = re.compile(r"^package-(\d+)(-die-\d+)?$")

PERMISSION_HINT = (
    "energy_uj is readable by root only (CVE-2020-8694): run carbonscope as root, give the "
    "service CAP_DAC_READ_SEARCH (deploy/systemd/carbonscope.service does), or grant a group "
    "read access with a udev rule; see docs/sensors.md#rapl-permissions"
)


class RaplSettings(SourceSettings):
    """``[sensors.rapl]``"""

    # A counter drop is a wrap only if the wrapped delta implies at most this power per zone.
    max_zone_watts: Annotated[float, Field(gt=0)] = 2000.0


@dataclass(frozen=True)
class RaplZone:
    path: Path
    key: DeviceKey
    max_energy_range_uj: int
    max_plausible_uw: int | None = None  # twice the zone's highest constraint max_power_uw


def _zone_key(name: str, parent: str | None) -> DeviceKey | None:
    if parent is None:
        if _PACKAGE.match(name):
            return DeviceKey(Component.CPU, name, SOURCE)
        if name == "psys":
            return DeviceKey(Component.PLATFORM, "psys", SOURCE)
        if name == "dram":  # a few platforms expose DRAM as its own top-level zone
            return DeviceKey(Component.DRAM, "dram", SOURCE)
        return None
    if name == "dram":
        return DeviceKey(Component.DRAM, parent.replace("package", "dram", 1), SOURCE)
    return None  # core, uncore: already inside their package's energy


class RaplSensor:
    name = SOURCE

    def __init__(
        self,
        roots: SensorRoots,
        opener: Callable[[Path], str] = read_sysfs_text,
    ) -> None:
        self._powercap = roots.sysfs / "devices/virtual/powercap"
        self._class_dir = roots.sysfs / "class/powercap"
        self.skipped: Counter[str] = Counter()
        self._open = opener
        self._zones: tuple[RaplZone, ...] = ()
        self._warned_permission = False

    def _read_int(self, path: Path) -> int:
        return int(self._open(path).strip())

    def _zone_dirs(self, control_type: str) -> list[tuple[tuple[int, ...], Path]]:
        """Every zone of a control type with its index, e.g. ((0,), .../intel-rapl:0) and
        ((0, 1), .../intel-rapl:0/intel-rapl:0:1). The kernel names zones "%s:%x": indices
        are hexadecimal (the eleventh package is intel-rapl:a). Found in the real hierarchy
        under devices/virtual/powercap, else in the flat class/powercap folder, whose entries
        are symlinks on a host and plain directories where only that folder is mounted."""
        hierarchy = self._powercap / control_type
        if hierarchy.is_dir():
            found = [path for path in hierarchy.rglob(f"{control_type}:*") if path.is_dir()]
        elif self._class_dir.is_dir():
            found = [p for p in self._class_dir.glob(f"{control_type}:*") if p.is_dir()]
        else:
            return []
        zones = []
        for path in found:
            parts = path.name.split(":")
            if parts[0] != control_type or not 2 <= len(parts) <= 3:
                continue
            try:
                zones.append((tuple(int(part, 16) for part in parts[1:]), path))
            except ValueError:
                continue
        return sorted(zones)

    def _ceiling_uw(self, zone_dir: Path) -> int | None:
        """Twice the highest ``constraint_*_max_power_uw`` the zone declares (the most the
        hardware lets its limits be set to), or None when it declares none."""
        highest = 0
        for path in sorted(zone_dir.glob("constraint_*_max_power_uw")):
            try:
                highest = max(highest, self._read_int(path))
            except (OSError, ValueError):
                continue
        return 2 * highest if highest > 0 else None

    def _zones_of(self, control_type: str) -> tuple[list[RaplZone], list[str]]:
        """The zones carbonscope counts, and what it skipped and why. One unreadable or odd
        zone is skipped alone: it never drops the others."""
        zones: list[RaplZone] = []
        skipped: list[str] = []
        names: dict[tuple[int, ...], str] = {}
        for index, zone_dir in self._zone_dirs(control_type):
            try:
                name = self._open(zone_dir / "name").strip()
                names[index] = name
                parent = names.get(index[:1]) if len(index) == 2 else None
                key = _zone_key(name, parent)
                if key is None:
                    skipped.append(f"{zone_dir.name} ({name}): inside its package")
                    self.skipped[SKIP_INSIDE_PACKAGE] += 1
                    continue
                max_range = self._read_int(zone_dir / "max_energy_range_uj")
            except (OSError, ValueError) as exc:
                skipped.append(f"{zone_dir.name}: unreadable ({exc})")
                self.skipped[SKIP_UNREADABLE] += 1
                continue
            zones.append(RaplZone(zone_dir, key, max_range, self._ceiling_uw(zone_dir)))
        return zones, skipped

    def discover(self) -> Discovery:
        self.skipped = Counter()
        if not self._powercap.is_dir() and not self._class_dir.is_dir():
            reason = (
                f"no powercap interface under {self._powercap} (VM, container or no intel_rapl)"
            )
            return Discovery(
                statuses=(DeviceStatus(SOURCE, SOURCE_WIDE, SourceStatus.NOT_PRESENT, reason),)
            )
        details: list[str] = []
        zones: list[RaplZone] = []
        for control_type in CONTROL_TYPES:
            found, skipped = self._zones_of(control_type)
            if found:
                zones = found
                details.append(f"control type {control_type}")
                if skipped:
                    details.append("skipped: " + ", ".join(skipped))
                break
        counted = {zone.key.device for zone in zones}
        for duplicate in DUPLICATE_CONTROL_TYPES:
            extra, _skipped = self._zones_of(duplicate)
            alone = [zone for zone in extra if zone.key.device not in counted]
            if alone:  # the only counter of these packages: nothing else counts them
                zones += alone
                details.append(
                    f"{duplicate} used for {', '.join(z.key.device for z in alone)}: "
                    "no other counter for that package"
                )
            if len(alone) < len(extra):
                self.skipped[SKIP_DUPLICATE] += len(extra) - len(alone)
                details.append(f"{duplicate} ignored: it repeats the package counter")
        if not zones:
            reason = f"no RAPL zones under {self._powercap}"
            return Discovery(
                statuses=(DeviceStatus(SOURCE, SOURCE_WIDE, SourceStatus.NOT_PRESENT, reason),),
                details=tuple(details),
                skipped=self._skipped_tuple(),
            )
        self._zones = tuple(zones)
        return Discovery(
            devices=tuple(z.key for z in zones),
            details=tuple(details),
            skipped=self._skipped_tuple(),
        )

    def _skipped_tuple(self) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(self.skipped.items()))

    def read(self) -> SensorRead:
        readings: list[CounterReading] = []
        statuses: list[DeviceStatus] = []
        for zone in self._zones:
            path = zone.path / "energy_uj"
            try:
                value = self._read_int(path)
            except PermissionError:
                if not self._warned_permission:
                    log.warning("cannot read %s: permission denied. %s", path, PERMISSION_HINT)
                    self._warned_permission = True
                statuses.append(self._status(zone, SourceStatus.PERMISSION_DENIED, PERMISSION_HINT))
                continue
            except FileNotFoundError:
                statuses.append(self._status(zone, SourceStatus.NOT_PRESENT, f"{path} vanished"))
                continue
            except (OSError, ValueError) as exc:
                statuses.append(self._status(zone, SourceStatus.ERROR, f"{path}: {exc}"))
                continue
            readings.append(
                CounterReading(
                    zone.key,
                    value,
                    zone.max_energy_range_uj,
                    max_plausible_uw=zone.max_plausible_uw,
                )
            )
            statuses.append(self._status(zone, SourceStatus.OK))
        return SensorRead(tuple(readings), tuple(statuses))

    @staticmethod
    def _status(zone: RaplZone, status: SourceStatus, reason: str = "") -> DeviceStatus:
        return DeviceStatus(SOURCE, zone.key.device, status, reason)
