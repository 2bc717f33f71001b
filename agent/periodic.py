"""A step run on its own daemon thread until stopped, waiting on the monotonic clock between
runs: the intensity feed's fetches, a polled source's reads and the ledger flusher share it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicThread:
    def __init__(
        self,
        name: str,
        step: Callable[[], float],
        first_delay_s: float = 0.0,
        retry_s: float = 1.0,
    ) -> None:
        """``step`` returns the seconds to wait before its next run; an exception it raises is
        logged and retried after ``retry_s`` (a bug must not end the thread)."""
        self.name = name
        self._step = step
        self._first_delay_s = first_delay_s
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = self._first_delay_s
        while not self._stop.wait(delay):
            try:
                delay = self._step()
            except Exception:
                log.exception("%s failed unexpectedly; retrying in %gs", self.name, self._retry_s)
                delay = self._retry_s

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
