"""What a live grid source is: one small interface, its readings and its errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from carbonscope.carbon.intensity import ForecastPoint
from carbonscope.errors import CarbonscopeError


class FetchErrorReason(StrEnum):
    """Why a fetch failed: a bounded set, used as a metric label."""

    AUTH = "auth"  # 401/403, or a login refused
    RATE_LIMITED = "rate_limited"  # 429
    CLIENT = "client_error"  # other 4xx, or an answer for the wrong zone
    SERVER = "server_error"  # 5xx
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    MALFORMED = "malformed"  # not the JSON shape the API documents, or a bad file
    NO_DATA = "no_data"  # the right shape, but null or empty values
    SECRET = "secret"  # the token or password file cannot be read


class ProviderError(CarbonscopeError):
    def __init__(
        self, reason: FetchErrorReason, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class IntensityPoint:
    """A value and the moment it applies from (until the next point, or until too old)."""

    starts_at_unix_s: float
    g_per_kwh: float


@dataclass(frozen=True)
class Reading:
    """One successful fetch."""

    points: tuple[IntensityPoint, ...]  # sorted by start
    location: str  # the zone or region the values are for
    emission_factor_type: str  # lifecycle | direct | unspecified
    # True for an API's "latest" value: it applies from the moment it was fetched at the
    # latest, whatever its own timestamp says. False for a time series replayed as stored.
    latest: bool = True


class GridSource(Protocol):
    """A live intensity source. ``fetch`` does I/O and raises ProviderError, nothing else."""

    name: str  # the provider label: electricitymaps | watttime | uk | file
    signal: str  # average | marginal

    def fetch(self) -> Reading: ...

    def fetch_forecast(self) -> tuple[ForecastPoint, ...] | None:
        """Upcoming values, or None when this source has no forecast."""
        ...


def parse_timestamp(value: object, *, naive_is_utc: bool = True) -> float:
    """ISO 8601 (``2026-11-24T10:00Z``, with or without seconds) to unix seconds."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"{value!r} has no time zone: add Z or an offset such as +01:00")
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def intensity_number(value: object) -> float | None:
    """A g/kWh value from JSON: None for null; ValueError for anything not a sane number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a valid intensity")
    return number


def api_point(raw_value: object, raw_at: object, where: str, subject: str) -> IntensityPoint:
    """One (value, timestamp) pair from an API answer: MALFORMED for a bad shape, NO_DATA
    for a null value (the right shape, nothing to use)."""
    try:
        value = intensity_number(raw_value)
        at = parse_timestamp(raw_at)
    except ValueError as exc:
        raise ProviderError(FetchErrorReason.MALFORMED, f"{where}: {exc}") from None
    if value is None:
        raise ProviderError(FetchErrorReason.NO_DATA, f"{where}: no value for {subject}")
    return IntensityPoint(at, value)
