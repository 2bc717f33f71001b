"""CPU thermal design power from codecarbon's packaged ``hardware/cpu_power.csv``.

Matching: the model name is normalised (trademarks, "CPU", "Processor", clock speed and core
count dropped, lower case). An exact normalised match wins. Otherwise the candidates are the
table rows that contain every model-number token of the CPU (tokens with a digit, like
"6126", "i7-8700k"), ranked by rapidfuzz token-set ratio, then token-sort ratio. A name
without any model number ("Intel Xeon Processor", common in VMs) identifies no CPU and
matches nothing.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from carbonscope.codecarbon_data import codecarbon_data_dir

_NOISE = [
    r"\(r\)",
    r"\(tm\)",
    r"®",
    r"™",
    r"@\s*[\d.]+\s*ghz",
    r"\b\d+-core\b",
    r"\bcpu\b",
    r"\bprocessor\b",
    r"\bwith radeon\b.*$",
    r"\bradeon graphics\b",
]
_MIN_SCORE = 80.0


@dataclass(frozen=True)
class TdpMatch:
    model: str  # the table's spelling
    tdp_watts: float
    exact: bool


def normalise_cpu_name(name: str) -> str:
    text = name.lower()
    for pattern in _NOISE:
        text = re.sub(pattern, " ", text)
    return " ".join(text.replace(",", " ").split())


def _model_tokens(normalised: str) -> set[str]:
    return {token for token in normalised.split() if any(ch.isdigit() for ch in token)}


@lru_cache(maxsize=4)
def _load_table(path: Path) -> tuple[tuple[str, str, float], ...]:
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                tdp = float(row["TDP"])
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(tdp) and tdp > 0:  # "nan", "inf" or 0 in the table: no figure
                rows.append((row["Name"], normalise_cpu_name(row["Name"]), tdp))
    return tuple(rows)


def default_table_path() -> Path:
    return codecarbon_data_dir() / "hardware/cpu_power.csv"


def lookup_tdp(cpu_model: str, table_path: Path | None = None) -> TdpMatch | None:
    table = _load_table(table_path or default_table_path())
    wanted = normalise_cpu_name(cpu_model)
    if not wanted:
        return None
    for original, normalised, tdp in table:
        if normalised == wanted:
            return TdpMatch(original, tdp, exact=True)
    tokens = _model_tokens(wanted)
    if not tokens:
        return None
    from rapidfuzz import fuzz  # noqa: PLC0415 - only for a CPU the table does not spell exactly

    best: tuple[tuple[float, float], str, float] | None = None
    for original, normalised, tdp in table:
        if not tokens <= set(normalised.split()):
            continue
        score = (
            fuzz.token_set_ratio(wanted, normalised),
            fuzz.token_sort_ratio(wanted, normalised),
        )
        if score[0] >= _MIN_SCORE and (best is None or score > best[0]):
            best = (score, original, tdp)
    return TdpMatch(best[1], best[2], exact=False) if best else None
