"""The ``node_history`` table of the ledger: node history rows (history.py), minute rows
downsampled to hourly ones after ``history_hourly_after`` and deleted after
``history_retention``. Energy in integer µJ, grams as REAL, one set of factors per row."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from carbonscope.ledger.history import Factors, HistoryRow
from carbonscope.snapshot import Component

HOUR_S = 3600
COMPACT_BATCH = 20_000  # minute rows merged per compaction at most (two weeks' worth)
_COMPONENTS = (Component.CPU, Component.DRAM, Component.GPU, Component.PLATFORM)

SCHEMA = """
CREATE TABLE IF NOT EXISTS node_history (
    started_at REAL PRIMARY KEY,   -- unix s: the sample before the first one counted
    ended_at REAL NOT NULL,        -- unix s: the last sample counted
    resolution_s INTEGER NOT NULL, -- 60, or 3600 once downsampled
    covered_s REAL NOT NULL,       -- seconds the samples covered (less than the span: a gap)
    node_uj INTEGER NOT NULL,      -- node IT energy
    measured_uj INTEGER NOT NULL,
    modelled_uj INTEGER NOT NULL,
    modelled_uncertainty_uj INTEGER NOT NULL,  -- Σ modelled µJ x the model's half-width
    cpu_uj INTEGER NOT NULL,       -- node energy by component (psys as platform, etc.)
    dram_uj INTEGER NOT NULL,
    gpu_uj INTEGER NOT NULL,
    platform_uj INTEGER NOT NULL,
    devices TEXT NOT NULL,         -- JSON {"component/source/device": uj}, every device
    emissions_location_g REAL NOT NULL,
    emissions_market_g REAL NOT NULL,
    emissions_marginal_g REAL NOT NULL,
    embodied_g REAL NOT NULL,      -- Scope 3, amortised hardware; never in the Scope 2 columns
    provider TEXT NOT NULL,        -- the intensity in force over the whole row
    location TEXT NOT NULL,
    signal TEXT NOT NULL,
    emission_factor_type TEXT NOT NULL,
    detail TEXT NOT NULL,          -- the data's source and year
    g_per_kwh REAL NOT NULL,       -- location-based factor
    market_g_per_kwh REAL NOT NULL,
    marginal_g_per_kwh REAL,
    pue REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS node_history_ended ON node_history (ended_at);
"""
COLUMNS = (
    "started_at, ended_at, resolution_s, covered_s, node_uj, measured_uj, modelled_uj, "
    "modelled_uncertainty_uj, cpu_uj, "
    "dram_uj, gpu_uj, platform_uj, devices, emissions_location_g, emissions_market_g, "
    "emissions_marginal_g, embodied_g, provider, location, signal, emission_factor_type, "
    "detail, g_per_kwh, market_g_per_kwh, marginal_g_per_kwh, pue"
)
INSERT = (
    f"INSERT OR REPLACE INTO node_history ({COLUMNS}) "
    f"VALUES ({', '.join('?' * len(COLUMNS.split(', ')))})"
)


def to_row(row: HistoryRow) -> tuple[object, ...]:
    f = row.factors
    return (
        row.started_at,
        row.ended_at,
        row.resolution_s,
        row.covered_s,
        row.node_uj,
        row.measured_uj,
        row.modelled_uj,
        row.modelled_uncertainty_uj,
        *(row.component_uj.get(component, 0) for component in _COMPONENTS),
        json.dumps(row.device_uj, sort_keys=True),
        row.location_g,
        row.market_g,
        row.marginal_g,
        row.embodied_g,
        f.provider,
        f.location,
        f.signal,
        f.emission_factor_type,
        f.detail,
        f.g_per_kwh,
        f.market_g_per_kwh,
        f.marginal_g_per_kwh,
        f.pue,
    )


def from_row(values: Sequence[Any]) -> HistoryRow:
    (started, ended, resolution, covered, node, measured, modelled, uncertain) = values[:8]
    components = dict(zip(_COMPONENTS, (int(v) for v in values[8:12]), strict=True))
    (devices, location_g, market_g, marginal_g, embodied_g) = values[12:17]
    (provider, location, signal, factor_type, detail, g, market, marginal, pue) = values[17:]
    return HistoryRow(
        started_at=float(started),
        ended_at=float(ended),
        factors=Factors(
            str(provider),
            str(location),
            str(signal),
            str(factor_type),
            str(detail),
            float(g),
            float(market),
            None if marginal is None else float(marginal),
            float(pue),
        ),
        resolution_s=int(resolution),
        covered_s=float(covered),
        node_uj=int(node),
        measured_uj=int(measured),
        modelled_uj=int(modelled),
        modelled_uncertainty_uj=int(uncertain),
        component_uj={c: uj for c, uj in components.items() if uj},
        device_uj={str(k): int(v) for k, v in json.loads(str(devices)).items()},
        location_g=float(location_g),
        market_g=float(market_g),
        marginal_g=float(marginal_g),
        embodied_g=float(embodied_g),
    )


def select(db: sqlite3.Connection, since: float, until: float) -> list[HistoryRow]:
    """Rows that end after ``since`` and start before ``until``, oldest first."""
    found = db.execute(
        f"SELECT {COLUMNS} FROM node_history WHERE ended_at > ? AND started_at < ? "
        "ORDER BY started_at",
        (since, until),
    ).fetchall()
    return [from_row(values) for values in found]


def merged_hours(rows: list[HistoryRow]) -> list[HistoryRow]:
    """Minute rows merged per UTC hour and set of factors (sums exact, factors kept)."""
    merged: dict[tuple[int, Factors], HistoryRow] = {}
    for row in rows:
        hour = int(row.started_at // HOUR_S) * HOUR_S
        into = merged.get((hour, row.factors))
        if into is None:
            merged[(hour, row.factors)] = HistoryRow(
                row.started_at,
                row.ended_at,
                row.factors,
                HOUR_S,
                row.covered_s,
                row.node_uj,
                row.measured_uj,
                row.modelled_uj,
                row.modelled_uncertainty_uj,
                dict(row.component_uj),
                dict(row.device_uj),
                row.location_g,
                row.market_g,
                row.marginal_g,
                row.embodied_g,
            )
            continue
        into.started_at = min(into.started_at, row.started_at)
        into.ended_at = max(into.ended_at, row.ended_at)
        into.covered_s += row.covered_s
        into.node_uj += row.node_uj
        into.measured_uj += row.measured_uj
        into.modelled_uj += row.modelled_uj
        into.modelled_uncertainty_uj += row.modelled_uncertainty_uj
        for component, uj in row.component_uj.items():
            into.component_uj[component] = into.component_uj.get(component, 0) + uj
        for device, uj in row.device_uj.items():
            into.device_uj[device] = into.device_uj.get(device, 0) + uj
        into.location_g += row.location_g
        into.market_g += row.market_g
        into.marginal_g += row.marginal_g
        into.embodied_g += row.embodied_g
    return list(merged.values())


def compaction(
    db: sqlite3.Connection, now: float, hourly_after_s: float, retention_s: float
) -> list[tuple[str, Sequence[Sequence[object]]]]:
    """The statements of one compaction: minute rows older than ``hourly_after_s`` merged into
    hourly rows (at most COMPACT_BATCH at a time), rows older than ``retention_s`` deleted."""
    old = db.execute(
        f"SELECT {COLUMNS} FROM node_history WHERE resolution_s < ? AND ended_at < ? "
        "ORDER BY started_at LIMIT ?",
        (HOUR_S, now - hourly_after_s, COMPACT_BATCH),
    ).fetchall()
    rows = [from_row(values) for values in old]
    # an hour is merged once all of its minutes are old enough: never half an hour twice
    complete = [r for r in rows if (r.started_at // HOUR_S + 1) * HOUR_S <= now - hourly_after_s]
    statements: list[tuple[str, Sequence[Sequence[object]]]] = []
    if complete:
        statements.append(
            ("DELETE FROM node_history WHERE started_at = ?", [(r.started_at,) for r in complete])
        )
        statements.append((INSERT, [to_row(r) for r in merged_hours(complete)]))
    statements.append(("DELETE FROM node_history WHERE ended_at < ?", [(now - retention_s,)]))
    return statements
