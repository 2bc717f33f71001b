"""The daemon's parts as services: started in order, stopped in reverse, through one interface.

A failure half-way through start-up stops what already started, in reverse, and raises one
``StartupError`` naming the part; ``carbonscope run`` prints it as one line and exits 1.
"""

from __future__ import annotations

import logging
import os
import selectors
import socketserver
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from carbonscope.daemon.limits import ConnectionGate, ConnectionLimits
from carbonscope.errors import CarbonscopeError

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class StartupError(CarbonscopeError):
    pass


@dataclass
class CallbackService:
    """A part whose start and stop are plain calls (a feed's thread, a final ledger flush)."""

    name: str
    on_start: Callable[[], None] = lambda: None
    on_stop: Callable[[], None] = lambda: None

    def start(self) -> None:
        self.on_start()

    def stop(self) -> None:
        self.on_stop()


class ServerService:
    """A socketserver bound at start, bounded (limits.py) and served on its own thread.

    The accept loop blocks on the listening socket and a wake-up pipe together, with no
    timeout: an idle server wakes for nothing (socketserver's ``serve_forever`` polls twice a
    second), and ``stop`` writes to the pipe to end it at once."""

    def __init__(
        self,
        name: str,
        bind: Callable[[], socketserver.BaseServer],
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.name = name
        self._bind = bind
        self._limits = limits or ConnectionLimits()
        self.server: socketserver.BaseServer | None = None
        self.gate: ConnectionGate | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1

    def start(self) -> None:
        self.server = self._bind()
        self.gate = ConnectionGate(self.name, self._limits)
        self.gate.install(self.server)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._serve, args=(self.server,), name=self.name, daemon=True
        )
        self._thread.start()

    def _serve(self, server: socketserver.BaseServer) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)  # type: ignore[arg-type]
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _events in selector.select():
                    if key.fileobj == self._wake_r:
                        return
                    # What serve_forever does per readable event: accept, then hand the
                    # connection to the server's own process_request (gated, threaded).
                    server._handle_request_noblock()  # type: ignore[attr-defined]
                server.service_actions()

    def stop(self) -> None:
        if self.server is None or self._thread is None:
            return
        os.write(self._wake_w, b"x")
        self._thread.join(5.0)
        self.server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self.gate is not None:
            self.gate.stop()


class Services:
    def __init__(self, services: Sequence[Service]) -> None:
        self._services = list(services)
        self._started: list[Service] = []

    def start(self) -> None:
        for service in self._services:
            try:
                service.start()
            except Exception as exc:
                log.debug("starting %s failed", service.name, exc_info=True)
                self.stop()
                detail = exc if isinstance(exc, CarbonscopeError) else _describe(exc)
                raise StartupError(
                    f"{detail} (while starting the {service.name}; stopped what had started)"
                ) from None
            self._started.append(service)

    def stop(self) -> None:
        """Stop what started, newest first; one failing stop never keeps the rest running."""
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"
