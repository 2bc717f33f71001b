"""hwmon power and energy sensors (Documentation/hwmon/sysfs-interface.rst).

Each ``<sysfs>/class/hwmon/hwmonN`` is one chip; its attributes sit in that directory, or in
``hwmonN/device/`` on older kernels (the ``name`` file tells which). ``powerN_input`` and
``powerN_average`` are µW, ``energyN_input`` a µJ counter; ``name`` and ``*_label`` say what
they measure. Only chips whose component is known are counted (``CHIPS``): an unknown chip's
power may be a voltage regulator inside a package already counted, so it is listed in
``probe``, never added. Where a chip has an energy counter, its power readings are not used.

- ``power_meter`` (ACPI 4.0 power meter) measures the whole platform: a wall or PSU meter,
  which reconciliation compares with the components (accounting/reconcile.py).
- ``amd_energy`` / ``zenergy``: per-socket (``Esocket<N>``: CPU ``package-N``) and per-core
  counters; the cores are inside their socket and skipped. These are the RAPL MSRs again:
  selection uses them only where RAPL measures no CPU (never both for the same domain).
- ``fam15h_power``: a package's power; ``amdgpu``, ``i915``, ``xe``, ``nouveau``: a GPU's
  (``xe``'s ``pkg`` is inside its ``card``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from carbonscope.sensors.base import (
    PLATFORM_CEILING_UW,
    SOURCE_WIDE,
    UNWRAPPED_RANGE_UJ,
    Component,
    CounterReading,
    DeviceKey,
    DeviceStatus,
    Discovery,
    PowerKind,
    PowerReading,
    SensorRead,
    SensorRoots,
    SourceSettings,
    SourceStatus,
    read_sysfs_text,
)

SOURCE = "hwmon"

CHIPS: dict[str, Component] = {
    "power_meter": Component.PLATFORM,
    "amd_energy": Component.CPU,
    "zenergy": Component.CPU,
    "fam15h_power": Component.CPU,
    "amdgpu": Component.GPU,
    "i915": Component.GPU,
    "xe": Component.GPU,
    "nouveau": Component.GPU,
}
_ATTRIBUTE = re.compile(r"^(power|energy)(\d+)_(input|average)$")
_SOCKET = re.compile(r"^Esocket(\d+)$", re.IGNORECASE)
_CORE = re.compile(r"^Ecore\d+$", re.IGNORECASE)
SKIP_UNKNOWN_CHIP = "unknown_chip"
SKIP_INSIDE = "inside_another"  # a core inside its socket, a GPU's package inside its card
SKIP_FILTERED = "filtered"
SKIP_UNREADABLE = "unreadable"


class HwmonSettings(SourceSettings):
    """``[sensors.hwmon]``: chip names (or devices) as globs; empty include: every known chip."""

    include: list[str] = []
    exclude: list[str] = []


@dataclass(frozen=True)
class HwmonChannel:
    """One attribute read: ``path`` is ``powerN_input``/``powerN_average``/``energyN_input``."""

    key: DeviceKey
    path: Path
    kind: PowerKind | None  # None: an energy counter


@dataclass(frozen=True)
class _Attribute:
    quantity: str  # "power" or "energy"
    index: int
    path: Path
    kind: PowerKind | None
    label: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.strip().lower()).strip("-")


class HwmonSensor:
    name = SOURCE

    def __init__(
        self,
        roots: SensorRoots,
        settings: HwmonSettings | None = None,
        opener: Callable[[Path], str] = read_sysfs_text,
    ) -> None:
        self._class_dir = roots.sysfs / "class/hwmon"
        self._settings = settings or HwmonSettings()
        self._open = opener
        self._sensors: tuple[HwmonChannel, ...] = ()
        self.skipped: Counter[str] = Counter()

    # -- discovery ---------------------------------------------------------------------------

    def _chip_dirs(self) -> list[tuple[str, Path]]:
        """(hwmonN, the directory holding its attributes), in numeric order."""
        found = []
        for entry in self._class_dir.glob("hwmon*"):
            suffix = entry.name[len("hwmon") :]
            if not suffix.isdigit():
                continue
            base = entry if (entry / "name").is_file() else entry / "device"
            if (base / "name").is_file():
                found.append((int(suffix), entry.name, base))
        return [(name, base) for _n, name, base in sorted(found)]

    def _attributes(self, base: Path) -> list[_Attribute]:
        attributes = []
        for path in base.iterdir():
            match = _ATTRIBUTE.match(path.name)
            if match is None:
                continue
            quantity, index, suffix = match.group(1), int(match.group(2)), match.group(3)
            if quantity == "energy" and suffix != "input":
                continue
            kind = None
            if quantity == "power":
                kind = PowerKind.INSTANT if suffix == "input" else PowerKind.INTERVAL_MEAN
            label_path = base / f"{quantity}{index}_label"
            try:
                label = self._open(label_path).strip() if label_path.is_file() else ""
            except OSError:
                label = ""
            attributes.append(_Attribute(quantity, index, path, kind, label))
        energy = [a for a in attributes if a.quantity == "energy"]
        if energy:  # a counter covers every joule; power readings would be sampled
            return sorted(energy, key=lambda a: a.index)
        by_index: dict[int, _Attribute] = {}
        for attribute in sorted(attributes, key=lambda a: (a.index, a.kind != PowerKind.INSTANT)):
            by_index.setdefault(attribute.index, attribute)  # powerN_input before _average
        return [by_index[index] for index in sorted(by_index)]

    def _wanted(self, chip: str, device: str) -> bool:
        def matches(patterns: list[str]) -> bool:
            return any(fnmatchcase(chip, p) or fnmatchcase(device, p) for p in patterns)

        settings = self._settings
        return (not settings.include or matches(settings.include)) and not matches(settings.exclude)

    def _chip_sensors(
        self, chip: str, chip_id: str, base: Path, component: Component, details: list[str]
    ) -> list[HwmonChannel]:
        attributes = self._attributes(base)
        labels = {a.label.lower() for a in attributes}
        kept: list[tuple[str, _Attribute]] = []
        for attribute in attributes:
            socket = _SOCKET.match(attribute.label)
            if _CORE.match(attribute.label) or ("card" in labels and attribute.label == "pkg"):
                self.skipped[SKIP_INSIDE] += 1
                continue
            if socket is not None:
                device = f"package-{socket.group(1)}"
            else:
                stem = f"{attribute.quantity}{attribute.index}"
                device = (
                    chip_id
                    if len(attributes) == 1
                    else f"{chip_id}-{_slug(attribute.label) or stem}"
                )
            kept.append((device, attribute))
        sensors = []
        for device, attribute in kept:
            if not self._wanted(chip, device):
                self.skipped[SKIP_FILTERED] += 1
                details.append(f"{device}: excluded by [sensors.hwmon] include/exclude")
                continue
            sensors.append(
                HwmonChannel(DeviceKey(component, device, SOURCE), attribute.path, attribute.kind)
            )
            details.append(f"{device}: {chip} {attribute.path.name} ({component.value})")
        return sensors

    def discover(self) -> Discovery:
        self.skipped = Counter()
        if not self._class_dir.is_dir():
            reason = f"no hwmon class under {self._class_dir}"
            return Discovery(
                statuses=(DeviceStatus(SOURCE, SOURCE_WIDE, SourceStatus.NOT_PRESENT, reason),)
            )
        details: list[str] = []
        sensors: list[HwmonChannel] = []
        seen: Counter[str] = Counter()
        for hwmon_name, base in self._chip_dirs():
            try:
                chip = self._open(base / "name").strip()
                has_power = any(_ATTRIBUTE.match(p.name) for p in base.iterdir())
            except OSError as exc:
                self.skipped[SKIP_UNREADABLE] += 1
                details.append(f"{hwmon_name}: unreadable ({exc})")
                continue
            if not has_power:
                continue
            component = CHIPS.get(chip)
            if component is None:
                self.skipped[SKIP_UNKNOWN_CHIP] += 1
                details.append(
                    f"{hwmon_name} ({chip}): power sensors of a chip whose component is not "
                    "known (it may sit inside a package already counted): not added"
                )
                continue
            chip_id = chip if not seen[chip] else f"{chip}.{seen[chip]}"
            seen[chip] += 1
            sensors += self._chip_sensors(chip, chip_id, base, component, details)
        self._sensors = tuple(sensors)
        skipped = tuple(sorted(self.skipped.items()))
        if not sensors:
            reason = f"no power or energy sensor of a known chip under {self._class_dir}"
            return Discovery(
                statuses=(DeviceStatus(SOURCE, SOURCE_WIDE, SourceStatus.NOT_PRESENT, reason),),
                details=tuple(details),
                skipped=skipped,
            )
        return Discovery(
            devices=tuple(sensor.key for sensor in sensors),
            details=tuple(details),
            skipped=skipped,
        )

    # -- one sample --------------------------------------------------------------------------

    def read(self) -> SensorRead:
        readings: list[CounterReading | PowerReading] = []
        statuses: list[DeviceStatus] = []
        for sensor in self._sensors:
            device = sensor.key.device
            try:
                value = int(self._open(sensor.path).strip())
            except PermissionError:
                statuses.append(
                    DeviceStatus(
                        SOURCE, device, SourceStatus.PERMISSION_DENIED, f"{sensor.path}: denied"
                    )
                )
                continue
            except FileNotFoundError:
                statuses.append(
                    DeviceStatus(
                        SOURCE, device, SourceStatus.NOT_PRESENT, f"{sensor.path} vanished"
                    )
                )
                continue
            except (OSError, ValueError) as exc:  # ENODATA: the meter has no reading yet
                statuses.append(
                    DeviceStatus(SOURCE, device, SourceStatus.ERROR, f"{sensor.path}: {exc}")
                )
                continue
            if value < 0:
                statuses.append(
                    DeviceStatus(SOURCE, device, SourceStatus.ERROR, f"{sensor.path}: {value} < 0")
                )
                continue
            if sensor.kind is None:
                ceiling = (
                    PLATFORM_CEILING_UW if sensor.key.component is Component.PLATFORM else None
                )
                readings.append(
                    CounterReading(sensor.key, value, UNWRAPPED_RANGE_UJ, None, ceiling)
                )
            else:
                readings.append(PowerReading(sensor.key, value, sensor.kind))
            statuses.append(DeviceStatus(SOURCE, device, SourceStatus.OK))
        return SensorRead(tuple(readings), tuple(statuses))
