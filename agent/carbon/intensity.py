"""Intensity providers: the grid intensity in force at a given sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.carbon.location import ResolvedLocation
from agent.carbon.offline_data import OfflineIntensityData, StaticIntensity


@dataclass(frozen=True)
class IntensityValue:
    location: str
    provider: str
    signal: str  # "average" (location-based Scope 2) or "marginal"
    g_per_kwh: float
    age_s: float  # how old the value in force is
    resolved_by: str  # how the location was chosen: config | timezone | default
    detail: str


class IntensityProvider(Protocol):
    name: str

    def current(self, now_unix_s: float) -> IntensityValue: ...


class StaticIntensityProvider:
    """The offline yearly average for the location. Never stale: it is not a time series."""

    name = "static"

    def __init__(
        self, location: ResolvedLocation, data: OfflineIntensityData | None = None
    ) -> None:
        self.location = location
        self.value: StaticIntensity = (data or OfflineIntensityData()).lookup(location.code)

    def current(self, now_unix_s: float) -> IntensityValue:
        year = f", {self.value.year}" if self.value.year else ""
        return IntensityValue(
            location=self.value.location,
            provider=self.name,
            signal="average",
            g_per_kwh=self.value.intensity_g_per_kwh,
            age_s=0.0,
            resolved_by=self.location.resolved_by,
            detail=f"{self.location.detail}; {self.value.dataset}{year}",
        )
