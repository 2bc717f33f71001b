"""Emissions: IT energy x PUE x the emission factor in force, per accounting method.

One value type for every place that turns energy into grams (the monitor's node totals, the
intensity periods, job totals, the ledger and the views): ``Emissions.of(energy, factors)``
at each sample, summed with ``+``. Location- and market-based are GHG Protocol Scope 2;
marginal is the emissions of the next kWh (for shifting load) and never part of Scope 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from carbonscope.units import UJ_PER_KWH


def grams(energy_uj: int, intensity_g_per_kwh: float, pue: float) -> float:
    """Emissions of facility energy: IT energy x PUE x grid intensity."""
    return energy_uj * pue * intensity_g_per_kwh / UJ_PER_KWH


@dataclass(frozen=True)
class EmissionFactors:
    """What turns one sample's IT energy into grams."""

    pue: float
    location_g_per_kwh: float  # the grid average in force
    market_g_per_kwh: float  # contractual instruments, else the location factor
    marginal_g_per_kwh: float | None = None  # only under a marginal signal (WattTime)


@dataclass(frozen=True)
class Emissions:
    location_g: float = 0.0
    market_g: float = 0.0
    marginal_g: float = 0.0  # stays 0 without a marginal signal

    @classmethod
    def of(cls, energy_uj: int, factors: EmissionFactors) -> Emissions:
        marginal = factors.marginal_g_per_kwh
        return cls(
            location_g=grams(energy_uj, factors.location_g_per_kwh, factors.pue),
            market_g=grams(energy_uj, factors.market_g_per_kwh, factors.pue),
            marginal_g=grams(energy_uj, marginal, factors.pue) if marginal is not None else 0.0,
        )

    def __add__(self, other: Emissions) -> Emissions:
        return Emissions(
            self.location_g + other.location_g,
            self.market_g + other.market_g,
            self.marginal_g + other.marginal_g,
        )


NO_EMISSIONS = Emissions()
