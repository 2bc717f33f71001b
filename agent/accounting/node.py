"""Which devices make up the node's IT energy, so that each joule is counted once.

- psys (rapl's component ``platform``) already contains the packages and DRAM: when the node
  has it, the components are psys + GPUs, and packages/DRAM are shown but not added;
  otherwise the components are CPU packages + DRAM + GPUs.
- a platform meter (wall or PSU: IPMI, Redfish, hwmon's ACPI power meter) contains them all:
  it is never added. Node energy = components + the part of the meter's energy they leave
  unmeasured (``platform``/``unmeasured``/``reconciled``, accounting/reconcile.py). With
  several meters the first in the catalogue's preference defines it; the others are shown.
The plan is fixed at start-up from the devices discovered, not per sample: a counter read that
fails once and catches up later must land in the same sum it would have landed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from carbonscope.sensors.base import Component, DeviceKey

UNMEASURED = DeviceKey(Component.PLATFORM, "unmeasured", "reconciled")


@dataclass(frozen=True)
class NodeEnergyPlan:
    components: frozenset[Component]
    meter: DeviceKey | None = None  # the platform meter node energy follows
    meters: frozenset[DeviceKey] = frozenset()  # every platform meter: shown, never summed

    @classmethod
    def for_devices(
        cls, devices: Iterable[DeviceKey], meter_sources: Sequence[str] = ()
    ) -> NodeEnergyPlan:
        devices = list(devices)
        meters = [
            key
            for key in devices
            if key.component is Component.PLATFORM and key.source in meter_sources
        ]
        present = {key.component for key in devices if key not in meters}
        if Component.PLATFORM in present:
            components = {Component.PLATFORM, Component.GPU}
        else:
            components = {Component.CPU, Component.DRAM, Component.GPU}
        meter = None
        if meters:
            meter = min(meters, key=lambda k: (meter_sources.index(k.source), k.device))
            components.add(Component.PLATFORM)  # the unmeasured part
        return cls(frozenset(components), meter, frozenset(meters))

    def counts(self, key: DeviceKey) -> bool:
        return key not in self.meters and key.component in self.components
