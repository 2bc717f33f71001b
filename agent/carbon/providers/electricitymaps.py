"""Electricity Maps v3: ``carbon-intensity/latest`` and ``carbon-intensity/forecast``.

Auth is the ``auth-token`` header. ``shouldUseFallbackCallerLookup=false`` stops the API from
guessing the zone from our IP address; an answer for another zone is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from carbonscope.carbon.intensity import AVERAGE, ForecastPoint
from carbonscope.carbon.providers.base import (
    FetchErrorReason,
    ProviderError,
    Reading,
    api_point,
    intensity_number,
    parse_timestamp,
)
from carbonscope.carbon.providers.http import JsonHttp, read_secret

LATEST_PATH = "/v3/carbon-intensity/latest"
FORECAST_PATH = "/v3/carbon-intensity/forecast"


class ElectricityMapsSource:
    name = "electricitymaps"
    signal = AVERAGE

    def __init__(
        self, http: JsonHttp, token_file: Path, zone: str, emission_factor_type: str
    ) -> None:
        self._http = http
        self._token_file = token_file
        self.zone = zone
        self.emission_factor_type = emission_factor_type

    def _get(self, path: str) -> Mapping[str, Any]:
        token = read_secret(self._token_file, "carbon.electricitymaps.token_file")
        body = self._http.get(
            path,
            params={
                "zone": self.zone,
                "emissionFactorType": self.emission_factor_type,
                "shouldUseFallbackCallerLookup": "false",
            },
            headers={"auth-token": token},
            secrets=(token,),
        )
        if not isinstance(body, Mapping):
            raise ProviderError(FetchErrorReason.MALFORMED, f"{path}: expected a JSON object")
        zone = body.get("zone")
        if zone is not None and zone != self.zone:
            raise ProviderError(
                FetchErrorReason.CLIENT, f"{path}: answered for zone {zone!r}, asked {self.zone!r}"
            )
        return body

    def fetch(self) -> Reading:
        body = self._get(LATEST_PATH)
        point = api_point(body.get("carbonIntensity"), body.get("datetime"), LATEST_PATH, self.zone)
        factor = body.get("emissionFactorType")
        return Reading(
            points=(point,),
            location=self.zone,
            emission_factor_type=factor if isinstance(factor, str) else self.emission_factor_type,
        )

    def fetch_forecast(self) -> tuple[ForecastPoint, ...]:
        body = self._get(FORECAST_PATH)
        entries = body.get("forecast")
        if not isinstance(entries, list):
            raise ProviderError(FetchErrorReason.MALFORMED, f"{FORECAST_PATH}: no forecast list")
        points = []
        try:
            for entry in entries:
                if not isinstance(entry, Mapping):
                    raise ValueError(f"forecast entry {entry!r} is not an object")
                value = intensity_number(entry.get("carbonIntensity"))
                if value is not None:  # a null hour is a hole, not a zero
                    points.append(ForecastPoint(parse_timestamp(entry.get("datetime")), value))
        except ValueError as exc:
            raise ProviderError(FetchErrorReason.MALFORMED, f"{FORECAST_PATH}: {exc}") from None
        return tuple(sorted(points, key=lambda point: point.starts_at_unix_s))
