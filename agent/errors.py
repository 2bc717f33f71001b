"""The project's own exceptions: user errors carry a message fit to print as is."""

from __future__ import annotations


class CarbonscopeError(Exception):
    """Base class of every error carbonscope raises on purpose."""


class ConfigError(CarbonscopeError):
    """Invalid configuration. ``problems`` holds one line per problem (origin: key: reason)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class LocationError(CarbonscopeError, ValueError):
    """A grid location code that carbonscope has no data for."""
