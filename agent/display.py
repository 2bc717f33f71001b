"""Figures as a person reads them: energy in J, Wh or kWh and emissions in mg, g or kg, with
three significant figures, parts that add up to their total as printed, times with their
zone. Only for terminals: JSON keeps base units at full precision."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

J_PER_WH = 3600.0
_ENERGY_UNITS = ((J_PER_WH * 1000, "kWh"), (J_PER_WH, "Wh"), (1.0, "J"))
_MASS_UNITS = ((1000.0, "kg"), (1.0, "g"), (0.001, "mg"))


def _unit(value: float, units: tuple[tuple[float, str], ...]) -> tuple[float, str]:
    """The largest unit in which ``value`` is at least 1 (the smallest for tiny values)."""
    for factor, name in units:
        if abs(value) >= factor:
            return factor, name
    return units[-1]


MAX_DECIMALS = 9  # below a nano-unit a figure is 0 (energy is whole microjoules anyway)


def _decimals(scaled: float, significant: int = 3) -> int:
    """Decimals that show ``significant`` figures of ``scaled`` (none past the point for
    values of that many digits or more, at most MAX_DECIMALS)."""
    if scaled == 0 or not math.isfinite(scaled):
        return 0
    return min(MAX_DECIMALS, max(0, significant - 1 - math.floor(math.log10(abs(scaled)))))


def _rounded(value: float) -> float:
    """``value`` to three significant figures, so the unit is chosen on what is printed
    (999.7 mg is 1.00 g, not 1000 mg)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, 2 - math.floor(math.log10(abs(value))))


def _format(value: float, units: tuple[tuple[float, str], ...]) -> str:
    factor, name = _unit(_rounded(value), units)
    scaled = value / factor  # rounded once, in the unit shown
    return f"{scaled:.{_decimals(_rounded(scaled))}f} {name}"


def energy(joules: float) -> str:
    """3 J -> "3.00 J", 3,000 J -> "3000 J", 7,200 J -> "2.00 Wh", 5.4 MJ -> "1.50 kWh"."""
    return _format(joules, _ENERGY_UNITS)


def emissions(grams: float) -> str:
    """0.0031 g -> "3.10 mg", 2,500 g -> "2.50 kg"."""
    return _format(grams, _MASS_UNITS)


def parts_of(
    total: float, parts: Mapping[str, float], units: tuple[tuple[float, str], ...]
) -> tuple[str, dict[str, str]]:
    """The total and its parts in the total's unit and precision, the parts rounded so that
    they add up to the total as printed (largest remainder)."""
    factor, name = _unit(_rounded(total), units)
    decimals = _decimals(_rounded(total / factor))
    steps_per_unit = 10**decimals
    total_steps = round(total / factor * steps_per_unit)
    exact = {key: value / factor * steps_per_unit for key, value in parts.items()}
    counted = {key: math.floor(value) for key, value in exact.items()}
    short = total_steps - sum(counted.values())
    for key in sorted(exact, key=lambda k: (counted[k] - exact[k], k))[: max(0, short)]:
        counted[key] += 1

    def text(steps: int) -> str:
        return f"{steps / steps_per_unit:.{decimals}f} {name}"

    return text(total_steps), {key: text(steps) for key, steps in counted.items()}


def energy_parts(total_j: float, parts_j: Mapping[str, float]) -> tuple[str, dict[str, str]]:
    return parts_of(total_j, parts_j, _ENERGY_UNITS)


def local_time(iso: str | None) -> str:
    """An ISO 8601 instant in this machine's time zone, with the zone: "2026-12-01 14:40:38
    UTC"; "-" for none."""
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")
