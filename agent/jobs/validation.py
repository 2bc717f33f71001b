"""What a job registration may contain. Anything else is a 400 with a precise message.

Names and tag values end up as Prometheus label values and tag keys as label names
(``tag_<key>``), so they are restricted: no quotes, backslashes or control characters,
bounded length and count, so that no caller can inject labels or explode cardinality.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import Any

from carbonscope.labels import TAG_KEY

MAX_NAME_CHARS = 128
MAX_TAGS = 32
MAX_TAG_VALUE_CHARS = 256
MAX_PIDS = 64
JOB_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
_FORBIDDEN = set('"\\{}')


class JobRequestError(ValueError):
    """A request the daemon refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class JobRequest:
    name: str
    tags: tuple[tuple[str, str], ...]
    pids: tuple[int, ...]


def _safe_text(value: str, what: str, limit: int, allow_empty: bool) -> str:
    if not value and not allow_empty:
        raise JobRequestError(f"{what} must not be empty")
    if len(value) > limit:
        raise JobRequestError(f"{what} is {len(value)} characters long (at most {limit})")
    if not value.isprintable() or _FORBIDDEN & set(value):
        raise JobRequestError(
            f"{what} may not contain control characters, quotes, backslashes or braces: {value!r}"
        )
    if value != value.strip():
        raise JobRequestError(f"{what} may not start or end with whitespace: {value!r}")
    return value


def validate_name(name: object) -> str:
    if not isinstance(name, str):
        raise JobRequestError("name must be a string")
    return _safe_text(name, "name", MAX_NAME_CHARS, allow_empty=False)


def validate_tags(tags: object) -> tuple[tuple[str, str], ...]:
    if tags is None:
        return ()
    if not isinstance(tags, dict):
        raise JobRequestError('tags must be an object of strings, e.g. {"team": "nlp"}')
    if len(tags) > MAX_TAGS:
        raise JobRequestError(f"too many tags: {len(tags)} (at most {MAX_TAGS})")
    checked = []
    for key, value in tags.items():
        if not isinstance(key, str) or not TAG_KEY.fullmatch(key):
            raise JobRequestError(
                f"tag key {key!r} must match [a-z][a-z0-9_]* and be at most 63 characters"
            )
        if not isinstance(value, str):
            raise JobRequestError(f"tag {key!r}: value must be a string")
        checked.append((key, _safe_text(value, f"tag {key!r}", MAX_TAG_VALUE_CHARS, True)))
    return tuple(sorted(checked))


def validate_pids(pids: object) -> tuple[int, ...]:
    if not isinstance(pids, list) or not pids:
        raise JobRequestError("pids must be a non-empty list of process ids")
    if len(pids) > MAX_PIDS:
        raise JobRequestError(f"too many pids: {len(pids)} (at most {MAX_PIDS})")
    for pid in pids:
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**22 + 1:
            raise JobRequestError(f"pid {pid!r} is not a process id")
    return tuple(dict.fromkeys(pids))


def parse_job_request(body: Any) -> JobRequest:
    if not isinstance(body, dict):
        raise JobRequestError('the body must be a JSON object: {"name": ..., "pids": [...]}')
    unknown = sorted(set(body) - {"name", "tags", "pids"})
    if unknown:
        raise JobRequestError(f"unknown field(s): {', '.join(map(str, unknown))}")
    if "name" not in body:
        raise JobRequestError("name is required")
    # Without pids the job is the caller's own process, as the kernel names it (SO_PEERCRED):
    # right even when the caller sits in another PID namespace (a container).
    pids = validate_pids(body["pids"]) if "pids" in body else ()
    return JobRequest(validate_name(body["name"]), validate_tags(body.get("tags")), pids)


def validate_job_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise JobRequestError(f"no such job: {job_id[:100]!r}", status=404)
    return job_id


def parse_stop_request(body: Any) -> str | None:
    """The optional body of a stop: how the job's command ended, ``{"exit_code": 0..255}`` or
    ``{"signal": 1..64}``; returns the outcome to record ("exit 3", "signal SIGINT")."""
    if body is None or body == {}:
        return None
    if not isinstance(body, dict):
        raise JobRequestError('the body must be a JSON object: {"exit_code": N} or {"signal": N}')
    unknown = sorted(set(body) - {"exit_code", "signal"})
    if unknown:
        raise JobRequestError(f"unknown field(s): {', '.join(map(str, unknown))}")
    if len(body) != 1:
        raise JobRequestError("give exit_code or signal, not both")
    ((key, value),) = body.items()
    low, high = (0, 255) if key == "exit_code" else (1, 64)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise JobRequestError(f"{key} must be an integer from {low} to {high}")
    if key == "exit_code":
        return f"exit {value}"
    try:
        return f"signal {signal.Signals(value).name}"
    except ValueError:
        return f"signal {value}"
