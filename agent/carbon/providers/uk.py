"""UK Carbon Intensity API (NESO): national ``/intensity`` or regional, half-hourly, no auth.

National periods carry ``actual`` (null until measured) and ``forecast``: actual wins.
Regional periods carry a forecast only.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from carbonscope.carbon.providers.http import JsonHttp

NATIONAL_PATH = "/intensity"


class UkCarbonIntensitySource:
    name = "uk"
    signal = AVERAGE

    def __init__(self, http: JsonHttp, postcode: str = "", region_id: int | None = None) -> None:
        self._http = http
        if postcode:
            self.path = f"/regional/postcode/{postcode}"
        elif region_id is not None:
            self.path = f"/regional/regionid/{region_id}"
        else:
            self.path = NATIONAL_PATH

    def _period(self, body: Any) -> tuple[Mapping[str, Any], str]:
        """The current half-hour period and the location it is for."""
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, list):
            raise ValueError("no data list")
        if not data:
            raise LookupError("empty data list")
        first = data[0]
        if not isinstance(first, Mapping):
            raise ValueError("data entry is not an object")
        if self.path == NATIONAL_PATH:
            return first, "GB"
        region = first.get("shortname")
        periods = first.get("data")
        if not isinstance(periods, list) or not isinstance(region, str):
            raise ValueError("regional entry without shortname and data list")
        if not periods or not isinstance(periods[0], Mapping):
            raise LookupError(f"no period for {region}")
        return periods[0], f"GB/{region}"

    def fetch(self) -> Reading:
        body = self._http.get(self.path)
        try:
            period, location = self._period(body)
            intensity = period.get("intensity")
            if not isinstance(intensity, Mapping):
                raise ValueError("period without an intensity object")
            actual = intensity_number(intensity.get("actual"))
            forecast = intensity_number(intensity.get("forecast"))
            starts_at = parse_timestamp(period.get("from"))
        except LookupError as exc:
            raise ProviderError(FetchErrorReason.NO_DATA, f"{self.path}: {exc}") from None
        except ValueError as exc:
            raise ProviderError(FetchErrorReason.MALFORMED, f"{self.path}: {exc}") from None
        value = actual if actual is not None else forecast
        if value is None:
            raise ProviderError(
                FetchErrorReason.NO_DATA, f"{self.path}: actual and forecast are both null"
            )
        return Reading(
            points=(IntensityPoint(starts_at, value),),
            location=location,
            emission_factor_type="unspecified",
        )

    def fetch_forecast(self) -> tuple[ForecastPoint, ...] | None:
        return None
