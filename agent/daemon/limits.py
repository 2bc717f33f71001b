"""Bounds for the daemon's socket servers (/metrics and the job API): connections, time per
request, and the listen backlog. Applied by ServerService to any socketserver, so neither
server carries its own copy.

- At most ``max_connections`` at once. At the cap, the connection idle longest (no complete
  request, nothing waiting to be read) is cut to admit the new one, so a thousand idle sockets
  cannot lock out a fresh scrape; when every connection is being served, the new one waits
  up to half a second for a slot (the others wait in the listen backlog), then is refused.
- A deadline per request, from accept to the last byte of the answer (not per read: a client
  trickling a byte every few seconds is cut at the deadline like a silent one).
- Both servers close the connection after each answer, so no keep-alive connection idles.
- A listen backlog of ``backlog`` (128) absorbs bursts of simultaneous job starts.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

REAP_LATE_S = 0.2  # how late past its deadline a connection may be cut (batched cuts)
ADMIT_WAIT_S = 0.5  # the longest a new connection waits for a busy slot before it is refused
FRESH_S = 0.05  # a connection younger than this is never cut: its request may be in flight
REFUSAL_LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 64
    request_timeout_s: float = 10.0
    backlog: int = 128


@dataclass
class _Connection:
    accepted_at: float
    busy: bool = False  # a complete request is being answered
    closed: bool = field(default=False)


class ConnectionGate:
    def __init__(
        self, name: str, limits: ConnectionLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)
        self._open: dict[Any, _Connection] = {}
        self._refused = 0
        self._refusal_logged_at = -REFUSAL_LOG_EVERY_S
        self._stop = threading.Event()
        self._opened = threading.Condition(self._lock)  # a connection came, or stop
        self._reaper = threading.Thread(target=self._reap, name=f"{name}-reaper", daemon=True)

    # -- wiring into a socketserver ----------------------------------------------------------

    def install(self, server: socketserver.BaseServer) -> None:
        gate = self
        if isinstance(server, socketserver.TCPServer | socketserver.UnixStreamServer):
            server.socket.listen(self.limits.backlog)  # listen() again updates the backlog
        process_request = server.process_request
        shutdown_request = server.shutdown_request

        def admitted(request: Any, client_address: Any) -> None:
            if not gate.admit(request):
                shutdown_request(request)
                return
            process_request(request, client_address)

        def released(request: Any) -> None:
            gate.release(request)
            shutdown_request(request)

        def quiet_error(_request: Any, _client_address: Any) -> None:
            log.debug("%s: a connection failed", gate.name, exc_info=True)

        handler: Any = server.RequestHandlerClass
        parse_request = getattr(handler, "parse_request", None)
        if parse_request is not None:  # HTTP: busy once the request line and headers are in

            def parse_and_mark(self: Any) -> bool:
                complete = bool(parse_request(self))
                if complete:
                    gate.mark_busy(self.request)
                return complete

            server.RequestHandlerClass = type(
                handler.__name__, (handler,), {"parse_request": parse_and_mark}
            )
        setattr(server, "process_request", admitted)  # noqa: B010 - instance hooks on purpose
        setattr(server, "shutdown_request", released)  # noqa: B010
        setattr(server, "handle_error", quiet_error)  # noqa: B010
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        with self._opened:
            self._opened.notify()
        if self._reaper.is_alive():
            self._reaper.join(2.0)

    # -- bookkeeping -----------------------------------------------------------------------------

    def admit(self, request: Any) -> bool:
        """Called on the accept thread. At the cap, the connection idle longest (accepted,
        nothing complete and nothing waiting to be read) is cut to admit this one; when every
        connection is being served it waits up to ADMIT_WAIT_S for one to end (later clients
        wait in the listen backlog), then refuses."""
        waited_until = self._clock() + ADMIT_WAIT_S
        victim: Any = None
        with self._released:
            while True:
                live = [(c.accepted_at, r) for r, c in self._open.items() if not c.closed]
                if len(live) < self.limits.max_connections:
                    break
                now = self._clock()
                by_age = sorted(live, key=lambda item: item[0])
                victim = next(
                    (r for at, r in by_age if now - at >= FRESH_S and self._idle(r)), None
                )
                if victim is not None:
                    self._open[victim].closed = True
                    break
                if now >= waited_until:
                    self._refused += 1
                    self._log_refusal(now)
                    return False
                # A connection accepted moments ago may not have sent its request yet: look
                # again once the oldest is no longer fresh, or when one ends.
                next_look = min(waited_until, by_age[0][0] + FRESH_S)
                self._released.wait(max(0.001, next_look - now))
            if not live:  # the reaper sleeps without a deadline only while none is open;
                self._opened.notify()  # later ones have later deadlines than the oldest
            self._open[request] = _Connection(self._clock())
        if victim is not None:
            _cut(victim)
        return True

    def _idle(self, request: Any) -> bool:
        """Not being answered, and no request bytes waiting: a fresh client's request is
        usually in the buffer by the time it is accepted, an idle or trickling one's is not."""
        if self._open[request].busy:
            return False
        try:
            poller = select.poll()  # never recv here: a socket with a timeout would wait
            poller.register(request, select.POLLIN)
            if not poller.poll(0):
                return True
            pending = request.recv(1, socket.MSG_PEEK)  # readable: answers at once
        except ValueError:  # a TLS socket cannot peek: readable means a record is waiting
            return False
        except OSError:
            return True  # broken: as good as idle
        return not pending  # b"": the peer closed it

    def mark_busy(self, request: Any) -> None:
        with self._lock:
            connection = self._open.get(request)
            if connection is not None:
                connection.busy = True

    def release(self, request: Any) -> None:
        with self._released:
            self._open.pop(request, None)
            self._released.notify()

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._open.values() if not c.closed)

    def _log_refusal(self, now: float) -> None:
        if now - self._refusal_logged_at >= REFUSAL_LOG_EVERY_S:
            log.warning(
                "%s: %d connection(s) refused: all %d are being served",
                self.name,
                self._refused,
                self.limits.max_connections,
            )
            self._refused, self._refusal_logged_at = 0, now

    def _reap(self) -> None:
        """Cut every connection past its deadline: its blocked read or write returns. Sleeps
        until the oldest open connection's deadline, or until one opens: an idle server
        costs no wake-ups."""
        while not self._stop.is_set():
            with self._opened:
                now = self._clock()
                deadline = now - self.limits.request_timeout_s
                live = [(c.accepted_at, r) for r, c in self._open.items() if not c.closed]
                late = [r for at, r in live if at < deadline]
                for request in late:
                    self._open[request].closed = True
                if not late:
                    oldest = min((at for at, _r in live), default=None)
                    wait_s = (
                        None
                        if oldest is None
                        else oldest + self.limits.request_timeout_s - now + REAP_LATE_S
                    )
                    self._opened.wait(wait_s)
                    continue
            for request in late:
                _cut(request)


def _cut(request: Any) -> None:
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)
