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
        self._open = opener
        self._zones: tuple[RaplZone, ...] = ()
        self._warned_permission = False

    def _read_int(self, path: Path) -> int:
        return int(self._open(path).strip())

    def _zones_of(self, control_dir: Path) -> tuple[list[RaplZone], list[str]]:
        zones: list[RaplZone] = []
        skipped: list[str] = []
        prefix = control_dir.name
        top_level = sorted(
            (d for d in control_dir.glob(f"{prefix}:*") if d.name.count(":") == 1),
            key=lambda d: int(d.name.split(":")[1]),
        )
        for top in top_level:
            parent_name = self._open(top / "name").strip()
            candidates: list[tuple[Path, str, str | None]] = [(top, parent_name, None)]
            for child in sorted(
                top.glob(f"{top.name}:*"), key=lambda d: int(d.name.rsplit(":", 1)[1])
            ):
                candidates.append((child, self._open(child / "name").strip(), parent_name))
            for zone_dir, name, parent in candidates:
                key = _zone_key(name, parent)
                if key is None:
                    skipped.append(f"{zone_dir.name} ({name})")
                    continue
                zones.append(
                    RaplZone(zone_dir, key, self._read_int(zone_dir / "max_energy_range_uj"))
                )
        return zones, skipped

    def discover(self) -> Discovery:
        if not self._powercap.is_dir():
            reason = (
                f"no powercap interface under {self._powercap} (VM, container or no intel_rapl)"
            )
            return Discovery(
                statuses=(DeviceStatus(SOURCE, SOURCE_WIDE, SourceStatus.NOT_PRESENT, reason),)
            )
        details: list[str] = []
        zones: list[RaplZone] = []
        for control_type in CONTROL_TYPES:
            control_dir = self._powercap / control_type
            if not control_dir.is_dir():
                continue
            try:
                zones, skipped = self._zones_of(control_dir)
            except (OSError, ValueError) as exc:
                reason = f"cannot enumerate {control_dir}: {exc}"
                return Discovery(
                    statuses=(DeviceStatus(SOURCE, SOURCE_WIDE, SourceStatus.ERROR, reason),)
                )
            if zones:
                details.append(f"control type {control_type}")
                if skipped:
                    details.append("sub-zones inside their package: " + ", ".join(skipped))
                break
        for duplicate in DUPLICATE_CONTROL_TYPES:
            if (self._powercap / duplicate).is_dir():
                details.append(f"{duplicate} ignored: it repeats the package counter")
        if not zones:
            reason = f"no RAPL zones under {self._powercap}"
            return Discovery(
                statuses=(DeviceStatus(SOURCE, SOURCE_WIDE, SourceStatus.NOT_PRESENT, reason),),
                details=tuple(details),
            )
        self._zones = tuple(zones)
        return Discovery(devices=tuple(z.key for z in zones), details=tuple(details))

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
            readings.append(CounterReading(zone.key, value, zone.max_energy_range_uj))
            statuses.append(self._status(zone, SourceStatus.OK))
        return SensorRead(tuple(readings), tuple(statuses))

    @staticmethod
    def _status(zone: RaplZone, status: SourceStatus, reason: str = "") -> DeviceStatus:
        return DeviceStatus(SOURCE, zone.key.device, status, reason)
