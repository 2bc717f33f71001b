"""Yearly average grid intensity from codecarbon's packaged data files.

We read the JSON files codecarbon ships rather than its modules: the files are the data, the
module internals are not a stable API. Units: global_energy_mix.json is gCO2e/kWh keyed by ISO
3166-1 alpha-3; usa_emissions.json is lbs CO2e/MWh keyed by state name with a regionCode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

import pycountry

from carbonscope.errors import LocationError

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g, 1 MWh = 1000 kWh
WORLD = "WORLD"


@dataclass(frozen=True)
class StaticIntensity:
    """One location's yearly average intensity and where the number comes from."""

    location: str
    intensity_g_per_kwh: float
    year: int | None
    dataset: str


def codecarbon_data_dir() -> Path:
    return Path(str(files("codecarbon") / "data"))


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
    def _us_states(self) -> tuple[dict[str, float], int | None]:
        # The file moves with eGRID's year (private_infra/2016/, /2023/, ...): take the newest.
        candidates = sorted(self._data_dir.glob("private_infra/*/usa_emissions.json"))
        if not candidates:
            return {}, None
        raw: dict[str, Any] = json.loads(candidates[-1].read_text(encoding="utf-8"))
        source = raw.get("_source", {})
        year = source.get("year") if isinstance(source, dict) else None
        states = {
            entry["regionCode"].upper(): float(entry["emissions"]) * LBS_PER_MWH_TO_G_PER_KWH
            for name, entry in raw.items()
            if not name.startswith("_") and isinstance(entry, dict) and "regionCode" in entry
        }
        return states, year if isinstance(year, int) else None

    @cached_property
    def world_average(self) -> StaticIntensity:
        data = self._load("private_infra/carbon_intensity_per_source.json")
        return StaticIntensity(
            WORLD, float(data["world_average"]), None, "codecarbon world_average"
        )

    def normalise(self, code: str) -> str:
        """Canonical spelling of a location code, or LocationError naming what is accepted."""
        cleaned = code.strip().upper()
        if cleaned == WORLD:
            return WORLD
        if "-" in cleaned:
            country, _, region = cleaned.partition("-")
            if country == "US":
                states, _year = self._us_states
                if region in states:
                    return f"US-{region}"
                raise LocationError(f"unknown US state {region!r} in location {code!r}")
            raise LocationError(
                f'no offline data for region {code!r}: use a country code ("{country}") '
                'or a US state ("US-CA")'
            )
        match: Any = None
        if len(cleaned) == 2:
            match = pycountry.countries.get(alpha_2=cleaned)
        elif len(cleaned) == 3:
            match = pycountry.countries.get(alpha_3=cleaned)
        if match is None:
            raise LocationError(
                f'unknown location {code!r}: expected an ISO 3166 country code ("FR", "DE"), '
                'a US state ("US-CA") or "WORLD"'
            )
        alpha_2: str = match.alpha_2
        return alpha_2

    def lookup(self, code: str) -> StaticIntensity:
        """Yearly intensity of a location; a country codecarbon lacks gets the world average."""
        location = self.normalise(code)
        if location == WORLD:
            return self.world_average
        if location.startswith("US-"):
            states, year = self._us_states
            return StaticIntensity(location, states[location[3:]], year, "EPA eGRID via codecarbon")
        country: Any = pycountry.countries.get(alpha_2=location)
        entry = self._countries.get(country.alpha_3)
        if entry is None or entry.get("carbon_intensity") is None:
            world = self.world_average
            return StaticIntensity(
                location, world.intensity_g_per_kwh, None, "world average (no data)"
            )
        year = entry.get("year")
        return StaticIntensity(
            location,
            float(entry["carbon_intensity"]),
            year if isinstance(year, int) else None,
            "codecarbon global_energy_mix",
        )
