"""WattTime v3: marginal operating emissions rate (``co2_moer``), a marginal signal.

``GET /login`` with HTTP Basic gives a bearer token valid 30 minutes; it is cached and renewed
before it expires, and once more on a 401 (the server may have expired it early).
``GET /v3/forecast?horizon_hours=0`` gives the current value, in lbs/MWh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from carbonscope.carbon.intensity import MARGINAL, ForecastPoint
from carbonscope.carbon.providers.base import (
    FetchErrorReason,
    IntensityPoint,
    ProviderError,
    Reading,
    api_point,
)
from carbonscope.carbon.providers.http import JsonHttp, read_secret
from carbonscope.codecarbon_data import LBS_PER_MWH_TO_G_PER_KWH

LOGIN_PATH = "/login"
FORECAST_PATH = "/v3/forecast"
TOKEN_LIFETIME_S = 30 * 60.0
RENEW_BEFORE_S = 5 * 60.0  # renew when less than this is left
_UNITS_TO_G_PER_KWH = {"lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH, "g_co2_per_kwh": 1.0}


class WattTimeSource:
    name = "watttime"
    signal = MARGINAL

    def __init__(
        self,
        http: JsonHttp,
        username: str,
        password_file: Path,
        region: str,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._username = username
        self._password_file = password_file
        self.region = region
        self._clock_s = clock_s
        self._token: str | None = None
        self._token_at = 0.0

    def _login(self) -> str:
        password = read_secret(self._password_file, "carbon.watttime.password_file")
        body = self._http.get(LOGIN_PATH, auth=(self._username, password), secrets=(password,))
        token = body.get("token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise ProviderError(FetchErrorReason.MALFORMED, f"{LOGIN_PATH}: no token in answer")
        self._token, self._token_at = token, self._clock_s()
        return token

    def _valid_token(self) -> tuple[str, bool]:
        """The cached token, or a new one: (token, whether it was just issued)."""
        age = self._clock_s() - self._token_at
        if self._token is None or age >= TOKEN_LIFETIME_S - RENEW_BEFORE_S:
            return self._login(), True
        return self._token, False

    def _forecast_body(self) -> Mapping[str, Any]:
        params = {"region": self.region, "signal_type": "co2_moer", "horizon_hours": "0"}
        token, fresh = self._valid_token()
        for attempt in range(2):
            try:
                body = self._http.get(
                    FORECAST_PATH,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                    secrets=(token,),
                )
            except ProviderError as exc:
                if exc.reason is FetchErrorReason.AUTH and attempt == 0 and not fresh:
                    token = self._login()  # expired early on the server's side: once more
                    continue
                raise
            if not isinstance(body, Mapping):
                raise ProviderError(FetchErrorReason.MALFORMED, f"{FORECAST_PATH}: not an object")
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    def fetch(self) -> Reading:
        body = self._forecast_body()
        data, meta = body.get("data"), body.get("meta")
        if not isinstance(data, list) or not isinstance(meta, Mapping):
            raise ProviderError(FetchErrorReason.MALFORMED, f"{FORECAST_PATH}: no data or meta")
        if not data:
            raise ProviderError(
                FetchErrorReason.NO_DATA, f"{FORECAST_PATH}: no data for {self.region}"
            )
        units = meta.get("units")
        factor = _UNITS_TO_G_PER_KWH.get(str(units))
        if factor is None:
            raise ProviderError(FetchErrorReason.MALFORMED, f"{FORECAST_PATH}: units {units!r}")
        first = data[0]
        if not isinstance(first, Mapping):
            raise ProviderError(FetchErrorReason.MALFORMED, f"{FORECAST_PATH}: bad data point")
        point = api_point(first.get("value"), first.get("point_time"), FORECAST_PATH, self.region)
        return Reading(
            points=(IntensityPoint(point.starts_at_unix_s, point.g_per_kwh * factor),),
            location=self.region,
            emission_factor_type="unspecified",
        )

    def fetch_forecast(self) -> tuple[ForecastPoint, ...] | None:
        return None  # horizon 0 only: the current value
