"""A local intensity time series: for air-gapped sites, and for replaying history.

CSV with a header row ``timestamp,g_per_kwh`` (``#`` comment lines allowed), or JSON: a list
of ``{"timestamp": ..., "g_per_kwh": ...}`` objects, or ``{"data": [...]}`` of the same.
Timestamps are ISO 8601 with a zone (``2026-11-24T10:00:00Z``, ``...+01:00``) or unix seconds,
strictly increasing. Each value is in force from its timestamp until the next one; the last
one until ``carbon.max_age`` after it. The file is read again whenever it changes.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from carbonscope.carbon.intensity import AVERAGE, ForecastPoint
from carbonscope.carbon.providers.base import (
    FetchErrorReason,
    IntensityPoint,
    ProviderError,
    Reading,
    intensity_number,
    parse_timestamp,
)

MAX_FILE_BYTES = 64 * 1024 * 1024
TIMESTAMP, VALUE = "timestamp", "g_per_kwh"


def _moment(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        return float(value)
    return parse_timestamp(value, naive_is_utc=False)


def _csv_rows(text: str) -> Iterator[tuple[str, object, object]]:
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        return
    header = [name.strip().lower() for name in next(csv.reader([lines[0][1]]))]
    if TIMESTAMP not in header or VALUE not in header:
        raise ValueError(
            f"line {lines[0][0]}: the header must name the columns {TIMESTAMP} and {VALUE}"
        )
    at, value = header.index(TIMESTAMP), header.index(VALUE)
    for number, line in lines[1:]:
        fields = next(csv.reader(io.StringIO(line)))
        if len(fields) != len(header):
            raise ValueError(f"line {number}: {len(fields)} fields, the header has {len(header)}")
        raw_value = fields[value].strip()
        try:
            number_value: object = float(raw_value) if raw_value else None
        except ValueError:
            raise ValueError(f"line {number}: {raw_value!r} is not a number") from None
        yield f"line {number}", fields[at].strip(), number_value


def _json_rows(text: str) -> Iterator[tuple[str, object, object]]:
    body: Any = json.loads(text)
    if isinstance(body, dict):
        body = body.get("data")
    if not isinstance(body, list):
        raise ValueError('expected a JSON list, or an object with a "data" list')
    for index, entry in enumerate(body):
        if not isinstance(entry, dict):
            raise ValueError(f"entry {index}: not an object")
        yield f"entry {index}", entry.get(TIMESTAMP), entry.get(VALUE)


def parse_series(text: str, is_json: bool) -> tuple[IntensityPoint, ...]:
    rows: Iterable[tuple[str, object, object]] = _json_rows(text) if is_json else _csv_rows(text)
    points: list[IntensityPoint] = []
    for where, raw_at, raw_value in rows:
        try:
            at = _moment(raw_at)
            value = intensity_number(raw_value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if value is None:
            raise ValueError(f"{where}: no {VALUE} value")
        if points and at <= points[-1].starts_at_unix_s:
            raise ValueError(f"{where}: timestamps must increase strictly")
        points.append(IntensityPoint(at, value))
    if not points:
        raise ValueError("no data rows")
    return tuple(points)


class IntensityFileSource:
    name = "file"
    signal = AVERAGE

    def __init__(self, path: Path, location: str) -> None:
        self.path = path
        self.location = location
        self._loaded: tuple[tuple[int, int, int], Reading] | None = None

    def fetch(self) -> Reading:
        try:
            stat = os.stat(self.path)
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._loaded is not None and self._loaded[0] == identity:
                return self._loaded[1]
            if stat.st_size > MAX_FILE_BYTES:
                raise ProviderError(
                    FetchErrorReason.MALFORMED, f"{self.path}: larger than {MAX_FILE_BYTES} bytes"
                )
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProviderError(
                FetchErrorReason.CONNECTION, f"cannot read {self.path}: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError:
            raise ProviderError(FetchErrorReason.MALFORMED, f"{self.path}: not UTF-8") from None
        is_json = self.path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{")
        try:
            points = parse_series(text, is_json)
        except (ValueError, csv.Error) as exc:  # json.JSONDecodeError is a ValueError
            raise ProviderError(FetchErrorReason.MALFORMED, f"{self.path}: {exc}") from None
        reading = Reading(points, self.location, "unspecified", latest=False)
        self._loaded = (identity, reading)
        return reading

    def fetch_forecast(self) -> tuple[ForecastPoint, ...] | None:
        return None  # a replayed series is history, not a forecast
