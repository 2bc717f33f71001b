"""Yearly average grid intensity from codecarbon's packaged data files (codecarbon_data.py).

Units: global_energy_mix.json is gCO2e/kWh keyed by ISO 3166-1 alpha-3; usa_emissions.json is
lbs CO2e/MWh keyed by state name with a regionCode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pycountry

from carbonscope.codecarbon_data import (
    LBS_PER_MWH_TO_G_PER_KWH,
    WORLD,
    codecarbon_data_dir,
    normalise_location,
    sane_intensity,
    us_state_intensities,
)
from carbonscope.errors import LocationError

__all__ = [
    "LBS_PER_MWH_TO_G_PER_KWH",
    "WORLD",
    "OfflineIntensityData",
    "StaticIntensity",
    "codecarbon_data_dir",
]


@dataclass(frozen=True)
class StaticIntensity:
    """One location's yearly average intensity and where the number comes from."""

    location: str
    intensity_g_per_kwh: float
    year: int | None
    dataset: str
    # "direct" (combustion at the plant) or "lifecycle" where the data's own source says so;
    # codecarbon's country and world figures state no method: "unspecified" (docs/carbon.md).
    emission_factor_type: str = "unspecified"


class OfflineIntensityData:
    """Lookup of location codes ("FR", "FRA", "US-CA", "WORLD") in codecarbon's data."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._data_dir = data_dir or codecarbon_data_dir()

    def _load(self, relative: str) -> Any:
        with (self._data_dir / relative).open(encoding="utf-8") as handle:
            return json.load(handle)

    @cached_property
    def _countries(self) -> dict[str, Any]:
        data: dict[str, Any] = self._load("private_infra/global_energy_mix.json")
        return data

    @cached_property
    def world_average(self) -> StaticIntensity:
        data = self._load("private_infra/carbon_intensity_per_source.json")
        value = sane_intensity(data.get("world_average"))
        if value is None:
            raise LocationError(
                f"codecarbon's world_average is {data.get('world_average')!r}, not an intensity: "
                "set carbon.location or reinstall codecarbon"
            )
        # The file cites the IEA's Global Energy & CO2 Status Report 2019 for it.
        return StaticIntensity(WORLD, value, 2019, "codecarbon world_average (IEA 2019)")

    def normalise(self, code: str) -> str:
        """Canonical spelling of a location code, or LocationError naming what is accepted."""
        try:
            return normalise_location(code, self._data_dir)
        except ValueError as exc:
            raise LocationError(str(exc)) from None

    def lookup(self, code: str) -> StaticIntensity:
        """Yearly intensity of a location; a country codecarbon lacks gets the world average."""
        location = self.normalise(code)
        if location == WORLD:
            return self.world_average
        if location.startswith("US-"):
            states, year = us_state_intensities(self._data_dir)
            state = states.get(location[3:])
            if state is not None:
                # eGRID's output emission rates are the plants' combustion emissions
                return StaticIntensity(location, state, year, "EPA eGRID via codecarbon", "direct")
            world = self.world_average
            return StaticIntensity(
                location, world.intensity_g_per_kwh, None, "world average (no data)"
            )
        country: Any = pycountry.countries.get(alpha_2=location)
        entry = self._countries.get(country.alpha_3)
        value = sane_intensity(entry.get("carbon_intensity")) if entry is not None else None
        if entry is None or value is None:  # missing, null, NaN or negative: no figure
            world = self.world_average
            return StaticIntensity(
                location, world.intensity_g_per_kwh, None, "world average (no data)"
            )
        year = entry.get("year")
        return StaticIntensity(
            location,
            value,
            year if isinstance(year, int) else None,
            "codecarbon global_energy_mix",
        )
