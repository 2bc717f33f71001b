"""hwmon chips laid out like the kernel's (Documentation/hwmon/sysfs-interface.rst).

A chip's directory is ``devices/<parent device>/hwmon/hwmonN``, linked from
``class/hwmon/hwmonN``; ``device`` links back to the parent. Its attributes (``name``,
``powerN_input``, ``energyN_input``, ``*_label``) sit in hwmonN/, or, on older kernels and
drivers (the ACPI power meter before 5.x), in the parent device: ``hwmonN/device/``.
Values are text with a newline; energy counters of amd_energy are root-only (0400).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.powercap import write_sysfs_file


@dataclass
class FakeChip:
    attributes_dir: Path  # where name and the readings are

    def set(self, attribute: str, value: int, mode: int = 0o444) -> None:
        write_sysfs_file(self.attributes_dir / attribute, f"{value}\n", mode)

    def advance(self, attribute: str, delta: int) -> None:
        path = self.attributes_dir / attribute
        mode = path.stat().st_mode & 0o777
        self.set(attribute, int(path.read_text()) + delta, mode)


class FakeHwmon:
    def __init__(self, sysfs: Path) -> None:
        self.sysfs = sysfs
        self.count = 0

    def add_chip(
        self,
        name: str,
        readings: dict[str, int],
        labels: dict[str, str] | None = None,
        parent: str = "platform/chip",
        legacy: bool = False,
        mode: int = 0o444,
    ) -> FakeChip:
        """A chip named ``name`` with ``readings`` ("power1_input": µW, "energy1_input": µJ)
        and their labels ("energy1": "Esocket0"); ``legacy``: attributes in hwmonN/device/."""
        index = self.count
        self.count += 1
        parent_dir = self.sysfs / "devices" / parent / str(index)
        hwmon_dir = parent_dir / "hwmon" / f"hwmon{index}"
        hwmon_dir.mkdir(parents=True)
        (hwmon_dir / "device").symlink_to(os.path.relpath(parent_dir, hwmon_dir))
        class_dir = self.sysfs / "class/hwmon"
        class_dir.mkdir(parents=True, exist_ok=True)
        (class_dir / f"hwmon{index}").symlink_to(os.path.relpath(hwmon_dir, class_dir))
        attributes = parent_dir if legacy else hwmon_dir
        write_sysfs_file(attributes / "name", f"{name}\n")
        chip = FakeChip(attributes)
        for attribute, value in readings.items():
            chip.set(attribute, value, mode)
        for sensor, label in (labels or {}).items():
            write_sysfs_file(attributes / f"{sensor}_label", f"{label}\n")
        if name == "power_meter":
            write_sysfs_file(attributes / "power1_average_interval", "1000\n", 0o644)
        return chip
