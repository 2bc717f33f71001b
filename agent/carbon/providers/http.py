"""JSON over HTTP for the grid APIs: timeouts always, errors mapped to ProviderError.

Error messages carry the status, the URL path and the API's own message, never a header:
tokens and passwords travel in headers only, and are redacted from anything we report.
"""

from __future__ import annotations

import json
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
# The largest answer read: a WattTime forecast, the longest, is ~30 kB. A misconfigured URL
# serving a big file (or a gzip bomb) costs at most this much memory, then an error.
MAX_BODY_BYTES = 4 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024


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


def _api_message(body: bytes) -> str:
    """The API's own error text: {"error": {"message"}} (UK), {"message"}, {"error"}, or text.
    Whole: the caller redacts it before clipping it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", errors="replace").strip()
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping):
            error = error.get("message") or error.get("code")
        for candidate in (data.get("message"), error, data.get("detail")):
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
    return str(data)


def _read_body(response: requests.Response, started: float, timeout_s: float, where: str) -> bytes:
    """The whole body, at most MAX_BODY_BYTES, within ``timeout_s`` of the request's start
    (checked between reads; each read has the connection's own timeout too)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ProviderError(
            FetchErrorReason.MALFORMED,
            f"{where}: answer of {int(declared)} bytes, more than {MAX_BODY_BYTES}",
        )
    chunks: list[bytes] = []
    size = 0
    # read1: whatever one socket read brings, so a body trickling in meets the deadline check
    # (iter_content would block until a whole chunk arrived).
    while chunk := response.raw.read1(_CHUNK_BYTES, decode_content=True):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProviderError(
                FetchErrorReason.MALFORMED, f"{where}: answer longer than {MAX_BODY_BYTES} bytes"
            )
        chunks.append(chunk)
        if time.monotonic() - started > timeout_s:
            raise ProviderError(
                FetchErrorReason.TIMEOUT, f"{where}: no whole answer within {timeout_s:g}s"
            )
    return b"".join(chunks)


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
        started = time.monotonic()
        try:
            with self._session.get(
                url,
                params=params,
                headers=headers,
                auth=auth,
                timeout=self.timeout_s,  # connect, and each read
                allow_redirects=False,  # never replay an auth header to another host
                stream=True,  # read by _read_body: bounded in size and time
            ) as response:
                body = _read_body(response, started, self.timeout_s, where)
        except requests.Timeout:
            raise ProviderError(
                FetchErrorReason.TIMEOUT, f"{where}: no answer within {self.timeout_s:g}s"
            ) from None
        except requests.RequestException as exc:
            reason = clip(redact(str(exc), secrets), _MESSAGE_LIMIT)
            raise ProviderError(FetchErrorReason.CONNECTION, f"{where}: {reason}") from None
        status = response.status_code
        if status >= 300:
            detail = clip(redact(_api_message(body), secrets), _MESSAGE_LIMIT)
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
            return json.loads(body)
        except (ValueError, RecursionError):
            raise ProviderError(
                FetchErrorReason.MALFORMED, f"{where}: HTTP {status} body is not JSON"
            ) from None
