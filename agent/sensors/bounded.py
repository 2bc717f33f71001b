"""Bounded reads: a source whose call may hang (a driver ioctl, a BMC) is called on a worker
thread and waited for at most a deadline, so a wedged device costs a status, never a sample.

``BoundedCall`` owns one daemon worker thread. A call that outlives its deadline is abandoned
(``CallTimedOut``); while it still runs no second call is started, because a driver that hangs
once usually hangs again and every further call would cost another thread. When it returns,
the next call runs as usual. The worker is a daemon thread: a call that never returns does not
keep the agent from exiting.

``DeadlineSensor`` wraps a source read inside every sample (NVML): ``read`` answers within
``timeout`` whatever the driver does. A hung read reports ``error`` for each of the source's
devices with the reason; a counter source loses nothing by it, since its next good read
covers the whole gap. Every call of the wrapped source runs on the same worker thread, one at
a time, so the source needs no locking of its own.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from pydantic import Field

from carbonscope.durations import Duration
from carbonscope.sensors.base import (
    SOURCE_WIDE,
    DeviceStatus,
    Discovery,
    Sensor,
    SensorRead,
    SourceSettings,
    SourceStatus,
)

T = TypeVar("T")

# Discovery may legitimately be slow (nvmlInit on GPUs without persistence mode loads the
# driver state, seconds per GPU); a sample may not.
DISCOVERY_TIMEOUT_S = 60.0


class CallTimedOut(Exception):
    """The call did not return within its deadline, or an earlier one is still running."""


@dataclass
class _Call(Generic[T]):
    function: Callable[[], T]
    what: str
    timeout_s: float
    done: threading.Event = field(default_factory=threading.Event)
    result: list[T] = field(default_factory=list)
    failure: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        try:
            self.result.append(self.function())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            self.failure.append(exc)
        finally:
            self.done.set()


class BoundedCall:
    """Calls run one at a time on one worker thread, each waited for at most a deadline."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.SimpleQueue[_Call[Any]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._running: _Call[Any] | None = None  # the last call handed to the worker
        self._lock = threading.Lock()

    def __call__(self, function: Callable[[], T], what: str, timeout_s: float) -> T:
        """``function()`` on the worker; raises CallTimedOut, or what ``function`` raised."""
        call: _Call[T] = _Call(function, what, timeout_s)
        with self._lock:
            previous = self._running
            if previous is not None and not previous.done.is_set():
                raise CallTimedOut(
                    f"the previous {previous.what} timed out after {previous.timeout_s:g}s "
                    f"and is still running: not starting {what}"
                )
            self._running = call
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._serve, name=f"bounded-{self.name}", daemon=True
                )
                self._worker.start()
        self._calls.put(call)
        if not call.done.wait(timeout_s):
            raise CallTimedOut(f"{what} timed out after {timeout_s:g}s")
        if call.failure:
            raise call.failure[0]
        return call.result[0]

    def _serve(self) -> None:
        while True:
            self._calls.get().run()


class DeadlineSettings(SourceSettings):
    """A source read inside every sample: ``timeout`` bounds how long one read may take."""

    timeout: Annotated[Duration, Field(gt=0)] = 1.0


class DeadlineSensor:
    """A Sensor whose ``discover`` and ``read`` return within their deadlines."""

    def __init__(
        self, inner: Sensor, timeout_s: float, discovery_timeout_s: float = DISCOVERY_TIMEOUT_S
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.timeout_s = timeout_s
        self.discovery_timeout_s = max(discovery_timeout_s, timeout_s)
        self._call = BoundedCall(inner.name)
        self._devices: tuple[str, ...] = ()

    def discover(self) -> Discovery:
        try:
            found = self._call(self.inner.discover, "discovery", self.discovery_timeout_s)
        except CallTimedOut as exc:
            return Discovery(
                statuses=(DeviceStatus(self.name, SOURCE_WIDE, SourceStatus.ERROR, str(exc)),)
            )
        self._devices = tuple(key.device for key in found.devices)
        return found

    def read(self) -> SensorRead:
        try:
            return self._call(self.inner.read, "read", self.timeout_s)
        except CallTimedOut as exc:
            reason = f"{exc}; the device is read again once that call returns"
            return SensorRead(
                statuses=tuple(
                    DeviceStatus(self.name, device, SourceStatus.ERROR, reason)
                    for device in self._devices or (SOURCE_WIDE,)
                )
            )
