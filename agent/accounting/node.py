"""Which devices make up the node's IT energy, so that each joule is counted once.

- psys (component ``platform``) already contains the packages and DRAM: when the node has a
  platform device, node energy = platform + GPUs, and packages/DRAM are shown but not added.
- otherwise node energy = CPU packages + DRAM + GPUs.
The plan is fixed at start-up from the devices discovered, not per sample: a counter read that
fails once and catches up later must land in the same sum it would have landed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from carbonscope.sensors.base import Component, DeviceKey


@dataclass(frozen=True)
class NodeEnergyPlan:
    components: frozenset[Component]

    @classmethod
    def for_devices(cls, devices: Iterable[DeviceKey]) -> NodeEnergyPlan:
        present = {key.component for key in devices}
        if Component.PLATFORM in present:
            return cls(frozenset({Component.PLATFORM, Component.GPU}))
        return cls(frozenset({Component.CPU, Component.DRAM, Component.GPU}))

    def counts(self, key: DeviceKey) -> bool:
        return key.component in self.components
