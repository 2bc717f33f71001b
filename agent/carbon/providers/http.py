"""JSON over HTTP for the grid APIs: timeouts always, errors mapped to ProviderError.

Error messages carry the status, the URL path and the API's own message, never a header:
tokens and passwords travel in headers only, and are redacted from anything we report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from carbonscope.carbon.providers.base import FetchErrorReason, ProviderError
from carbonscope.carbon.providers.secrets import basic_auth_forms, clip, redact, remember
from carbonscope.version import __version__

MAX_RETRY_AFTER_S = 24 * 3600.0  # a Retry-After beyond a day is a broken header, not a plan
_MESSAGE_LIMIT = 200


def read_secret(path: Path, key: str) -> str:
    """The secret in ``path`` (surrounding whitespace stripped), read fresh on every call,
    so a rotated token is picked up without a restart."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ProviderError(
            FetchErrorReason.SECRET, f"cannot read {key} {path}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise ProviderError(FetchErrorReason.SECRET, f"{key} {path} is not UTF-8 text") from None
    if not secret:
        raise ProviderError(FetchErrorReason.SECRET, f"{key} {path} is empty")
    return secret


def parse_retry_after(value: str | None, now_unix_s: float) -> float | None:
    """Retry-After as delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_unix_s
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _api_message(response: requests.Response) -> str:
    """The API's own error text: {"error": {"message"}} (UK), {"message"}, {"error"}, or text.
    Whole: the caller redacts it before clipping it."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            error = error.get("message") or error.get("code")
        for candidate in (body.get("message"), error, body.get("detail")):
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
    return str(body)


class JsonHttp:
    """GET JSON from one API base URL (configurable, so tests and proxies work)."""

    def __init__(
        self, base_url: str, timeout_s: float, session: requests.Session | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"carbonscope/{__version__}"

    def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> Any:
        if auth is not None:
            secrets = (*secrets, *basic_auth_forms(*auth))
        remember(secrets)
        url = self.base_url + path
        parts = urlsplit(url)
        where = f"{parts.netloc}{parts.path}"
        try:
            response = self._session.get(
                url,
                params=params,
                headers=headers,
                auth=auth,
                timeout=self.timeout_s,  # connect, and each read
                allow_redirects=False,  # never replay an auth header to another host
            )
        except requests.Timeout:
            raise ProviderError(
                FetchErrorReason.TIMEOUT, f"{where}: no answer within {self.timeout_s:g}s"
            ) from None
        except requests.RequestException as exc:
            reason = clip(redact(str(exc), secrets), _MESSAGE_LIMIT)
            raise ProviderError(FetchErrorReason.CONNECTION, f"{where}: {reason}") from None
        status = response.status_code
        if status >= 300:
            detail = clip(redact(_api_message(response), secrets), _MESSAGE_LIMIT)
            message = f"{where}: HTTP {status}: {detail}"
            if status == 429:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                raise ProviderError(FetchErrorReason.RATE_LIMITED, message, retry_after)
            if status in (401, 403):
                raise ProviderError(FetchErrorReason.AUTH, message)
            if status >= 500:
                raise ProviderError(FetchErrorReason.SERVER, message)
            raise ProviderError(FetchErrorReason.CLIENT, message)
        try:
            return response.json()
        except ValueError:
            raise ProviderError(
                FetchErrorReason.MALFORMED, f"{where}: HTTP {status} body is not JSON"
            ) from None
