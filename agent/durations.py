"""Durations as operators write them: "500ms", "1s", "15m", "2h" (a bare number is seconds)."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

# "y" is 365 days: hardware lifetimes ([embodied] lifetime = "4y")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "y": 365 * 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|y)\s*$")


def parse_duration(value: object) -> float:
    """Return the duration in seconds; raise ValueError with an operator-readable reason."""
    if isinstance(value, bool):
        raise ValueError(f'invalid duration {value!r}: expected a string like "500ms", "1s", "15m"')
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"invalid duration {value!r}: must be a finite number")
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            if math.isfinite(seconds):
                return seconds
    raise ValueError(
        f"invalid duration {value!r}: expected a number and a unit (ms, s, m, h, d, y), "
        'like "500ms", "1s", "15m"'
    )


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration, for messages and `config show`."""
    for unit in ("d", "h", "m", "s"):
        amount = seconds / _UNIT_SECONDS[unit]
        if amount >= 1 and amount == int(amount):
            return f"{int(amount)}{unit}"
    return f"{round(seconds * 1000, 3):g}ms"


# A config field holding a duration: accepts "500ms", "1s", ... or a number of seconds.
Duration = Annotated[float, BeforeValidator(parse_duration)]
