"""Secrets never reach a log line, the feed's status or probe: redacted before truncation,
with the forms derived from them (HTTP Basic's base64), wherever the message was made."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbonscope.carbon.feed import FeedSettings, IntensityFeed
from carbonscope.carbon.intensity import StaticIntensityProvider
from carbonscope.carbon.location import ResolvedLocation
from carbonscope.carbon.providers.base import ProviderError
from carbonscope.carbon.providers.electricitymaps import LATEST_PATH, ElectricityMapsSource
from carbonscope.carbon.providers.http import JsonHttp
from carbonscope.carbon.providers.secrets import clip, redact, remember
from carbonscope.carbon.providers.watttime import LOGIN_PATH, WattTimeSource
from tests.fakes.grid_apis import Failure, GridApiServer, iso

pytestmark = pytest.mark.faults


@pytest.fixture
def api() -> Iterator[GridApiServer]:
    server = GridApiServer()
    yield server
    server.close()


def secret_file(tmp_path: Path, name: str, secret: str) -> Path:
    path = tmp_path / name
    path.write_text(secret + "\n")
    return path


def electricitymaps(api: GridApiServer, tmp_path: Path) -> ElectricityMapsSource:
    token = secret_file(tmp_path, "em.token", api.em_token)
    return ElectricityMapsSource(JsonHttp(api.url, 5.0), token, "DE", "lifecycle")


def test_a_parse_error_quoting_an_echoed_token_is_redacted_in_the_log_and_status(
    api: GridApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = electricitymaps(api, tmp_path)
    echoed = {"zone": "DE", "carbonIntensity": f"see {api.em_token}", "datetime": iso(time.time())}
    api.fail_next(LATEST_PATH, Failure(200, echoed))
    with pytest.raises(ProviderError) as raw:
        source.fetch()
    assert api.em_token in str(raw.value)  # the provider quotes the value it could not read

    api.fail_next(LATEST_PATH, Failure(200, echoed))
    static = StaticIntensityProvider(ResolvedLocation("DE", "config", ""))
    feed = IntensityFeed(source, static, FeedSettings(60, 600))
    with caplog.at_level(logging.DEBUG):
        feed.refresh_once()
    status = feed.current(time.time()).feed
    assert status is not None and "<redacted>" in status.last_error
    assert api.em_token not in status.last_error
    assert api.em_token not in caplog.text and "<redacted>" in caplog.text


def test_redaction_comes_before_truncation(api: GridApiServer, tmp_path: Path) -> None:
    message = "x" * 185 + f" token {api.em_token} rejected"  # the token straddles the limit
    api.fail_next(LATEST_PATH, Failure(400, {"message": message}))
    with pytest.raises(ProviderError) as caught:
        electricitymaps(api, tmp_path).fetch()
    text = str(caught.value)
    assert "HTTP 400" in text
    for start in range(len(api.em_token) - 5):  # not even six characters of it
        assert api.em_token[start : start + 6] not in text, text


def test_basic_auth_on_the_wire_is_redacted(api: GridApiServer, tmp_path: Path) -> None:
    wire = base64.b64encode(f"{api.wt_username}:{api.wt_password}".encode()).decode()
    api.fail_next(LOGIN_PATH, Failure(401, {"error": f"rejected Authorization: Basic {wire}"}))
    source = WattTimeSource(
        JsonHttp(api.url, 5.0),
        api.wt_username,
        secret_file(tmp_path, "wt.password", api.wt_password),
        "CAISO_NORTH",
    )
    with pytest.raises(ProviderError) as caught:
        source.fetch()
    assert "HTTP 401" in str(caught.value)
    assert wire not in str(caught.value) and api.wt_password not in str(caught.value)
    assert "Basic <redacted>" in str(caught.value)


def test_redact_takes_the_longest_secret_first_and_clip_marks_a_cut() -> None:
    remember(["abcd1234", "abcd1234-extended"])
    assert redact("x abcd1234-extended y abcd1234") == "x <redacted> y <redacted>"
    assert redact("short abc", ("abc",)) == "short <redacted>"
    assert clip("0123456789", 5) == "0123…" and clip("0123", 5) == "0123"
