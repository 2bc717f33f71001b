"""The whole process table, read a few processes per sample, all of it every period or so.

Each sample walks the tagged jobs' trees through the kernel's children lists, and proc(5) says
those lists are reliable only while the children are stopped: a child forked or reaped during
the read may be missed. A missed child of a member is found again by reading the table, where
its ppid names the member. Reading the whole table at once costs ~10-20 µs a process, and
listing /proc 1-2 µs (100 ms and 10 ms at 5,000 processes): one sample far above the rest,
and the sample p99 with it. So the listing itself is paced: one directory stream over /proc
is consumed a few entries per sample (procfs keeps its place by PID, so a stream stays valid
while processes come and go) and each entry's stat read. A pass takes the period, or longer
where that would cost more than ``budget`` processes a sample: the sample's cost stays flat
however many processes the machine runs.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

from carbonscope.procfs import ProcStat, read_pid_stats


class PacedRescan:
    def __init__(
        self,
        procfs: Path,
        period_s: float,
        budget: int,
        monotonic_s: Callable[[], float],
    ) -> None:
        self._procfs = procfs
        self._period_s = period_s
        self._budget = budget
        self._monotonic_s = monotonic_s
        self._pids: Iterator[int] | None = None  # the pass under way
        self._passed = 0  # processes listed so far in this pass
        self._machine: int | None = None  # processes in the latest whole pass
        self._last_s: float | None = None
        self._open: list[Callable[[], None]] = []  # closes the pass's stream, and with us
        weakref.finalize(self, _close, self._open)

    @property
    def machine_processes(self) -> int | None:
        """How many processes the machine runs, as the latest whole pass saw them; None
        before the first pass is over (a listing at once would be the spike this avoids)."""
        if self._machine is None:
            return None
        return max(self._machine, self._passed)

    def next_slice(self) -> dict[int, ProcStat]:
        """The stats of the processes due since the previous call."""
        now = self._monotonic_s()
        elapsed = 0.0 if self._last_s is None else max(0.0, now - self._last_s)
        self._last_s = now
        # Until a pass is over, the machine's size is unknown: the budget is the pace.
        machine = self._budget * self._period_s if self._machine is None else self._machine
        due = min(self._budget, math.ceil(machine * elapsed / self._period_s))
        pids: list[int] = []
        while len(pids) < due:
            if self._pids is None:
                self._pids, self._passed = self._stream(), 0
            pid = next(self._pids, None)
            if pid is None:  # the pass is over: the next call starts another
                self._machine, self._pids = self._passed, None
                if not self._passed:
                    break  # no processes to list
                continue
            self._passed += 1
            pids.append(pid)
        return read_pid_stats(self._procfs, pids)

    def read_whole(self, table: dict[int, ProcStat]) -> None:
        """The whole table was read at once: that is this period's rescan."""
        self._machine, self._passed, self._pids = len(table), 0, None
        _close(self._open)
        self._last_s = self._monotonic_s()

    def _stream(self) -> Iterator[int]:
        _close(self._open)
        try:
            entries = os.scandir(os.fspath(self._procfs))
        except FileNotFoundError:
            return iter(())
        self._open.append(entries.close)
        return (int(entry.name) for entry in entries if entry.name.isdigit())


def _close(streams: list[Callable[[], None]]) -> None:
    while streams:
        streams.pop()()
