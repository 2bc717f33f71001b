"""The immutable result of one sample: everything exporters and probe may show.

Exporters render a snapshot and nothing else, so a scrape never touches hardware.
"""

from __future__ import annotations

from dataclasses import dataclass

from carbonscope.accounting.attribution import Bucket
from carbonscope.accounting.emissions import Emissions
from carbonscope.accounting.energy import CounterEvent
from carbonscope.accounting.totals import EnergyTotals
from carbonscope.carbon.intensity import FeedStatus, IntensityValue
from carbonscope.histogram import Histogram
from carbonscope.sensors.base import Component, DeviceKey, DeviceStatus, GpuDetails

# Fine around the 10 ms a fleet node's sample may take, so its p99 can be read off.
SAMPLE_DURATION_BUCKETS_S = (
    0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1,
    0.25, 0.5, 1.0,
)  # fmt: skip


@dataclass(frozen=True)
class DeviceEnergy:
    key: DeviceKey
    energy_uj: int
    power_w: float | None  # None when the device was not read in the last sample
    counter_events: tuple[tuple[CounterEvent, int], ...] = ()  # wraps, resets, refused reads
    is_counter: bool = False  # read as an energy counter (its events are exported)
    in_node_energy: bool = False  # one of the devices node energy is the sum of (node.py)


@dataclass(frozen=True)
class BucketEnergy:
    component: Component
    bucket: Bucket
    energy_uj: int


@dataclass(frozen=True)
class JobView:
    """One exported job: what the job metrics show (chosen under the cardinality limits)."""

    job_id: str
    name: str
    user: str
    running: bool
    info_values: tuple[str, ...]  # the promoted tags' values, in info_labels order
    totals: EnergyTotals


@dataclass(frozen=True)
class AttributionView:
    buckets: tuple[BucketEnergy, ...]  # cumulative, per component and bucket
    jobs: tuple[JobView, ...]
    info_labels: tuple[str, ...]  # label names of the promoted tags ("tag_team", ...)


@dataclass(frozen=True)
class LedgerWrites:
    """How the ledger's transactions went (one per job flush, one per intensity flush)."""

    ok: int = 0
    error: int = 0
    last_success_unix_s: float | None = None
    last_error: str = ""


@dataclass(frozen=True)
class Snapshot:
    version: str
    taken_at_unix_s: float
    devices: tuple[DeviceEnergy, ...]
    statuses: tuple[DeviceStatus, ...]
    gpus: tuple[GpuDetails, ...]
    node_energy_uj: int
    node_power_w: float | None
    emissions: Emissions  # node totals; marginal only grows under a marginal signal (WattTime)
    intensity: IntensityValue  # the average value in force (location-based Scope 2)
    market_factor_g_per_kwh: float | None
    pue: float
    samples_total: int
    samples_missed_total: int
    sample_duration: Histogram
    attribution: AttributionView | None = None
    marginal_intensity: IntensityValue | None = None
    feed: FeedStatus | None = None  # the live provider's state; None with provider "static"
    ledger: LedgerWrites | None = None  # None without a ledger (probe, tests)
    skipped: tuple[tuple[str, str, int], ...] = ()  # (source, reason, count) found, not counted
    # (component, relative half-width) of the model's estimates, for the modelled components
    model_uncertainty: tuple[tuple[Component, float], ...] = ()
    # the platform meter node energy follows (reconciled with the components), if any
    node_energy_meter: DeviceKey | None = None
    # amortised hardware footprint so far (Scope 3); None unless [embodied] is configured
    embodied_g: float | None = None
    monotonic_s: float | None = None  # the sample's time on the monitor's monotonic clock
