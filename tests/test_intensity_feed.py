"""The feed: retries, Retry-After, the fallback chain, marginal signals; and the file source."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from carbonscope.carbon.feed import FeedSettings, FeedState, IntensityFeed
from carbonscope.carbon.intensity import MARGINAL, ForecastPoint, StaticIntensityProvider
from carbonscope.carbon.location import ResolvedLocation
from carbonscope.carbon.offline_data import OfflineIntensityData
from carbonscope.carbon.providers.base import (
    FetchErrorReason,
    ProviderError,
)
from carbonscope.carbon.providers.file import IntensityFileSource, parse_series
from tests.fakes.intensity import Clock, make_feed

GERMANY = OfflineIntensityData().lookup("DE").intensity_g_per_kwh


def server_error() -> ProviderError:
    return ProviderError(FetchErrorReason.SERVER, "HTTP 500")


def test_before_any_fetch_the_static_value_is_in_force() -> None:
    feed, _source = make_feed(Clock())
    grid = feed.current(Clock().now)
    assert grid.average.provider == "static" and grid.average.g_per_kwh == GERMANY
    assert grid.feed is not None and grid.feed.state == FeedState.FALLBACK
    assert grid.feed.last_value is None and grid.feed.last_error == "no fetch yet"


def test_fallback_chain_live_stale_static_and_back() -> None:
    clock = Clock()
    feed, source = make_feed(clock, max_age_s=600.0)
    source.script.extend([250.0, server_error(), server_error(), server_error(), 260.0])

    assert feed.refresh_once() == 60.0
    grid = feed.current(clock.now + 1)
    assert (grid.average.provider, grid.average.g_per_kwh) == ("scripted", 250.0)
    assert grid.average.resolved_by == "provider" and grid.average.age_s == 1.0
    assert grid.feed is not None and grid.feed.state == FeedState.OK and grid.feed.up

    clock.now += 300
    feed.refresh_once()  # fails: the last good value stays in force, marked stale
    grid = feed.current(clock.now)
    assert grid.average.g_per_kwh == 250.0 and grid.average.age_s == 300.0
    assert grid.feed is not None and grid.feed.state == FeedState.STALE and not grid.feed.up
    assert grid.feed.last_error == "HTTP 500"

    clock.now += 301  # now older than max_age: the static value takes over
    feed.refresh_once()
    grid = feed.current(clock.now)
    assert (grid.average.provider, grid.average.g_per_kwh) == ("static", GERMANY)
    assert grid.feed is not None and grid.feed.state == FeedState.FALLBACK
    assert grid.feed.last_value is not None and grid.feed.last_value.age_s == 601.0
    assert dict(grid.feed.fetch_errors) == {"server_error": 2}

    feed.refresh_once()
    feed.refresh_once()  # back
    grid = feed.current(clock.now)
    assert (grid.average.provider, grid.average.g_per_kwh) == ("scripted", 260.0)
    assert grid.feed is not None and grid.feed.state == FeedState.OK
    assert grid.feed.last_error == "" and dict(grid.feed.fetch_errors) == {"server_error": 3}
    assert sum(grid.feed.fetch_duration.counts) == 5  # every attempt, failures included


def test_backoff_grows_with_jitter_and_is_capped_by_refresh() -> None:
    clock = Clock()
    feed, source = make_feed(clock, refresh_s=20.0)
    source.script.extend([server_error()] * 8 + [100.0])
    delays = [feed.refresh_once() for _ in range(9)]
    ceilings = [1, 2, 4, 8, 16, 20, 20, 20]
    for delay, ceiling in zip(delays, ceilings, strict=False):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays[5:8])) == 3  # jittered: retries of many agents do not align
    assert delays[-1] == 20.0  # success: back to the refresh period


def test_retry_after_is_honoured_even_beyond_the_refresh() -> None:
    clock = Clock()
    feed, source = make_feed(clock, refresh_s=30.0)
    source.script.append(ProviderError(FetchErrorReason.RATE_LIMITED, "HTTP 429", 120.0))
    assert feed.refresh_once() == 120.0


def test_a_marginal_signal_never_enters_scope_2() -> None:
    clock = Clock()
    feed, source = make_feed(clock, signal=MARGINAL)
    source.script.append(420.0)
    feed.refresh_once()
    grid = feed.current(clock.now)
    assert (grid.average.provider, grid.average.g_per_kwh) == ("static", GERMANY)
    assert grid.marginal is not None and grid.marginal.g_per_kwh == 420.0
    assert grid.marginal.signal == MARGINAL


def test_a_latest_value_stamped_in_the_future_is_in_force_from_the_fetch() -> None:
    clock = Clock()
    feed, source = make_feed(clock)
    source.clock = Clock(clock.now + 900)  # the API's clock is ahead
    source.script.append(300.0)
    feed.refresh_once()
    assert feed.current(clock.now).average.g_per_kwh == 300.0


def test_forecast_is_fetched_with_the_value_and_kept() -> None:
    clock = Clock()
    feed, source = make_feed(clock)
    source.forecast = (ForecastPoint(clock.now + 3600, 111.0),)
    source.script.extend([200.0, 201.0])
    feed.refresh_once()
    feed.refresh_once()  # within 15 minutes: the forecast is not asked again
    status = feed.current(clock.now).feed
    assert status is not None and status.forecast == source.forecast
    assert source.forecast_calls == 1


def test_the_fetch_thread_runs_and_stops() -> None:
    clock = Clock()
    feed, source = make_feed(clock)
    source.script.extend([123.0] * 5)
    feed.start()
    try:
        for _ in range(200):
            if feed.current(clock.now).average.g_per_kwh == 123.0:
                break
            time.sleep(0.01)
        assert feed.current(clock.now).average.g_per_kwh == 123.0
    finally:
        feed.stop()
    assert feed._thread is not None and not feed._thread.is_alive()


# -- the file source ------------------------------------------------------------------------


def test_file_series_value_in_force_is_the_one_whose_interval_covers_the_sample(
    tmp_path: Path,
) -> None:
    path = tmp_path / "intensity.csv"
    path.write_text(
        "# replayed from last winter\n"
        "timestamp,g_per_kwh\n"
        "2026-01-10T00:00:00Z,300\n"
        "2026-01-10T01:00:00+01:00,999\n"  # the same moment as the row before
    )
    with pytest.raises(ProviderError, match="line 4: timestamps must increase strictly"):
        IntensityFileSource(path, "DE").fetch()
    path.write_text(
        "timestamp,g_per_kwh\n2026-01-10T00:00:00Z,300\n2026-01-10T02:00:00+01:00,120.5\n"
        "1768010400,80\n"
    )
    t0 = 1768003200.0  # 2026-01-10T00:00:00Z
    clock = Clock(t0 - 10)
    source = IntensityFileSource(path, "DE")
    static = StaticIntensityProvider(ResolvedLocation("DE", "config", "test"))
    feed = IntensityFeed(source, static, FeedSettings(60, 7200), wall_clock_s=clock)
    feed.refresh_once()
    assert feed.current(t0 - 10).average.provider == "static"  # before the series starts
    assert feed.current(t0).average.g_per_kwh == 300.0
    assert feed.current(t0 + 3599).average.g_per_kwh == 300.0
    assert feed.current(t0 + 3600).average.g_per_kwh == 120.5
    assert feed.current(t0 + 7200).average.g_per_kwh == 80.0
    assert feed.current(t0 + 7200 + 7200).average.g_per_kwh == 80.0  # exactly max_age
    assert feed.current(t0 + 7200 + 7201).average.provider == "static"

    path.write_text('{"data": [{"timestamp": "2026-01-10T00:00:00Z", "g_per_kwh": 55}]}')
    feed.refresh_once()
    assert feed.current(t0 + 10).average.g_per_kwh == 55.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,value\n2026-01-10T00:00:00Z,1\n", "header must name the columns"),
        ("timestamp,g_per_kwh\n2026-01-10T00:00:00,1\n", "line 2: .* has no time zone"),
        ("timestamp,g_per_kwh\n2026-01-10T00:00:00Z,-3\n", "line 2: .* not a valid intensity"),
        ("timestamp,g_per_kwh\n2026-01-10T00:00:00Z,lots\n", "line 2: 'lots' is not a number"),
        ("timestamp,g_per_kwh\n2026-01-10T00:00:00Z\n", "line 2: 1 fields"),
        ("timestamp,g_per_kwh\n", "no data rows"),
        ('[{"timestamp": "2026-01-10T00:00:00Z"}]', "entry 0: no g_per_kwh"),
        ('{"rows": []}', 'expected a JSON list, or an object with a "data" list'),
        ("[1, 2", "Expecting"),
    ],
)
def test_file_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / ("series.json" if text.startswith(("[", "{")) else "series.csv")
    path.write_text(text)
    with pytest.raises(ProviderError, match=message) as caught:
        IntensityFileSource(path, "DE").fetch()
    assert caught.value.reason is FetchErrorReason.MALFORMED


def test_a_missing_file_keeps_the_feed_on_its_last_series(tmp_path: Path) -> None:
    path = tmp_path / "series.json"
    path.write_text(json.dumps([{"timestamp": 1_800_000_000, "g_per_kwh": 42}]))
    clock = Clock(1_800_000_100.0)
    static = StaticIntensityProvider(ResolvedLocation("DE", "config", "test"))
    feed = IntensityFeed(
        IntensityFileSource(path, "DE"), static, FeedSettings(60, 7200), wall_clock_s=clock
    )
    feed.refresh_once()
    path.unlink()
    feed.refresh_once()
    grid = feed.current(clock.now)
    assert grid.average.g_per_kwh == 42.0
    assert grid.feed is not None and grid.feed.state == FeedState.STALE
    assert "cannot read" in grid.feed.last_error


def test_parse_series_accepts_unix_seconds_and_offsets() -> None:
    points = parse_series("timestamp,g_per_kwh\n100,1\n1970-01-01T02:00:00+01:00,2\n", False)
    assert [(p.starts_at_unix_s, p.g_per_kwh) for p in points] == [(100.0, 1.0), (3600.0, 2.0)]


def test_a_failed_forecast_is_counted_and_retried_later_without_touching_the_value() -> None:
    clock = Clock()
    feed, source = make_feed(clock, refresh_s=10.0)

    def broken_forecast() -> tuple[ForecastPoint, ...] | None:
        source.forecast_calls += 1
        raise ProviderError(FetchErrorReason.SERVER, "HTTP 502")

    source.fetch_forecast = broken_forecast  # type: ignore[method-assign]
    source.script.extend([200.0, 201.0, 202.0])
    feed.refresh_once()
    clock.now += 10
    feed.refresh_once()  # within the 60 s forecast retry: not asked again
    clock.now += 60
    feed.refresh_once()
    status = feed.current(clock.now).feed
    assert status is not None and status.up and status.state == FeedState.OK
    assert dict(status.fetch_errors) == {"server_error": 2}
    assert source.forecast_calls == 2
