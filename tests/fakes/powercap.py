"""A powercap sysfs tree laid out like the kernel's (Documentation/power/powercap/powercap.rst).

Real zone directories live under devices/virtual/powercap/<control-type>/; class/powercap/
holds a flat set of relative symlinks to every zone, parents and children alike, plus one to
each control type; each zone and control type links back to the class through ``subsystem``.
Counter files are mode 0400 like energy_uj since CVE-2020-8694.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_RANGE_UJ = 262_143_328_850


def write_sysfs_file(path: Path, text: str, mode: int = 0o444) -> None:
    """Replace a file atomically, as a sysfs read never sees half a value."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass
class FakeZone:
    path: Path
    name: str
    max_energy_range_uj: int
    energy_uj: int = 0

    def set_energy(self, energy_uj: int) -> None:
        """The hardware counter's new value; shown in sysfs while the zone is there (a zone
        whose directory has vanished keeps counting, as the MSR does)."""
        self.energy_uj = energy_uj
        if self.path.is_dir():
            write_sysfs_file(self.path / "energy_uj", f"{energy_uj}\n", 0o400)

    def advance(self, delta_uj: int) -> None:
        """Consume delta_uj of energy, wrapping like the hardware counter."""
        self.set_energy((self.energy_uj + delta_uj) % (self.max_energy_range_uj + 1))


@dataclass
class FakePowercap:
    sysfs: Path
    zones: dict[str, FakeZone] = field(default_factory=dict)

    @property
    def devices_dir(self) -> Path:
        return self.sysfs / "devices/virtual/powercap"

    @property
    def class_dir(self) -> Path:
        return self.sysfs / "class/powercap"

    def _control_type(self, control_type: str) -> Path:
        directory = self.devices_dir / control_type
        if not directory.exists():
            directory.mkdir(parents=True)
            write_sysfs_file(directory / "enabled", "1\n", 0o644)
            self.class_dir.mkdir(parents=True, exist_ok=True)
            link = self.class_dir / control_type
            link.symlink_to(os.path.relpath(directory, self.class_dir))
            self._subsystem_link(directory)
        return directory

    def _subsystem_link(self, directory: Path) -> None:
        """Every sysfs device has ``subsystem`` -> its class (here class/powercap): a loop
        for anyone who walks the tree following links; codecarbon lists zones through it."""
        (directory / "subsystem").symlink_to(os.path.relpath(self.class_dir, directory))

    def add_zone(
        self,
        index: tuple[int, ...],
        name: str,
        energy_uj: int = 0,
        control_type: str = "intel-rapl",
        max_energy_range_uj: int = DEFAULT_MAX_RANGE_UJ,
    ) -> FakeZone:
        """Add zone <control_type>:<i>[:<j>]; a child's parent must exist already. Indices are
        written in hex, as the kernel's "%s:%x" does (the eleventh package is intel-rapl:a)."""
        parent = self._control_type(control_type)
        for depth in range(1, len(index)):
            parent = parent / f"{control_type}:{':'.join(f'{i:x}' for i in index[:depth])}"
        zone_name = f"{control_type}:{':'.join(f'{i:x}' for i in index)}"
        directory = parent / zone_name
        directory.mkdir()
        write_sysfs_file(directory / "name", f"{name}\n")
        write_sysfs_file(directory / "max_energy_range_uj", f"{max_energy_range_uj}\n")
        write_sysfs_file(directory / "enabled", "1\n", 0o644)
        for k, constraint in enumerate(("long_term", "short_term")):
            write_sysfs_file(directory / f"constraint_{k}_name", f"{constraint}\n")
            write_sysfs_file(directory / f"constraint_{k}_power_limit_uw", "150000000\n", 0o644)
            write_sysfs_file(directory / f"constraint_{k}_time_window_us", "999424\n", 0o644)
        (self.class_dir / zone_name).symlink_to(os.path.relpath(directory, self.class_dir))
        self._subsystem_link(directory)
        zone = FakeZone(directory, name, max_energy_range_uj)
        zone.set_energy(energy_uj)
        self.zones[zone_name] = zone
        return zone


def two_socket_server(sysfs: Path, with_psys: bool = True, with_mmio: bool = True) -> FakePowercap:
    """Two packages with DRAM children (socket 0 also has a core child), psys, an mmio duplicate."""
    tree = FakePowercap(sysfs)
    tree.add_zone((0,), "package-0", 1_000_000)
    tree.add_zone((0, 0), "dram", 2_000_000)
    tree.add_zone((0, 1), "core", 3_000_000)
    tree.add_zone((1,), "package-1", 4_000_000)
    tree.add_zone((1, 0), "dram", 5_000_000)
    if with_psys:
        tree.add_zone((2,), "psys", 6_000_000)
    if with_mmio:
        tree.add_zone((0,), "package-0", 7_000_000, control_type="intel-rapl-mmio")
    return tree
