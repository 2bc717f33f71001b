"""Metric families of a live intensity provider (its health and forecast) and histograms."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from itertools import pairwise

from carbonscope.exporters.prometheus.text import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from carbonscope.snapshot import FeedState, FeedStatus, FetchErrorReason, ForecastPoint, Histogram

FORECAST_HOURS = 24


def histogram_family(
    name: str, documentation: str, histogram: Histogram, labels: tuple[str, str] | None = None
) -> HistogramMetricFamily:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    if labels is None:
        return HistogramMetricFamily(
            name, documentation, buckets=buckets, sum_value=histogram.total
        )
    family = HistogramMetricFamily(name, documentation, labels=[labels[0]])
    family.add_metric([labels[1]], buckets, histogram.total)
    return family


def feed_metrics(feed: FeedStatus, now_unix_s: float) -> Iterator[Metric]:
    """A live provider's health, and its forecast for carbon-aware scheduling."""
    up = GaugeMetricFamily(
        "carbonscope_intensity_provider_up",
        "1 if the last fetch from the live intensity provider succeeded.",
        labels=["provider"],
    )
    up.add_metric([feed.provider], 1 if feed.up else 0)
    yield up
    status = GaugeMetricFamily(
        "carbonscope_intensity_provider_status",
        "State set: ok (provider value in force), stale (its last good value in force, fetches "
        "failing), fallback (static value in force: none younger than carbon.max_age).",
        labels=["provider", "status"],
    )
    for state in FeedState:
        status.add_metric([feed.provider, state.value], 1 if state.value == feed.state else 0)
    yield status
    yield histogram_family(
        "carbonscope_intensity_fetch_duration_seconds",
        "Time one fetch from the live intensity provider took, failures included.",
        feed.fetch_duration,
        ("provider", feed.provider),
    )
    errors = CounterMetricFamily(
        "carbonscope_intensity_fetch_errors",
        "Failed fetches from the live intensity provider, by reason.",
        labels=["provider", "reason"],
    )
    counts = dict(feed.fetch_errors)
    for reason in FetchErrorReason:
        errors.add_metric([feed.provider, reason.value], counts.get(reason.value, 0))
    yield errors
    forecast = GaugeMetricFamily(
        "carbonscope_grid_intensity_forecast_grams_per_kwh",
        "The provider's forecast of grid intensity N hours from now (hours_ahead), gCO2e/kWh.",
        labels=["location", "provider", "signal", "hours_ahead"],
    )
    if feed.forecast and feed.last_value is not None:
        for hours, value in forecast_by_hour(feed.forecast, now_unix_s):
            forecast.add_metric(
                [feed.last_value.location, feed.provider, feed.signal, str(hours)], value
            )
    yield forecast


def forecast_by_hour(
    points: tuple[ForecastPoint, ...], now_unix_s: float, hours: int = FORECAST_HOURS
) -> list[tuple[int, float]]:
    """For h = 1..hours: the forecast value whose interval covers now + h hours.

    A point covers from its start to the next point's start; the last one for the median step.
    """
    if not points:
        return []
    starts = [point.starts_at_unix_s for point in points]
    steps = sorted(b - a for a, b in pairwise(starts)) or [3600.0]
    end = starts[-1] + steps[len(steps) // 2]
    found = []
    for hour in range(1, hours + 1):
        moment = now_unix_s + hour * 3600
        index = bisect.bisect_right(starts, moment) - 1
        if index >= 0 and moment < end:
            found.append((hour, points[index].g_per_kwh))
    return found
