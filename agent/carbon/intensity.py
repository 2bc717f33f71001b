"""The grid intensity in force at a sample, and the static (offline) provider.

Live providers (agent/carbon/feed.py) answer with the same ``GridIntensity``: the average
value used for location- and market-based Scope 2, a marginal value when the provider's
signal is marginal (never mixed into Scope 2), and the feed's state for metrics and probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from carbonscope.carbon.location import ResolvedLocation
from carbonscope.carbon.offline_data import OfflineIntensityData, StaticIntensity
from carbonscope.histogram import Histogram

AVERAGE = "average"  # location-based Scope 2 signal
MARGINAL = "marginal"  # the emissions of the next kWh: for shifting load, not for Scope 2


@dataclass(frozen=True)
class IntensityValue:
    location: str
    provider: str
    signal: str  # AVERAGE or MARGINAL
    g_per_kwh: float
    age_s: float  # how old the value in force is
    resolved_by: str  # how the location was chosen: config | timezone | default | provider
    detail: str
    emission_factor_type: str = "unspecified"  # lifecycle | direct, where the source says


@dataclass(frozen=True)
class ForecastPoint:
    starts_at_unix_s: float
    g_per_kwh: float


@dataclass(frozen=True)
class FeedStatus:
    """What a live provider is doing: shown by metrics and `carbonscope probe`."""

    provider: str
    state: str  # FeedState value: ok | stale | fallback
    up: bool  # the last fetch succeeded
    last_value: IntensityValue | None  # the newest value the provider gave, in force or not
    last_error: str  # "" when the last fetch succeeded
    fetch_errors: tuple[tuple[str, int], ...]  # (reason, count), cumulative
    fetch_duration: Histogram  # seconds per fetch attempt, cumulative
    forecast: tuple[ForecastPoint, ...] = field(default=())
    signal: str = AVERAGE  # the provider's own signal


@dataclass(frozen=True)
class GridIntensity:
    average: IntensityValue  # used for location- (and, without a market factor, market-) based
    marginal: IntensityValue | None = None
    feed: FeedStatus | None = None


class IntensityProvider(Protocol):
    name: str

    def current(self, now_unix_s: float) -> GridIntensity: ...


class StaticIntensityProvider:
    """The offline yearly average for the location. Never stale: it is not a time series."""

    name = "static"

    def __init__(
        self, location: ResolvedLocation, data: OfflineIntensityData | None = None
    ) -> None:
        self.location = location
        self.value: StaticIntensity = (data or OfflineIntensityData()).lookup(location.code)
        year = f", {self.value.year}" if self.value.year else ""
        self._intensity = GridIntensity(
            IntensityValue(
                location=self.value.location,
                provider=self.name,
                signal=AVERAGE,
                g_per_kwh=self.value.intensity_g_per_kwh,
                age_s=0.0,
                resolved_by=location.resolved_by,
                detail=f"{location.detail}; {self.value.dataset}{year}",
                emission_factor_type=self.value.emission_factor_type,
            )
        )

    def current(self, now_unix_s: float) -> GridIntensity:
        return self._intensity
