"""Node history: the node's energy and emissions, one row per minute, for reports and audits.

Each snapshot's cumulative counters (node and device energy, emissions) are differenced with
the previous snapshot's; the difference, which covers the time between the two samples, is
added to the open row. A row closes at the end of its UTC minute, or earlier when the factors
in force change (grid intensity, market factor, PUE), so every row has one set of factors and
its grams recompute from its energy: grams = kWh x PUE x g/kWh. Rows of a run are contiguous
(each starts where the previous ended); the time between two runs (the daemon down) is in no
row: a gap, never zeros, never interpolated.

Differencing runs on the sampler thread, in memory only (the monitor calls the listener after
each sample); rows reach the ledger on the flush schedule, off the sampling path. A ledger that
cannot take them (a full or read-only disk) keeps them in memory, up to ``max_pending`` rows
(two days of minutes); beyond that the oldest are dropped, logged, and show as a gap.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from carbonscope.snapshot import Component, Snapshot

log = logging.getLogger(__name__)

MINUTE_S = 60
MAX_PENDING_ROWS = 2 * 24 * 60


@dataclass(frozen=True)
class Factors:
    """What the energy of a row was weighed with."""

    provider: str
    location: str
    signal: str
    emission_factor_type: str
    detail: str  # the data's source and year, as the provider states it
    g_per_kwh: float  # location-based
    market_g_per_kwh: float
    marginal_g_per_kwh: float | None
    pue: float

    @classmethod
    def of(cls, snap: Snapshot) -> Factors:
        value = snap.intensity
        market = snap.market_factor_g_per_kwh
        return cls(
            value.provider,
            value.location,
            value.signal,
            value.emission_factor_type,
            value.detail,
            value.g_per_kwh,
            value.g_per_kwh if market is None else market,
            snap.marginal_intensity.g_per_kwh if snap.marginal_intensity is not None else None,
            snap.pue,
        )


@dataclass
class HistoryRow:
    started_at: float  # unix s: the sample before the first one counted
    ended_at: float  # unix s: the last sample counted
    factors: Factors
    resolution_s: int = MINUTE_S
    covered_s: float = 0.0
    node_uj: int = 0
    measured_uj: int = 0
    modelled_uj: int = 0
    # the modelled energy's uncertainty: Σ modelled µJ x the model's relative half-width
    modelled_uncertainty_uj: int = 0
    component_uj: dict[Component, int] = field(default_factory=dict)  # node-energy parts
    device_uj: dict[str, int] = field(default_factory=dict)  # "component/source/device"
    location_g: float = 0.0
    market_g: float = 0.0
    marginal_g: float = 0.0
    embodied_g: float = 0.0

    @property
    def minute(self) -> int:
        return int(self.ended_at // MINUTE_S) * MINUTE_S


class HistoryStore(Protocol):
    def write_history(self, rows: list[HistoryRow]) -> None: ...

    def compact_history(self, now_unix_s: float) -> None: ...


@dataclass(frozen=True)
class _Counters:
    taken_at: float
    monotonic_s: float | None
    node_uj: int
    devices: dict[str, tuple[Component, int, bool, bool]]  # energy, counted, modelled
    location_g: float
    market_g: float
    marginal_g: float
    embodied_g: float
    uncertainty: dict[Component, float]


def _counters(snap: Snapshot) -> _Counters:
    return _Counters(
        snap.taken_at_unix_s,
        snap.monotonic_s,
        snap.node_energy_uj,
        {
            f"{d.key.component.value}/{d.key.source}/{d.key.device}": (
                d.key.component,
                d.energy_uj,
                d.in_node_energy,
                d.key.source == "model",
            )
            for d in snap.devices
        },
        snap.emissions.location_g,
        snap.emissions.market_g,
        snap.emissions.marginal_g,
        snap.embodied_g or 0.0,
        dict(snap.model_uncertainty),
    )


class NodeHistory:
    def __init__(self, store: HistoryStore | None, max_pending: int = MAX_PENDING_ROWS) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._last: _Counters | None = None
        self._open: HistoryRow | None = None
        self._closed: deque[HistoryRow] = deque()
        self._max_pending = max_pending
        self.dropped_rows = 0
        self._last_compacted = -math.inf

    # -- the sampler's side (memory only) ----------------------------------------------------

    def __call__(self, snap: Snapshot) -> None:
        now = _counters(snap)
        previous, self._last = self._last, now
        if previous is None or now.taken_at <= previous.taken_at:
            return  # the first sample of a run is a baseline; a clock step back is skipped
        factors = Factors.of(snap)
        with self._lock:
            row = self._open
            minute = int(now.taken_at // MINUTE_S) * MINUTE_S
            if row is not None and (row.factors != factors or row.minute != minute):
                self._close(row)
                row = None
            if row is None:
                row = self._open = HistoryRow(previous.taken_at, previous.taken_at, factors)
            _add(row, previous, now)

    def _close(self, row: HistoryRow, bounded: bool = True) -> None:
        self._closed.append(row)
        self._open = None
        while bounded and len(self._closed) > self._max_pending:
            lost = self._closed.popleft()
            self.dropped_rows += 1
            if self.dropped_rows == 1 or self.dropped_rows % 60 == 0:
                log.error(
                    "node history: the ledger has taken no row for %d minutes; dropping the "
                    "oldest (%s): it will show as a gap",
                    self._max_pending,
                    lost.started_at,
                )

    # -- the flush schedule's side -----------------------------------------------------------

    def flush(self, now_unix_s: float | None = None, final: bool = False) -> str | None:
        """Write the closed rows (``final``: the open one too, at shutdown). None when
        written, else why not; unwritten rows stay for the next flush."""
        if self._store is None:
            return None
        with self._lock:
            if final and self._open is not None:  # about to be written: not dropped for it
                self._close(self._open, bounded=False)
            rows = list(self._closed)
        if not rows:
            return None
        try:
            self._store.write_history(rows)
        except Exception as exc:  # noqa: BLE001 - any store failure: keep the rows
            log.error("cannot write %d node history row(s): %s", len(rows), exc)
            return str(exc)
        with self._lock:
            for _ in range(min(len(rows), len(self._closed))):
                self._closed.popleft()
        if now_unix_s is not None and now_unix_s - self._last_compacted >= 3600:
            self._last_compacted = now_unix_s
            try:
                self._store.compact_history(now_unix_s)
            except Exception as exc:  # noqa: BLE001 - compaction waits for the next hour
                log.error("cannot downsample the node history: %s", exc)
        return None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._closed) + (self._open is not None)


def _add(row: HistoryRow, previous: _Counters, now: _Counters) -> None:
    row.ended_at = now.taken_at
    # time covered on the monotonic clock: a wall-clock step is no covered hour (rows are
    # placed in wall time, as reports are)
    if now.monotonic_s is not None and previous.monotonic_s is not None:
        row.covered_s += max(0.0, now.monotonic_s - previous.monotonic_s)
    else:
        row.covered_s += now.taken_at - previous.taken_at
    row.node_uj += now.node_uj - previous.node_uj
    for name, (component, energy_uj, counted, modelled) in now.devices.items():
        before = previous.devices.get(name)
        delta = energy_uj - before[1] if before is not None else 0
        if delta <= 0:
            continue
        row.device_uj[name] = row.device_uj.get(name, 0) + delta
        if counted:
            row.component_uj[component] = row.component_uj.get(component, 0) + delta
            if modelled:
                row.modelled_uj += delta
                row.modelled_uncertainty_uj += round(delta * now.uncertainty.get(component, 0.0))
            else:
                row.measured_uj += delta
    row.location_g += now.location_g - previous.location_g
    row.market_g += now.market_g - previous.market_g
    row.marginal_g += now.marginal_g - previous.marginal_g
    row.embodied_g += now.embodied_g - previous.embodied_g
