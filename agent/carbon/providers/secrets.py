"""Secrets the grid providers send, and their redaction from anything reported.

Every secret a request carries is remembered here (the token or password, and the forms
derived from it on the wire: a bearer token, the base64 of HTTP Basic's ``user:password``), so
a message from any layer (an HTTP error, a provider's parse error quoting an answer that
echoes the request, the feed's log line and ``probe``) can be redacted before it is logged,
shown or truncated. Standard library only: the static agent imports this, never requests.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Iterable

REDACTED = "<redacted>"
MAX_REMEMBERED = 32  # the current and recent tokens of the configured provider, bounded
MIN_SECRET_CHARS = 4  # shorter strings are not treated as secrets: they would shred messages

_lock = threading.Lock()
_remembered: OrderedDict[str, None] = OrderedDict()


def basic_auth_forms(username: str, password: str) -> tuple[str, ...]:
    """What HTTP Basic puts on the wire for these credentials, and the password itself."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return password, encoded


def remember(secrets: Iterable[str]) -> None:
    with _lock:
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                _remembered[secret] = None
                _remembered.move_to_end(secret)
        while len(_remembered) > MAX_REMEMBERED:
            _remembered.popitem(last=False)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with these and every remembered secret replaced, longest first (so a token
    that contains another is removed whole)."""
    with _lock:
        known = set(_remembered)
    known.update(secret for secret in secrets if secret)
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def clip(text: str, limit: int) -> str:
    """Truncate a message that was already redacted (never the other way round)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
