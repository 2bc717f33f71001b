"""Each live provider against a local server answering in the real API's shapes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from carbonscope.carbon.feed import IntensityFeed
from carbonscope.carbon.location import ResolvedLocation
from carbonscope.carbon.offline_data import LBS_PER_MWH_TO_G_PER_KWH
from carbonscope.carbon.providers.base import FetchErrorReason, ProviderError
from carbonscope.carbon.providers.electricitymaps import (
    FORECAST_PATH,
    LATEST_PATH,
    ElectricityMapsSource,
)
from carbonscope.carbon.providers.http import MAX_BODY_BYTES, JsonHttp, parse_retry_after
from carbonscope.carbon.providers.registry import build_intensity_provider
from carbonscope.carbon.providers.secrets import redact
from carbonscope.carbon.providers.uk import UkCarbonIntensitySource
from carbonscope.carbon.providers.watttime import (
    FORECAST_PATH as WT_FORECAST,
)
from carbonscope.carbon.providers.watttime import (
    LOGIN_PATH,
    TOKEN_LIFETIME_S,
    WattTimeSource,
)
from carbonscope.config.schema import CarbonSection
from tests.fakes.grid_apis import Failure, GridApiServer


@pytest.fixture
def api() -> Iterator[GridApiServer]:
    server = GridApiServer()
    yield server
    server.close()


def _secret_file(tmp_path: Path, name: str, secret: str) -> Path:
    path = tmp_path / name
    path.write_text(secret + "\n")  # operators' files end with a newline
    path.chmod(0o600)
    return path


def electricitymaps(
    api: GridApiServer, tmp_path: Path, factor: str = "lifecycle", timeout_s: float = 5.0
) -> ElectricityMapsSource:
    token_file = _secret_file(tmp_path, "em.token", api.em_token)
    return ElectricityMapsSource(JsonHttp(api.url, timeout_s), token_file, "DE", factor)


def fetch_error(
    source: ElectricityMapsSource | WattTimeSource | UkCarbonIntensitySource,
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        source.fetch()
    return caught.value


# -- Electricity Maps ---------------------------------------------------------------------------


@pytest.mark.parametrize("factor", ["lifecycle", "direct"])
def test_electricitymaps_latest(api: GridApiServer, tmp_path: Path, factor: str) -> None:
    api.em_value = 312.5
    stamp = float(int(time.time()) - 1200)
    api.em_value_at = lambda: stamp
    reading = electricitymaps(api, tmp_path, factor).fetch()
    assert [point.g_per_kwh for point in reading.points] == [312.5]
    assert reading.points[0].starts_at_unix_s == pytest.approx(stamp, abs=0.01)
    assert reading.location == "DE"
    assert reading.emission_factor_type == factor  # echoed from the answer
    (request,) = api.requests_to(LATEST_PATH)
    assert request.headers["auth-token"] == api.em_token
    assert request.query == {
        "zone": "DE",
        "emissionFactorType": factor,
        "shouldUseFallbackCallerLookup": "false",
    }


def test_electricitymaps_forecast_skips_null_hours(api: GridApiServer, tmp_path: Path) -> None:
    base = 1_800_000_000.0
    api.em_forecast = [(base + 3600, 250.0), (base, 200.0), (base + 7200, None)]
    forecast = electricitymaps(api, tmp_path).fetch_forecast()
    assert [(p.starts_at_unix_s, p.g_per_kwh) for p in forecast] == [
        (base, 200.0),
        (base + 3600, 250.0),
    ]
    assert api.requests_to(FORECAST_PATH)[0].query["shouldUseFallbackCallerLookup"] == "false"


def test_electricitymaps_wrong_token_is_an_auth_error_without_the_token(
    api: GridApiServer, tmp_path: Path
) -> None:
    wrong = "not-the-token-0123456789"
    source = ElectricityMapsSource(
        JsonHttp(api.url, 5.0), _secret_file(tmp_path, "bad", wrong), "DE", "lifecycle"
    )
    error = fetch_error(source)
    assert error.reason is FetchErrorReason.AUTH
    assert "HTTP 401" in str(error) and "Invalid authentication credentials" in str(error)
    assert wrong not in str(error)


def test_an_api_echoing_the_token_is_redacted(api: GridApiServer, tmp_path: Path) -> None:
    api.fail_next(LATEST_PATH, Failure(400, {"error": f"token {api.em_token} lacks zone DE"}))
    error = fetch_error(electricitymaps(api, tmp_path))
    assert error.reason is FetchErrorReason.CLIENT
    assert api.em_token not in str(error)
    assert "<redacted>" in str(error)


def test_rate_limit_carries_retry_after_seconds_or_date(api: GridApiServer, tmp_path: Path) -> None:
    source = electricitymaps(api, tmp_path)
    api.fail_next(
        LATEST_PATH, Failure(429, {"message": "Too many requests"}, headers={"Retry-After": "7"})
    )
    error = fetch_error(source)
    assert error.reason is FetchErrorReason.RATE_LIMITED and error.retry_after_s == 7.0
    later = formatdate(time.time() + 120, usegmt=True)
    api.fail_next(LATEST_PATH, Failure(429, {"message": "slow"}, headers={"Retry-After": later}))
    assert fetch_error(source).retry_after_s == pytest.approx(120, abs=2)
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after("-5", 0.0) == 0.0
    assert parse_retry_after("9999999", 0.0) == 86400.0


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Failure(500, {"error": "Internal Server Error"}), FetchErrorReason.SERVER),
        (Failure(503, raw=b"<html>upstream down</html>"), FetchErrorReason.SERVER),
        (Failure(200, raw=b"<html>captive portal</html>"), FetchErrorReason.MALFORMED),
        (Failure(200, raw=b'{"zone": "DE", "carbonInt'), FetchErrorReason.MALFORMED),
        (Failure(200, body=["not", "an", "object"]), FetchErrorReason.MALFORMED),
        (Failure(200, body={"zone": "DE", "carbonIntensity": "high"}), FetchErrorReason.MALFORMED),
        (
            Failure(200, body={"zone": "DE", "carbonIntensity": 300, "datetime": "yesterday"}),
            FetchErrorReason.MALFORMED,
        ),
        (
            Failure(200, body={"zone": "DE", "carbonIntensity": None, "datetime": "2026-11-24"}),
            FetchErrorReason.NO_DATA,
        ),
        (
            Failure(200, body={"zone": "FR", "carbonIntensity": 50, "datetime": "2026-11-24"}),
            FetchErrorReason.CLIENT,
        ),
        (Failure(302, raw=b"", headers={"Location": "http://elsewhere/"}), FetchErrorReason.CLIENT),
    ],
)
def test_electricitymaps_bad_answers(
    api: GridApiServer, tmp_path: Path, failure: Failure, reason: FetchErrorReason
) -> None:
    api.fail_next(LATEST_PATH, failure)
    error = fetch_error(electricitymaps(api, tmp_path))
    assert error.reason is reason, error


def test_a_slow_api_times_out(api: GridApiServer, tmp_path: Path) -> None:
    api.fail_next(LATEST_PATH, Failure(200, delay_s=1.5))
    started = time.monotonic()
    error = fetch_error(electricitymaps(api, tmp_path, timeout_s=0.3))
    assert error.reason is FetchErrorReason.TIMEOUT
    assert time.monotonic() - started < 1.4


def test_an_answer_trickling_in_is_cut_at_the_timeout_for_the_whole_answer(
    api: GridApiServer, tmp_path: Path
) -> None:
    """A byte every 0.1 s never trips a per-read timeout; the whole answer has one."""
    body = b'{"zone": "DE", "carbonIntensity": 300, "datetime": "2026-01-01T00:00:00Z"}'
    api.fail_next(LATEST_PATH, Failure(200, raw=body, trickle_s=0.1))
    started = time.monotonic()
    error = fetch_error(electricitymaps(api, tmp_path, timeout_s=0.5))
    assert error.reason is FetchErrorReason.TIMEOUT
    assert "no whole answer within 0.5s" in str(error)
    assert time.monotonic() - started < 2.0  # the body alone would take 7 s


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_answer_too_large_to_be_an_intensity_is_refused(
    api: GridApiServer, tmp_path: Path, declare_length: bool
) -> None:
    huge = b"[" + b"0," * (MAX_BODY_BYTES // 2) + b"0]"
    api.fail_next(LATEST_PATH, Failure(200, raw=huge, declare_length=declare_length))
    error = fetch_error(electricitymaps(api, tmp_path))
    assert error.reason is FetchErrorReason.MALFORMED
    assert str(MAX_BODY_BYTES) in str(error)


def test_json_nested_too_deep_is_malformed_not_a_crash(api: GridApiServer, tmp_path: Path) -> None:
    api.fail_next(LATEST_PATH, Failure(200, raw=b"[" * 100_000 + b"]" * 100_000))
    assert fetch_error(electricitymaps(api, tmp_path)).reason is FetchErrorReason.MALFORMED


def test_nothing_listening_is_a_connection_error(tmp_path: Path) -> None:
    server = GridApiServer()
    url = server.url
    server.close()
    source = ElectricityMapsSource(
        JsonHttp(url, 2.0), _secret_file(tmp_path, "t", "token-xyz"), "DE", "lifecycle"
    )
    assert fetch_error(source).reason is FetchErrorReason.CONNECTION


def test_an_unreadable_or_empty_token_file_is_a_secret_error(
    api: GridApiServer, tmp_path: Path
) -> None:
    missing = ElectricityMapsSource(JsonHttp(api.url, 2.0), tmp_path / "missing", "DE", "lifecycle")
    error = fetch_error(missing)
    assert error.reason is FetchErrorReason.SECRET and "carbon.electricitymaps.token_file" in str(
        error
    )
    empty = ElectricityMapsSource(
        JsonHttp(api.url, 2.0), _secret_file(tmp_path, "e", ""), "DE", "lifecycle"
    )
    assert "is empty" in str(fetch_error(empty))
    assert api.requests == []  # nothing was sent without a token


def test_redact_removes_every_secret() -> None:
    assert redact("a s3cret b s3cret", ("s3cret", "")) == "a <redacted> b <redacted>"


# -- WattTime ---------------------------------------------------------------------------------


class StepClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watttime(api: GridApiServer, tmp_path: Path, clock: StepClock | None = None) -> WattTimeSource:
    password_file = _secret_file(tmp_path, "wt.password", api.wt_password)
    return WattTimeSource(
        JsonHttp(api.url, 5.0), api.wt_username, password_file, "CAISO_NORTH", clock or StepClock()
    )


def test_watttime_marginal_value_in_grams_per_kwh(api: GridApiServer, tmp_path: Path) -> None:
    api.wt_value_lbs = 1000.0
    reading = watttime(api, tmp_path).fetch()
    assert reading.points[0].g_per_kwh == pytest.approx(1000.0 * LBS_PER_MWH_TO_G_PER_KWH)
    assert reading.points[0].g_per_kwh == pytest.approx(453.59237)
    assert reading.location == "CAISO_NORTH"
    (request,) = api.requests_to(WT_FORECAST)
    assert request.query == {
        "region": "CAISO_NORTH",
        "signal_type": "co2_moer",
        "horizon_hours": "0",
    }
    assert request.headers["authorization"].startswith("Bearer wt-")


def test_watttime_token_is_cached_then_renewed_before_expiry(
    api: GridApiServer, tmp_path: Path
) -> None:
    clock = StepClock()
    source = watttime(api, tmp_path, clock)
    for _ in range(3):
        source.fetch()
        clock.now += 60
    assert api.wt_logins == 1
    clock.now += TOKEN_LIFETIME_S - 4 * 60  # 29 min after login: inside the renewal margin
    source.fetch()
    assert api.wt_logins == 2
    assert all(r.path != WT_FORECAST or r.headers.get("authorization") for r in api.requests)
    assert len(api.requests_to(WT_FORECAST)) == 4  # no request was refused on the way


def test_watttime_token_expired_early_by_the_server_logs_in_again(
    api: GridApiServer, tmp_path: Path
) -> None:
    source = watttime(api, tmp_path)
    source.fetch()
    api.wt_tokens.clear()  # the server forgets every token it issued, 30 minutes or not
    reading = source.fetch()  # 401, then a new login, then the value
    assert reading.points[0].g_per_kwh > 0
    assert api.wt_logins == 2
    paths = [r.path for r in api.requests]
    assert paths == [LOGIN_PATH, WT_FORECAST, WT_FORECAST, LOGIN_PATH, WT_FORECAST]


def test_watttime_wrong_password_is_auth_without_the_password(
    api: GridApiServer, tmp_path: Path
) -> None:
    source = WattTimeSource(
        JsonHttp(api.url, 5.0),
        api.wt_username,
        _secret_file(tmp_path, "pw", "wrong-password-42"),
        "CAISO_NORTH",
    )
    error = fetch_error(source)
    assert error.reason is FetchErrorReason.AUTH
    assert "invalid username or password" in str(error)
    assert "wrong-password-42" not in str(error) and api.wt_password not in str(error)
    assert [r.path for r in api.requests] == [LOGIN_PATH]  # no forecast call without a token


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"wt_value_lbs": None}, FetchErrorReason.NO_DATA),
        ({"wt_empty": True}, FetchErrorReason.NO_DATA),
        ({"wt_units": "percentile"}, FetchErrorReason.MALFORMED),
    ],
)
def test_watttime_bad_data(
    api: GridApiServer, tmp_path: Path, change: dict[str, object], reason: FetchErrorReason
) -> None:
    for key, value in change.items():
        setattr(api, key, value)
    assert fetch_error(watttime(api, tmp_path)).reason is reason


def test_watttime_login_without_token_is_malformed(api: GridApiServer, tmp_path: Path) -> None:
    api.fail_next(LOGIN_PATH, Failure(200, {"detail": "ok"}))
    assert fetch_error(watttime(api, tmp_path)).reason is FetchErrorReason.MALFORMED


# -- UK Carbon Intensity ---------------------------------------------------------------------


def uk(
    api: GridApiServer, postcode: str = "", region_id: int | None = None
) -> UkCarbonIntensitySource:
    return UkCarbonIntensitySource(JsonHttp(api.url, 5.0), postcode, region_id)


def test_uk_national_prefers_actual_then_forecast(api: GridApiServer) -> None:
    api.uk_actual, api.uk_forecast = 180.0, 190.0
    reading = uk(api).fetch()
    assert reading.points[0].g_per_kwh == 180.0 and reading.location == "GB"
    age_s = time.time() - reading.points[0].starts_at_unix_s
    assert 0 <= age_s < 1800  # the "from" of the current half-hour period
    api.uk_actual = None  # not measured yet
    assert uk(api).fetch().points[0].g_per_kwh == 190.0
    api.uk_forecast = None
    assert fetch_error(uk(api)).reason is FetchErrorReason.NO_DATA


def test_uk_regional_by_postcode_and_region_id(api: GridApiServer) -> None:
    api.uk_regional_forecast = 141.0
    by_postcode = uk(api, postcode="RG10").fetch()
    assert by_postcode.points[0].g_per_kwh == 141.0
    assert by_postcode.location == "GB/South England"
    assert api.requests[-1].path == "/regional/postcode/RG10"
    uk(api, region_id=12).fetch()
    assert api.requests[-1].path == "/regional/regionid/12"


def test_uk_error_body_message_is_reported(api: GridApiServer) -> None:
    error = fetch_error(uk(api, postcode="10X"))
    assert error.reason is FetchErrorReason.CLIENT
    assert "HTTP 400" in str(error) and "Please enter a valid postcode" in str(error)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"data": []}, FetchErrorReason.NO_DATA),
        ({"data": {"from": "x"}}, FetchErrorReason.MALFORMED),
        ({"data": [{"from": "2026-11-24T10:00Z", "intensity": None}]}, FetchErrorReason.MALFORMED),
    ],
)
def test_uk_bad_national_answers(
    api: GridApiServer, body: object, reason: FetchErrorReason
) -> None:
    api.fail_next("/intensity", Failure(200, body))
    assert fetch_error(uk(api)).reason is reason


# -- choosing the provider -----------------------------------------------------------------


def _carbon(**keys: object) -> CarbonSection:
    return CarbonSection.model_validate(keys)


def test_registry_builds_the_configured_source_with_its_static_fallback(tmp_path: Path) -> None:
    guessed = ResolvedLocation("FR", "timezone", "time zone Europe/Paris")
    token = _secret_file(tmp_path, "t", "tok")
    em = build_intensity_provider(
        _carbon(provider="electricitymaps", electricitymaps={"token_file": token, "zone": "DE"}),
        guessed,
    )
    assert isinstance(em, IntensityFeed) and isinstance(em.source, ElectricityMapsSource)
    fallback = em.current(0.0).average
    assert (fallback.provider, fallback.location, fallback.resolved_by) == (
        "static",
        "DE",
        "provider",
    )
    uk_feed = build_intensity_provider(_carbon(provider="uk", uk={"region_id": 3}), guessed)
    assert isinstance(uk_feed, IntensityFeed)
    assert uk_feed.current(0.0).average.location == "GB"
    configured = build_intensity_provider(
        _carbon(provider="uk", location="FR"), ResolvedLocation("FR", "config", "")
    )
    assert configured.current(0.0).average.location == "FR"  # carbon.location wins
    static = build_intensity_provider(_carbon(), guessed)
    assert static.name == "static" and not isinstance(static, IntensityFeed)


def test_a_static_agent_never_loads_requests() -> None:
    code = (
        "import sys\n"
        "from carbonscope.daemon.wiring import build_agent\n"
        "from carbonscope.exporters.prometheus import render\n"
        "from carbonscope.carbon.providers.registry import build_intensity_provider\n"
        "from carbonscope.config.schema import CarbonSection\n"
        "from carbonscope.carbon.location import ResolvedLocation\n"
        "build_intensity_provider(CarbonSection(), ResolvedLocation('FR', 'config', ''))\n"
        "assert 'requests' not in sys.modules, 'requests was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
