"""codecarbon's packaged data files: where they are, and which location codes they cover.

The directory is found from the package's import spec, without importing codecarbon: its
``__init__`` loads the tracker and its dependencies (about 16 MiB of resident memory) for
nothing we use. We read the data files, not codecarbon's modules: the files are the data, the
module internals are not a stable API. Imports nothing else of carbonscope, so the config can
validate ``carbon.location`` without loading the carbon package.
"""

from __future__ import annotations

import importlib.util
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g, 1 MWh = 1000 kWh
WORLD = "WORLD"


def codecarbon_data_dir() -> Path:
    """``<site-packages>/codecarbon/data``, located without executing codecarbon."""
    spec = importlib.util.find_spec("codecarbon")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise FileNotFoundError("codecarbon is not installed: its data files are needed")
    return Path(next(iter(locations))) / "data"


@lru_cache(maxsize=4)
def _usa_emissions(data_dir: Path) -> tuple[dict[str, dict[str, Any]], int | None]:
    """The newest usa_emissions.json (the file moves with eGRID's year): its state entries by
    state name, each with a regionCode and lbs CO2e/MWh, and the eGRID year."""
    candidates = sorted(data_dir.glob("private_infra/*/usa_emissions.json"))
    if not candidates:
        return {}, None
    raw: dict[str, Any] = json.loads(candidates[-1].read_text(encoding="utf-8"))
    source = raw.get("_source", {})
    year = source.get("year") if isinstance(source, dict) else None
    states = {
        name: entry
        for name, entry in raw.items()
        if not name.startswith("_") and isinstance(entry, dict) and "regionCode" in entry
    }
    return states, year if isinstance(year, int) else None


def us_state_intensities(data_dir: Path) -> tuple[dict[str, float | None], int | None]:
    """gCO2e/kWh per US state code, and the eGRID year. A state listed without a usable
    figure (NaN, negative, text) maps to None."""
    states, year = _usa_emissions(data_dir)
    return {
        entry["regionCode"].upper(): sane_intensity(
            entry.get("emissions"), LBS_PER_MWH_TO_G_PER_KWH
        )
        for entry in states.values()
    }, year


def sane_intensity(value: object, scale: float = 1.0) -> float | None:
    """A number from the packaged data as g/kWh (x ``scale``); None unless finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value) * scale
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def normalise_location(code: str, data_dir: Path | None = None) -> str:
    """Canonical spelling of a location code ("fr" -> "FR", "FRA" -> "FR", "us-ca" -> "US-CA",
    "WORLD"); ValueError naming what is accepted otherwise."""
    import pycountry  # noqa: PLC0415 - its tables load only when a location is checked

    cleaned = code.strip().upper()
    if cleaned == WORLD:
        return WORLD
    if "-" in cleaned:
        country, _, region = cleaned.partition("-")
        if country == "US":
            states, _year = us_state_intensities(data_dir or codecarbon_data_dir())
            if region in states:
                return f"US-{region}"
            raise ValueError(f"unknown US state {region!r} in location {code!r}")
        raise ValueError(
            f'no offline data for region {code!r}: use a country code ("{country}") '
            'or a US state ("US-CA")'
        )
    match: Any = None
    if cleaned in LOCATION_ALIASES:
        return LOCATION_ALIASES[cleaned]
    if len(cleaned) == 2:
        match = pycountry.countries.get(alpha_2=cleaned)
    elif len(cleaned) == 3:
        match = pycountry.countries.get(alpha_3=cleaned)
    else:
        state = _us_state_names(data_dir or codecarbon_data_dir()).get(cleaned)
        if state is not None:
            return f"US-{state}"
        try:  # a name: "France", "germany", "Republic of Korea"
            match = pycountry.countries.lookup(code.strip())
        except LookupError:
            match = None
    if match is None:
        hint = _did_you_mean(code, data_dir or codecarbon_data_dir())
        raise ValueError(
            f'unknown location {code!r}{hint}: expected an ISO 3166 country code ("FR", "DE"), '
            'a country name ("France"), a US state ("US-CA", "California") or "WORLD"'
        )
    alpha_2: str = match.alpha_2
    return alpha_2


# Codes people write that ISO 3166 spells otherwise (UK is GB's; EL is the EU's code for Greece).
LOCATION_ALIASES = {
    "UK": "GB",
    "GREAT BRITAIN": "GB",
    "BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "NORTHERN IRELAND": "GB",
    "EL": "GR",
    "HOLLAND": "NL",
}


def _us_state_names(data_dir: Path) -> dict[str, str]:
    """Upper-case US state name -> its code."""
    states, _year = _usa_emissions(data_dir)
    return {name.upper(): entry["regionCode"].upper() for name, entry in states.items()}


def _did_you_mean(code: str, data_dir: Path) -> str:
    """' (did you mean "France"?)' for a near miss among country and state names, or ""."""
    import pycountry  # noqa: PLC0415 - only on the error path
    from rapidfuzz import fuzz, process  # noqa: PLC0415

    names = [country.name for country in pycountry.countries]
    names += [name.title() for name in _us_state_names(data_dir)]
    names += [alias.title() for alias in LOCATION_ALIASES if len(alias) > 3]
    best = process.extractOne(code.strip(), names, scorer=fuzz.WRatio, score_cutoff=80)
    return f' (did you mean "{best[0]}"?)' if best else ""
