"""Hands snapshots to a slow listener (an exporter rendering /metrics) on its own thread.

The sampler only swaps a reference and signals, so a listener never delays a sample. Only the
newest snapshot waits: a listener that falls behind skips straight to it (bounded to one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from carbonscope.snapshot import Snapshot

log = logging.getLogger(__name__)


class SnapshotRelay:
    def __init__(self, name: str, listener: Callable[[Snapshot], None]) -> None:
        self.name = name
        self._listener = listener
        self._ready = threading.Condition()
        self._pending: Snapshot | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def __call__(self, snapshot: Snapshot) -> None:
        """Called by the sampler: never blocks on the listener."""
        with self._ready:
            self._pending = snapshot
            self._ready.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._ready:
                while self._pending is None and not self._stopping:
                    self._ready.wait()
                snapshot, self._pending = self._pending, None
                if self._stopping or snapshot is None:
                    return
            try:
                self._listener(snapshot)
            except Exception:  # a broken exporter must not stop the relay
                log.exception("%s: listener failed", self.name)

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(5.0)
