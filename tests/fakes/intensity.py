"""Intensity providers for tests: a settable one, and a live feed over a scripted source."""

from __future__ import annotations

import random
from collections import deque

from carbonscope.carbon.feed import FeedSettings, IntensityFeed
from carbonscope.carbon.intensity import (
    ForecastPoint,
    GridIntensity,
    IntensityValue,
    StaticIntensityProvider,
)
from carbonscope.carbon.location import ResolvedLocation
from carbonscope.carbon.providers.base import IntensityPoint, ProviderError, Reading


class SettableIntensity:
    name = "fake"

    def __init__(self, g_per_kwh: float, location: str = "FR") -> None:
        self.g_per_kwh = g_per_kwh
        self.location = location

    def current(self, now_unix_s: float) -> GridIntensity:
        return GridIntensity(
            IntensityValue(
                self.location, self.name, "average", self.g_per_kwh, 0.0, "config", "test"
            )
        )


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedSource:
    """Answers from a script: a Reading, a ProviderError to raise, or a value to wrap."""

    name = "scripted"

    def __init__(self, clock: Clock, signal: str = "average") -> None:
        self.clock = clock
        self.signal = signal
        self.script: deque[float | ProviderError] = deque()
        self.forecast: tuple[ForecastPoint, ...] | None = None
        self.forecast_calls = 0

    def fetch(self) -> Reading:
        item = self.script.popleft()
        if isinstance(item, ProviderError):
            raise item
        return Reading((IntensityPoint(self.clock.now, item),), "DE", "lifecycle")

    def fetch_forecast(self) -> tuple[ForecastPoint, ...] | None:
        self.forecast_calls += 1
        return self.forecast


def make_feed(
    clock: Clock, signal: str = "average", refresh_s: float = 60.0, max_age_s: float = 600.0
) -> tuple[IntensityFeed, ScriptedSource]:
    source = ScriptedSource(clock, signal)
    static = StaticIntensityProvider(ResolvedLocation("DE", "config", "test"))
    feed = IntensityFeed(
        source,
        static,
        FeedSettings(refresh_s, max_age_s),
        wall_clock_s=clock,
        monotonic_s=clock,
        rng=random.Random(7),
    )
    return feed, source
