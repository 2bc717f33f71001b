"""The sampling schedule, on the monotonic clock: ticks at start + n x interval.

A late tick never shifts the later ones; slots that passed while a tick overran are skipped
(the monitor counts them in ``carbonscope_samples_missed_total``); and a wall-clock step, in
either direction, changes nothing: no wall time is read here. (APScheduler's triggers compute
their next run on the wall clock: a step back of an hour stopped sampling for an hour.)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def next_slot(start_s: float, interval_s: float, now_s: float) -> float:
    """The first slot start + n x interval (n >= 1) strictly after ``now``."""
    ticks = max(1, math.floor((now_s - start_s) / interval_s) + 1)
    return start_s + ticks * interval_s


class SampleLoop:
    def __init__(
        self,
        tick: Callable[[], object],
        interval_s: float,
        after_tick: Callable[[], None] = lambda: None,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tick = tick
        self._interval_s = interval_s
        self._after_tick = after_tick
        self._clock_s = clock_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = self._clock_s()
        due = start + self._interval_s
        while not self._stop.wait(max(0.0, due - self._clock_s())):
            try:
                self._tick()
            except Exception:  # a bug in one sample must not end sampling
                log.exception("sample failed")
            self._after_tick()
            due = next_slot(start, self._interval_s, self._clock_s())

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)


class WatchdogPinger:
    """systemd's watchdog, fed by the sampler's own progress: called after every sample, it
    pings at most every half ``watchdog_s``; a sampler that stops sampling stops the pings."""

    def __init__(
        self,
        notify: Callable[[str], None],
        watchdog_s: float,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notify = notify
        self._every_s = watchdog_s / 2
        self._clock_s = clock_s
        self._last_s = -math.inf

    def __call__(self) -> None:
        now = self._clock_s()
        if now - self._last_s >= self._every_s:
            self._notify("WATCHDOG=1")
            self._last_s = now
