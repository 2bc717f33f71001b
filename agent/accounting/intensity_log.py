"""The intensity series actually used, with the node energy accounted under each value.

A period is a run of consecutive samples under the same intensity, market factor and PUE.
Each period stores its node IT energy (integer µJ) and the emissions computed from it, so any
emissions figure can be recomputed later: sum over periods of energy x PUE x intensity.
Periods are written to the ledger on the flush schedule (agent/ledger/store.py).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Protocol

from carbonscope.accounting.emissions import EmissionFactors, Emissions
from carbonscope.carbon.intensity import GridIntensity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntensityPeriod:
    period_id: int
    started_at_unix_s: float  # the first sample under this value
    ended_at_unix_s: float  # the last sample under this value (so far)
    provider: str
    location: str
    signal: str
    emission_factor_type: str
    marginal_provider: str  # "" without a marginal signal
    factors: EmissionFactors  # PUE and the location/market/marginal factors in force
    energy_uj: int  # node IT energy accounted under this period
    emissions: Emissions

    @property
    def identity(self) -> tuple[object, ...]:
        """What makes a period: a sample with other values starts a new one."""
        return (self.provider, self.location, self.signal, self.marginal_provider, self.factors)


class PeriodStore(Protocol):
    def next_period_id(self) -> int: ...

    def write_periods(self, periods: list[IntensityPeriod]) -> None: ...


class IntensityLog:
    def __init__(self, store: PeriodStore | None) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._next_id = store.next_period_id() if store is not None else 1
        self._open: IntensityPeriod | None = None
        self._unwritten: dict[int, IntensityPeriod] = {}

    def record(
        self, now_unix_s: float, energy_uj: int, grid: GridIntensity, factors: EmissionFactors
    ) -> int:
        """Account one sample's node energy under the intensity in force (called by the
        monitor); returns the period's id, which job energy is also stored under."""
        average, marginal = grid.average, grid.marginal
        sample = IntensityPeriod(
            period_id=0,
            started_at_unix_s=now_unix_s,
            ended_at_unix_s=now_unix_s,
            provider=average.provider,
            location=average.location,
            signal=average.signal,
            emission_factor_type=average.emission_factor_type,
            marginal_provider=marginal.provider if marginal else "",
            factors=factors,
            energy_uj=energy_uj,
            emissions=Emissions.of(energy_uj, factors),
        )
        with self._lock:
            current = self._open
            if current is not None and current.identity == sample.identity:
                current = replace(
                    current,
                    ended_at_unix_s=now_unix_s,
                    energy_uj=current.energy_uj + energy_uj,
                    emissions=current.emissions + sample.emissions,
                )
            else:
                current = replace(sample, period_id=self._next_id)
                self._next_id += 1
            self._open = current
            self._unwritten[current.period_id] = current
            return current.period_id

    def periods(self) -> list[IntensityPeriod]:
        """Periods not yet written (the open one included), oldest first."""
        with self._lock:
            return sorted(self._unwritten.values(), key=lambda period: period.period_id)

    def flush(self) -> None:
        if self._store is None:
            return
        with self._lock:
            pending = dict(self._unwritten)
            self._unwritten.clear()
        try:
            self._store.write_periods(sorted(pending.values(), key=lambda p: p.period_id))
        except Exception as exc:  # noqa: BLE001 - any store failure: keep every period
            log.error("cannot write %d intensity period(s): %s", len(pending), exc)
            with self._lock:  # keep newer versions recorded meanwhile
                for period_id, period in pending.items():
                    self._unwritten.setdefault(period_id, period)
