"""Polled sources: a slow or blocking reader (a BMC over IPMI or Redfish, a remote meter) run
on its own thread, with its own period and a hard timeout, answering the sampler from memory.

Each reading keeps the monotonic time it was measured at, so the accounting integrates it over
the interval it really covers (not the sampler's); the same reading seen again adds nothing. A
reading older than ``max_age`` is never repeated: the source reports ``stale`` with the reason
(the last error, if any) and the accounting restarts integration at the next fresh reading.
A read that outlives ``timeout`` is abandoned: it counts as failed, and no second read starts
while it hangs, so a wedged BMC costs one thread, never a sample. A source that enforces the
timeout itself (IPMI kills its command, Redfish times its requests out) is given ``grace_s``
more, so that its own failure, with its reason, comes first; discovery, several requests to
a BMC, is given ``DISCOVERY_READS`` timeouts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated

from pydantic import BeforeValidator

from carbonscope.durations import Duration, parse_duration
from carbonscope.periodic import PeriodicThread
from carbonscope.sensors.base import (
    DeviceStatus,
    Discovery,
    Reading,
    Sensor,
    SensorRead,
    SourceSettings,
    SourceStatus,
)
from carbonscope.sensors.bounded import BoundedCall, CallTimedOut
from carbonscope.units import NS_PER_S

log = logging.getLogger(__name__)

READER_GRACE_S = 1.0  # past the source's own timeout, before the poller abandons its read
DISCOVERY_READS = 4  # discovery may take this many timeouts (a login, then a walk)

OptionalDuration = Annotated[
    float | None, BeforeValidator(lambda v: None if v in ("", None) else parse_duration(v))
]


class PolledSettings(SourceSettings):
    """The section of a polled source: ``interval``, ``timeout``, ``max_age`` (durations)."""

    interval: Duration | None = None  # None: the catalogue's default period
    timeout: Duration | None = None  # None: the interval
    max_age: OptionalDuration = None  # None: three periods


@dataclass(frozen=True)
class _Latest:
    read: SensorRead  # readings stamped with their measurement time
    measured_at_ns: int


class PolledSensor:
    """A Sensor whose ``read`` never blocks: the wrapped reader runs on its own thread."""

    def __init__(
        self,
        inner: Sensor,
        period_s: float,
        timeout_s: float | None = None,
        max_age_s: float | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        grace_s: float = 0.0,
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.period_s = period_s
        self.timeout_s = timeout_s if timeout_s is not None else period_s
        self.max_age_s = max_age_s if max_age_s is not None else 3 * period_s
        self._bound_s = self.timeout_s + grace_s
        self._discovery_bound_s = (
            DISCOVERY_READS * self.timeout_s + grace_s if grace_s else self.timeout_s
        )
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._latest: _Latest | None = None
        self._last_error = ""
        self._devices: tuple[str, ...] = ()
        self._call = BoundedCall(inner.name)
        self._poller = PeriodicThread(f"poll-{self.name}", self._poll_and_wait)

    @classmethod
    def from_settings(
        cls, inner: Sensor, settings: SourceSettings, default_period_s: float
    ) -> PolledSensor:
        if isinstance(settings, PolledSettings):
            return cls(
                inner,
                settings.interval or default_period_s,
                settings.timeout,
                settings.max_age,
                grace_s=READER_GRACE_S,
            )
        return cls(inner, default_period_s)

    # -- the reader's side (its own thread) --------------------------------------------------

    def discover(self) -> Discovery:
        try:
            found = self._call(self.inner.discover, "discovery", self._discovery_bound_s)
        except Exception as exc:  # noqa: BLE001 - a failing source is a status, never a crash
            reason = str(exc) if isinstance(exc, CallTimedOut) else f"{type(exc).__name__}: {exc}"
            return Discovery(statuses=(DeviceStatus(self.name, "all", SourceStatus.ERROR, reason),))
        self._devices = tuple(key.device for key in found.devices)
        return found

    def poll_once(self) -> None:
        """One read of the wrapped source (the poll thread calls this every period)."""
        try:
            result = self._call(self.inner.read, "read", self._bound_s)
        except Exception as exc:  # noqa: BLE001 - a failing read is a status, never a crash
            message = str(exc) if isinstance(exc, CallTimedOut) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                repeated, self._last_error = message == self._last_error, message
            # Once per kind of failure, not once per period: a dead BMC must not flood the log.
            log.log(
                logging.DEBUG if repeated else logging.WARNING,
                "polled source %s: %s",
                self.name,
                message,
            )
            return
        now_ns = self._clock_ns()
        stamped = SensorRead(
            tuple(_stamped(reading, now_ns) for reading in result.readings),
            result.statuses,
            result.gpus,
        )
        failing = [s for s in result.statuses if s.status is not SourceStatus.OK]
        with self._lock:
            self._last_error = "; ".join(f"{s.device}: {s.reason or s.status}" for s in failing)
            if stamped.readings:
                self._latest = _Latest(stamped, now_ns)

    def _poll_and_wait(self) -> float:
        started = time.monotonic()
        self.poll_once()
        return max(0.0, self.period_s - (time.monotonic() - started))

    def start(self) -> None:
        self._poller.start()

    def stop(self) -> None:
        """Stop polling, then let the source release what it holds (a BMC session)."""
        self._poller.stop(self._bound_s + 1.0)
        close = getattr(self.inner, "close", None)
        if callable(close):
            try:
                self._call(close, "close", self._bound_s)
            except Exception as exc:  # noqa: BLE001 - shutting down: log, never raise
                log.info("polled source %s: closing failed: %s", self.name, exc)

    # -- the sampler's side (memory only) ----------------------------------------------------

    def read(self) -> SensorRead:
        now_ns = self._clock_ns()
        with self._lock:
            latest, error = self._latest, self._last_error
        if latest is not None:
            age_s = (now_ns - latest.measured_at_ns) / NS_PER_S
            if age_s <= self.max_age_s:
                return latest.read
            reason = f"last reading {age_s:.1f}s old (max age {self.max_age_s:g}s)"
        else:
            reason = f"no reading yet (polled every {self.period_s:g}s)"
        if error:
            reason += f"; last error: {error}"
        return SensorRead(
            statuses=tuple(
                DeviceStatus(self.name, device, SourceStatus.STALE, reason)
                for device in self._devices
            )
        )


def _stamped(reading: Reading, now_ns: int) -> Reading:
    """The reading with its measurement time (the end of the read, unless it has its own)."""
    return (
        reading if reading.measured_at_ns is not None else replace(reading, measured_at_ns=now_ns)
    )
