"""What one sample publishes: the immutable snapshot and every type and label value it holds.

Exporters import this package and nothing else of carbonscope (tests/test_layering.py), so a
new exporter needs to know the snapshot only. The label enums are defined where their values
are produced (sensors, carbon, accounting) and re-exported here with the snapshot.
"""

from carbonscope.accounting.attribution import Bucket
from carbonscope.accounting.emissions import Emissions
from carbonscope.accounting.energy import COUNTER_EVENTS, CounterEvent
from carbonscope.accounting.totals import EnergyTotals
from carbonscope.carbon.feed import FeedState
from carbonscope.carbon.intensity import MARGINAL, FeedStatus, ForecastPoint, IntensityValue
from carbonscope.carbon.providers.base import FetchErrorReason
from carbonscope.histogram import Histogram
from carbonscope.sensors.base import Component, DeviceKey, DeviceStatus, GpuDetails, SourceStatus
from carbonscope.snapshot.model import (
    SAMPLE_DURATION_BUCKETS_S,
    AttributionView,
    BucketEnergy,
    DeviceEnergy,
    JobView,
    LedgerWrites,
    Snapshot,
)
from carbonscope.units import UJ_PER_J

__all__ = [
    "COUNTER_EVENTS",
    "MARGINAL",
    "SAMPLE_DURATION_BUCKETS_S",
    "UJ_PER_J",
    "AttributionView",
    "Bucket",
    "BucketEnergy",
    "Component",
    "CounterEvent",
    "DeviceEnergy",
    "DeviceKey",
    "DeviceStatus",
    "Emissions",
    "EnergyTotals",
    "FeedState",
    "FeedStatus",
    "FetchErrorReason",
    "ForecastPoint",
    "GpuDetails",
    "Histogram",
    "IntensityValue",
    "JobView",
    "LedgerWrites",
    "Snapshot",
    "SourceStatus",
]
