"""Energy totals of one consumer (a job): per component, measured vs modelled, and emissions.

The one shape the job registry, its records, the ledger, the API's JSON and the exported view
share, so a new total is added here once instead of copied field by field through each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from carbonscope.accounting.emissions import NO_EMISSIONS, Emissions
from carbonscope.sensors.base import Component


@dataclass(frozen=True)
class EnergyTotals:
    energy_uj: tuple[tuple[Component, int], ...] = ()  # node-energy components only, sorted
    measured_uj: int = 0
    modelled_uj: int = 0
    emissions: Emissions = NO_EMISSIONS
    # The idle share inside energy_uj (jobs.idle_policy), by component, sorted; the rest of
    # energy_uj is the job's active energy.
    idle_uj: tuple[tuple[Component, int], ...] = ()
    embodied_g: float = 0.0  # Scope 3: its share of the hardware's amortised footprint

    @property
    def energy_total_uj(self) -> int:
        return sum(uj for _component, uj in self.energy_uj)

    @property
    def idle_total_uj(self) -> int:
        return sum(uj for _component, uj in self.idle_uj)

    def energy_of(self, component: Component) -> int:
        return dict(self.energy_uj).get(component, 0)

    def plus(
        self,
        energy_uj: Mapping[Component, int],
        measured_uj: int,
        modelled_uj: int,
        emissions: Emissions,
        idle_uj: Mapping[Component, int] | None = None,
        embodied_g: float = 0.0,
    ) -> EnergyTotals:
        """These totals with one sample's share added (``idle_uj``: the part of
        ``energy_uj`` that is idle share)."""
        return EnergyTotals(
            energy_uj=_merged(self.energy_uj, energy_uj),
            measured_uj=self.measured_uj + measured_uj,
            modelled_uj=self.modelled_uj + modelled_uj,
            emissions=self.emissions + emissions,
            idle_uj=_merged(self.idle_uj, idle_uj or {}),
            embodied_g=self.embodied_g + embodied_g,
        )


def _merged(
    totals: tuple[tuple[Component, int], ...], added: Mapping[Component, int]
) -> tuple[tuple[Component, int], ...]:
    merged = dict(totals)
    for component, uj in added.items():
        merged[component] = merged.get(component, 0) + uj
    return tuple(sorted(merged.items()))
