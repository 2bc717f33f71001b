"""A live intensity feed: fetches on its own thread, answers the monitor without I/O.

The fallback chain, evaluated at every sample:
1. the provider's value covering the sample, while it is at most ``max_age`` old;
2. otherwise the static (offline) value for the location.
A failing fetch retries with exponential backoff and jitter (never later than the refresh
period, unless the API's Retry-After asks for longer), so an outage never blocks sampling
and never loses emissions accounting: some value is in force at every sample.
"""

from __future__ import annotations

import bisect
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from carbonscope.carbon.intensity import (
    MARGINAL,
    FeedStatus,
    ForecastPoint,
    GridIntensity,
    IntensityValue,
    StaticIntensityProvider,
)
from carbonscope.carbon.providers.base import GridSource, IntensityPoint, ProviderError, Reading
from carbonscope.carbon.providers.secrets import redact
from carbonscope.histogram import Histogram
from carbonscope.periodic import PeriodicThread

log = logging.getLogger(__name__)

FETCH_DURATION_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
FORECAST_MIN_REFRESH_S = 900.0  # forecasts move hourly: never ask more often than this
FORECAST_RETRY_S = 60.0  # after a failed forecast (the current value is fetched regardless)


class FeedState(StrEnum):
    OK = "ok"  # the provider's value is in force and the last fetch worked
    STALE = "stale"  # the provider's last good value is in force, but fetches are failing
    FALLBACK = "fallback"  # no provider value young enough: the static value is in force


@dataclass(frozen=True)
class FeedSettings:
    refresh_s: float
    max_age_s: float


@dataclass(frozen=True)
class _Loaded:
    reading: Reading
    starts: tuple[float, ...]  # point starts, for bisect


class IntensityFeed:
    """An IntensityProvider backed by a live GridSource, with the static value behind it."""

    def __init__(
        self,
        source: GridSource,
        fallback: StaticIntensityProvider,
        settings: FeedSettings,
        wall_clock_s: Callable[[], float] = time.time,
        monotonic_s: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = source.name
        self.source = source
        self._fallback = fallback
        self._settings = settings
        self._wall_clock_s = wall_clock_s
        self._monotonic_s = monotonic_s
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._forecast: tuple[ForecastPoint, ...] = ()
        self._forecast_due_s = 0.0  # monotonic
        self._failures = 0  # consecutive failed fetches: up = a value and no failure since
        self._last_error = "no fetch yet"
        self._errors: Counter[str] = Counter()
        self._durations = Histogram.empty(FETCH_DURATION_BUCKETS_S)
        self._thread = PeriodicThread(
            f"intensity-{self.name}", self.refresh_once, retry_s=settings.refresh_s
        )

    # -- fetching (its own thread) ---------------------------------------------------------

    def refresh_once(self) -> float:
        """One fetch attempt (and a forecast when due); returns seconds until the next one."""
        started = self._monotonic_s()
        try:
            reading = self.source.fetch()
        except ProviderError as exc:
            return self._failed(exc, self._monotonic_s() - started)
        fetched_at = self._wall_clock_s()
        if reading.latest:  # in force from now at the latest, whatever its own stamp says
            reading = _applied_from(reading, fetched_at)
        with self._lock:
            self._durations = self._durations.observe(self._monotonic_s() - started)
            if self._failures:
                log.info("intensity provider %s answers again", self.name)
            self._loaded = _Loaded(reading, tuple(p.starts_at_unix_s for p in reading.points))
            self._failures, self._last_error = 0, ""
        self._refresh_forecast()
        return self._settings.refresh_s

    def _failed(self, exc: ProviderError, duration_s: float) -> float:
        with self._lock:
            self._durations = self._durations.observe(duration_s)
            self._errors[exc.reason.value] += 1
            self._failures += 1
            self._last_error = redact(str(exc))
            failures = self._failures
        delay = self._backoff_s(failures)
        if exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        log.warning(
            "intensity provider %s: %s (%s); retrying in %.1fs",
            self.name,
            redact(str(exc)),
            exc.reason,
            delay,
        )
        return delay

    def _backoff_s(self, failures: int) -> float:
        """Exponential with equal jitter: half fixed, half random, capped by the refresh."""
        cap = min(self._settings.refresh_s, BACKOFF_CAP_S)
        ceiling = min(cap, BACKOFF_BASE_S * 2 ** min(failures - 1, 30))
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def _refresh_forecast(self) -> None:
        if self._monotonic_s() < self._forecast_due_s:
            return
        self._forecast_due_s = self._monotonic_s() + max(
            self._settings.refresh_s, FORECAST_MIN_REFRESH_S
        )
        try:
            forecast = self.source.fetch_forecast()
        except ProviderError as exc:
            with self._lock:
                self._errors[exc.reason.value] += 1
            log.warning("intensity provider %s: forecast: %s", self.name, redact(str(exc)))
            retry_s = max(exc.retry_after_s or 0.0, FORECAST_RETRY_S)
            self._forecast_due_s = self._monotonic_s() + retry_s
            return
        if forecast is not None:
            with self._lock:
                self._forecast = forecast

    def start(self) -> None:
        """Fetch now, then on schedule, on a daemon thread until ``stop``."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._thread.stop(timeout_s)

    # -- answering the monitor (no I/O) --------------------------------------------------------

    def _live_value(self, now_unix_s: float) -> IntensityValue | None:
        """The provider's value covering ``now``, whatever its age."""
        loaded = self._loaded
        if loaded is None:
            return None
        index = bisect.bisect_right(loaded.starts, now_unix_s) - 1
        if index < 0:  # a series that starts later
            return None
        point = loaded.reading.points[index]
        return IntensityValue(
            location=loaded.reading.location,
            provider=self.name,
            signal=self.source.signal,
            g_per_kwh=point.g_per_kwh,
            age_s=max(0.0, now_unix_s - point.starts_at_unix_s),
            resolved_by="provider",
            detail=f"{self.name} value from {_iso(point.starts_at_unix_s)}",
            emission_factor_type=loaded.reading.emission_factor_type,
        )

    def current(self, now_unix_s: float) -> GridIntensity:
        static = self._fallback.current(now_unix_s).average
        with self._lock:
            live = self._live_value(now_unix_s)
            up = self._loaded is not None and self._failures == 0  # the last fetch worked
            fresh = live is not None and live.age_s <= self._settings.max_age_s
            if not fresh:
                state = FeedState.FALLBACK
            elif up:
                state = FeedState.OK
            else:
                state = FeedState.STALE
            status = FeedStatus(
                provider=self.name,
                state=state.value,
                up=up,
                last_value=live,
                last_error=self._last_error,
                fetch_errors=tuple(sorted(self._errors.items())),
                fetch_duration=self._durations,
                forecast=self._forecast,
                signal=self.source.signal,
            )
        in_force = live if fresh else None
        if self.source.signal == MARGINAL:  # never Scope 2: the average stays static
            return GridIntensity(average=static, marginal=in_force, feed=status)
        return GridIntensity(average=in_force or static, marginal=None, feed=status)


def _applied_from(reading: Reading, fetched_at: float) -> Reading:
    points = tuple(
        IntensityPoint(min(p.starts_at_unix_s, fetched_at), p.g_per_kwh) for p in reading.points
    )
    return Reading(points, reading.location, reading.emission_factor_type, reading.latest)


def _iso(unix_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))
