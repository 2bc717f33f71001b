"""The monitor: reads every sensor once per tick, does the arithmetic, publishes a snapshot.

It owns all mutable accounting state and runs on its own clock (injected, monotonic ns).
Scheduling is someone else's job: anything that calls ``sample()`` once per interval works.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from carbonscope.accounting.attribution import SampleEnergy
from carbonscope.accounting.embodied import EmbodiedRate
from carbonscope.accounting.emissions import NO_EMISSIONS, EmissionFactors, Emissions
from carbonscope.accounting.energy import CounterEvent, DeviceAccount
from carbonscope.accounting.intensity_log import IntensityLog
from carbonscope.accounting.node import UNMEASURED, NodeEnergyPlan
from carbonscope.accounting.reconcile import Reconciler
from carbonscope.carbon.intensity import IntensityProvider
from carbonscope.histogram import Histogram
from carbonscope.sensors.base import (
    Component,
    CounterReading,
    DeviceKey,
    DeviceStatus,
    Discovery,
    PowerReading,
    Sensor,
    SensorRead,
    SourceStatus,
)
from carbonscope.sensors.catalogue import platform_meter_sources
from carbonscope.snapshot import (
    SAMPLE_DURATION_BUCKETS_S,
    AttributionView,
    DeviceEnergy,
    LedgerWrites,
    Snapshot,
)
from carbonscope.units import NS_PER_S

log = logging.getLogger(__name__)

SnapshotListener = Callable[[Snapshot], None]
MISSED_LOG_EVERY_NS = 60 * NS_PER_S


class EnergyAttributor(Protocol):
    """Splits each sample's energy among jobs, system and idle (carbonscope.jobs.registry)."""

    def account(self, sample: SampleEnergy) -> AttributionView: ...


@dataclass(frozen=True)
class CarbonSettings:
    pue: float
    market_factor_g_per_kwh: float | None  # None: no contractual instruments, market = location


