"""carbonscope: energy and carbon telemetry for Linux servers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carbonscope.version import __version__

if TYPE_CHECKING:
    from carbonscope.client import track_job

__all__ = ["__version__", "track_job"]


def __getattr__(name: str) -> Any:
    """``track_job`` on first use: the daemon, which never uses it, does not load the client's
    http.client (with ssl and email, ~7 MiB)."""
    if name == "track_job":
        from carbonscope.client import track_job  # noqa: PLC0415 - standard library only

        return track_job
    raise AttributeError(f"module 'carbonscope' has no attribute {name!r}")