class Monitor:
    def __init__(
        self,
        sensors: Sequence[tuple[Sensor, Discovery]],
        intensity: IntensityProvider,
        carbon: CarbonSettings,
        interval_s: float,
        version: str,
        max_plausible_uw: int = 2_000_000_000,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        wall_clock_s: Callable[[], float] = time.time,
        attributor: EnergyAttributor | None = None,
        intensity_log: IntensityLog | None = None,
        modelled_sources: frozenset[str] = frozenset(),
        ledger_writes: Callable[[], LedgerWrites] | None = None,
        meter_sources: Sequence[str] | None = None,
        embodied: EmbodiedRate | None = None,
    ) -> None:
        self._sensors = list(sensors)
        self._intensity = intensity
        self._carbon = carbon
        self._interval_ns = round(interval_s * NS_PER_S)
        self._version = version
        self._max_plausible_uw = max_plausible_uw
        self._clock_ns = clock_ns
        self._wall_clock_s = wall_clock_s
        self._attributor = attributor
        self._intensity_log = intensity_log
        self._ledger_writes = ledger_writes
        self._lock = threading.Lock()
        self._listeners: list[SnapshotListener] = []

        self._devices: list[DeviceKey] = sorted(
            {key for _sensor, discovery in self._sensors for key in discovery.devices}
        )
        self._plan = NodeEnergyPlan.for_devices(
            self._devices, platform_meter_sources() if meter_sources is None else meter_sources
        )
        self._embodied = embodied
        self._embodied_g = 0.0
        self._reconciler: Reconciler | None = None
        if self._plan.meter is not None:
            self._reconciler = Reconciler(self._plan.meter, UNMEASURED)
            self._devices = sorted({*self._devices, UNMEASURED})
        self._gpu_devices = [key.device for key in self._devices if key.component is Component.GPU]
        self._accounts: dict[DeviceKey, DeviceAccount] = {
            key: DeviceAccount() for key in self._devices
        }
        self._modelled = frozenset(key for key in self._devices if key.source in modelled_sources)
        self._emissions: Emissions = NO_EMISSIONS
        self._samples = 0
        self._missed = 0
        self._missed_reported = 0
        self._missed_logged_ns = -MISSED_LOG_EVERY_NS
        self._last_sample_ns: int | None = None
        self._durations = Histogram.empty(SAMPLE_DURATION_BUCKETS_S)
        self._snapshot: Snapshot | None = None
        self._ignored: set[DeviceKey] = set()
        self._power: dict[DeviceKey, float | None] = {}  # mean power in the last sample
        self._counters: set[DeviceKey] = set()  # devices read as energy counters
        self._skipped = tuple(
            (sensor.name, reason, count)
            for sensor, discovery in self._sensors
            for reason, count in discovery.skipped
        )
        self._uncertainty = tuple(
            sorted(
                {c: r for _s, discovery in self._sensors for c, r in discovery.uncertainty}.items()
            )
        )

    @property
    def model_uncertainty(self) -> tuple[tuple[Component, float], ...]:
        """(component, relative half-width) of the modelled components' estimates."""
        return self._uncertainty

    @property
    def snapshot(self) -> Snapshot | None:
        """The last published snapshot (an atomic reference read: no lock needed)."""
        return self._snapshot

    def last_sample_age_s(self) -> float | None:
        """Seconds since the last sample ended, on the monitor's own clock."""
        last = self._last_sample_ns
        return None if last is None else (self._clock_ns() - last) / NS_PER_S

    def _log_missed(self, now_ns: int) -> None:
        """Skipped ticks, at most one line a minute with the count since the last line."""
        unreported = self._missed - self._missed_reported
        if unreported and now_ns - self._missed_logged_ns >= MISSED_LOG_EVERY_NS:
            log.warning(
                "%d sampling tick(s) skipped since the last report (late or overrun); their "
                "energy is in the next sample",
                unreported,
            )
            self._missed_reported, self._missed_logged_ns = self._missed, now_ns

    def subscribe(self, listener: SnapshotListener) -> None:
        self._listeners.append(listener)

    def _read_all(self) -> list[tuple[Sensor, SensorRead]]:
        results = []
        for sensor, discovery in self._sensors:
            if not discovery.devices:  # looked for, not found: its discovery statuses say why
                results.append((sensor, SensorRead(statuses=discovery.statuses)))
                continue
            try:
                result = sensor.read()
            except Exception as exc:  # one broken source must never stop the others
                log.exception("sensor %s failed", sensor.name)
                result = SensorRead(
                    statuses=tuple(
                        DeviceStatus(
                            sensor.name,
                            key.device,
                            SourceStatus.ERROR,
                            f"{type(exc).__name__}: {exc}",
                        )
                        for key in discovery.devices
                    )
                )
            results.append(
                (
                    sensor,
                    SensorRead(result.readings, discovery.statuses + result.statuses, result.gpus),
                )
            )
        return results

    def sample(self) -> Snapshot:
        with self._lock:
            started_ns = self._clock_ns()
            results = self._read_all()
            now_ns = self._clock_ns()
            snapshot = self._account(results, started_ns, now_ns)
            self._snapshot = snapshot
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:  # a broken exporter must not stop sampling
                log.exception("snapshot listener %r failed", listener)
        return snapshot

    def _account(
        self, results: list[tuple[Sensor, SensorRead]], started_ns: int, now_ns: int
    ) -> Snapshot:
        power_now: dict[DeviceKey, float | None] = {}
        deltas: dict[DeviceKey, int] = {}
        flagged: dict[DeviceKey, DeviceStatus] = {}  # reads the plausibility rule refused
        node_delta_uj = 0
        meter_read: tuple[int, int, int | None, int] | None = None  # for the reconciler
        for _sensor, result in results:
            for reading in result.readings:
                account = self._accounts.get(reading.key)
                if account is None:  # not part of the accounting chosen at start-up: never summed
                    if reading.key not in self._ignored:
                        log.info("not accounting %s: not selected at start-up", reading.key)
                        self._ignored.add(reading.key)
                    continue
                if account.is_repeat(reading):  # a polled reading already counted
                    power_now[reading.key] = self._power.get(reading.key)
                    continue
                if isinstance(reading, CounterReading):
                    self._counters.add(reading.key)
                    ceiling = reading.max_plausible_uw or self._max_plausible_uw
                    delta = account.add_counter(reading, now_ns, ceiling)
                    if account.last_event in (CounterEvent.REJECTED, CounterEvent.INVALID):
                        flagged[reading.key] = _flag(reading, account)
                else:
                    delta = account.add_power(reading, now_ns)
                previous_ns = account.covered_from_ns
                measured_ns = reading.measured_at_ns or now_ns
                power_now[reading.key] = _mean_power_w(reading, delta, previous_ns, measured_ns)
                deltas[reading.key] = deltas.get(reading.key, 0) + delta
                if self._plan.counts(reading.key):
                    node_delta_uj += delta
                elif reading.key == self._plan.meter and reading.key not in flagged:
                    meter_read = (account.total_uj, delta, previous_ns, measured_ns)
        for key, account in self._accounts.items():
            if key not in power_now and account.last_power_uw is not None:
                account.forget_baseline()
        node_power_uj = node_delta_uj  # over the sample; the unmeasured part over the meter's
        unmeasured_power_w = 0.0
        reconciled: tuple[DeviceStatus, ...] = ()
        if self._reconciler is not None:
            node_delta_uj += self._reconcile(node_delta_uj, meter_read, now_ns, deltas, power_now)
            if power_now.get(self._reconciler.meter) is not None:  # only while the meter reads
                unmeasured_power_w = self._reconciler.power_w or 0.0
            reconciled = (self._reconciler.status(),)
        self._power = power_now

        elapsed_ns = now_ns - self._last_sample_ns if self._last_sample_ns is not None else 0
        if self._last_sample_ns is not None and self._interval_ns > 0:
            self._missed += max(0, round(elapsed_ns / self._interval_ns) - 1)
            self._log_missed(now_ns)
        self._last_sample_ns = now_ns
        self._samples += 1

        now_unix_s = self._wall_clock_s()
        # The intensity in force at this sample weighs this sample's energy (never the final one).
        grid = self._intensity.current(now_unix_s)
        intensity = grid.average
        market_factor = self._carbon.market_factor_g_per_kwh
        factors = EmissionFactors(
            pue=self._carbon.pue,
            location_g_per_kwh=intensity.g_per_kwh,
            market_g_per_kwh=intensity.g_per_kwh if market_factor is None else market_factor,
            marginal_g_per_kwh=grid.marginal.g_per_kwh if grid.marginal is not None else None,
        )
        self._emissions = self._emissions + Emissions.of(node_delta_uj, factors)
        period_id = 0
        if self._intensity_log is not None:
            period_id = self._intensity_log.record(now_unix_s, node_delta_uj, grid, factors)
        gpus = tuple(gpu for _sensor, result in results for gpu in result.gpus)
        embodied: dict[str, float] = {}
        if self._embodied is not None and elapsed_ns > 0:
            embodied = self._embodied.sample(elapsed_ns / NS_PER_S, self._gpu_devices)
            self._embodied_g += sum(embodied.values())
        attribution = None
        if self._attributor is not None:
            attribution = self._attributor.account(
                SampleEnergy(
                    deltas={k: uj for k, uj in deltas.items() if k not in self._plan.meters},
                    counted=self._plan.components,
                    gpus=gpus,
                    factors=factors,
                    now_unix_s=now_unix_s,
                    intensity_period_id=period_id,
                    modelled=self._modelled,
                    overhead=UNMEASURED if self._reconciler is not None else None,
                    embodied_g=embodied,
                )
            )

        self._durations = self._durations.observe((self._clock_ns() - started_ns) / NS_PER_S)
        devices = tuple(
            DeviceEnergy(
                key,
                self._accounts[key].total_uj,
                power_now.get(key),
                tuple(sorted(self._accounts[key].events.items())),
                key in self._counters,
                self._plan.counts(key),
            )
            for key in self._devices
        )
        refused = {(key.source, key.device): status for key, status in flagged.items()}
        statuses = (
            tuple(
                refused.get((status.source, status.device), status)
                for _sensor, result in results
                for status in result.statuses
            )
            + reconciled
        )
        return Snapshot(
            version=self._version,
            taken_at_unix_s=now_unix_s,
            devices=devices,
            statuses=statuses,
            gpus=gpus,
            node_energy_uj=sum(
                account.total_uj
                for key, account in self._accounts.items()
                if self._plan.counts(key)
            ),
            node_power_w=(
                node_power_uj * NS_PER_S / elapsed_ns / 1e6 + unmeasured_power_w
                if elapsed_ns > 0
                else None
            ),
            emissions=self._emissions,
            intensity=intensity,
            marginal_intensity=grid.marginal,
            feed=grid.feed,
            market_factor_g_per_kwh=market_factor,
            pue=factors.pue,
            samples_total=self._samples,
            samples_missed_total=self._missed,
            sample_duration=self._durations,
            attribution=attribution,
            ledger=self._ledger_writes() if self._ledger_writes is not None else None,
            skipped=self._skipped,
            model_uncertainty=self._uncertainty,
            node_energy_meter=self._plan.meter,
            embodied_g=self._embodied_g if self._embodied is not None else None,
            monotonic_s=now_ns / NS_PER_S,
        )

    def _reconcile(
        self,
        components_uj: int,
        meter_read: tuple[int, int, int | None, int] | None,
        now_ns: int,
        deltas: dict[DeviceKey, int],
        power_now: dict[DeviceKey, float | None],
    ) -> int:
        """The unmeasured part of this sample (reconcile.py): what the meter's new reading, if
        any, shows beyond the components."""
        reconciler = self._reconciler
        assert reconciler is not None
        reconciler.components(now_ns, components_uj)
        gained = reconciler.meter_reading(*meter_read) if meter_read is not None else 0
        self._accounts[UNMEASURED].total_uj += gained
        deltas[UNMEASURED] = gained
        power_now[UNMEASURED] = reconciler.power_w
        return gained


def _flag(reading: CounterReading, account: DeviceAccount) -> DeviceStatus:
    """The status of a counter read the accounting refused, with why."""
    key = reading.key
    if account.last_event is CounterEvent.INVALID:
        reason = (
            f"counter value {reading.energy_uj} uJ outside [0, {reading.max_energy_range_uj}]: "
            "an error reading, not counted"
        )
    else:
        reason = (
            f"counter moved from {account.last_counter_uj} to {reading.energy_uj} uJ, which no "
            "plausible power explains: not counted; the next read tells a glitch from a reset"
        )
    return DeviceStatus(key.source, key.device, SourceStatus.ERROR, reason)


def _mean_power_w(
    reading: CounterReading | PowerReading, delta_uj: int, previous_ns: int | None, now_ns: int
) -> float | None:
    """Mean power over the device's last interval: delta E / delta t on the real elapsed time."""
    if previous_ns is not None and now_ns > previous_ns:
        return delta_uj * NS_PER_S / (now_ns - previous_ns) / 1e6
    # First read: a counter has no interval yet; a power reading is its own value.
    return reading.power_uw / 1e6 if isinstance(reading, PowerReading) else None
