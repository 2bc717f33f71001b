"""HTTP server for /metrics: at most one render per sample, none for the samples nobody scrapes.

A new snapshot is rendered at once (on the exporter's relay thread) only when the previous one
was scraped: a scraper as fast as the samples gets bytes ready before it asks. Otherwise the
first scrape after it renders it (Prometheus every 15 s, a sample every second: two renders in
fifteen samples instead of fifteen). Later scrapes of the same sample get the cached bytes. A
scrape never reads hardware."""

from __future__ import annotations

import gzip
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from carbonscope.exporters.prometheus.collector import render
from carbonscope.exporters.prometheus.text import CONTENT_TYPE
from carbonscope.http_server import HttpHandler
from carbonscope.snapshot import Snapshot

if TYPE_CHECKING:  # ssl, yaml and bcrypt load only with a web config (daemon/exporters.py)
    from carbonscope.exporters.prometheus.web_config import BasicAuth, WebConfig

log = logging.getLogger(__name__)

INDEX = b"""<html><head><title>carbonscope</title></head><body>
<h1>carbonscope</h1><p><a href="/metrics">Metrics</a></p></body></html>
"""


STALE_AFTER_INTERVALS = 3  # /healthz: a last sample older than this many intervals is stale


class SampleHealth:
    """Whether samples keep coming: /healthz (liveness: 503 once the last sample is older than
    three intervals) and /readyz (readiness: 200 from the first sample on). On the monotonic
    clock, so a wall-clock step never makes the agent look dead."""

    def __init__(
        self, interval_s: float, monotonic_s: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._monotonic_s = monotonic_s
        self._last_s: float | None = None

    def sampled(self) -> None:
        self._last_s = self._monotonic_s()

    def liveness(self) -> tuple[int, str]:
        if self._last_s is None:
            return 503, "starting: no sample yet\n"
        age = self._monotonic_s() - self._last_s
        if age > STALE_AFTER_INTERVALS * self._interval_s:
            return 503, (
                f"stale: the last sample is {age:.1f}s old, sampling every {self._interval_s:g}s\n"
            )
        return 200, "ok\n"

    def readiness(self) -> tuple[int, str]:
        return (503, "starting: no sample yet\n") if self._last_s is None else (200, "ready\n")


# gzip level 1: on this project's expositions (12 kB for a two-socket node, 58 kB with 100
# jobs) it is 2-3x faster than 6 (77 vs 122 us, 107 vs 307 us) for 8-10% more bytes.
GZIP_LEVEL = 1


class _RenderedMetrics:
    """The latest snapshot, and its exposition once a scrape asked for it."""

    def __init__(self, render_snapshot: Callable[[Snapshot], bytes] = render) -> None:
        self._render = render_snapshot
        self._snapshot: Snapshot | None = None  # replaced as one reference by publish
        self._lock = threading.Lock()  # held while rendering (CPU only, no I/O)
        self._rendered_for: Snapshot | None = None
        self._plain = b""
        self._gzipped: bytes | None = None
        self._scraped = False  # the rendered snapshot was asked for
        self._gzip_wanted = False  # ... and by a client that takes gzip (Prometheus does)
        self.renders = 0

    def publish(self, snapshot: Snapshot) -> None:
        """Called on the relay thread, never the sampler's."""
        self._snapshot = snapshot
        if self._scraped:  # someone scrapes at the sample rate: have the bytes ready
            with self._lock:
                self._render_latest(snapshot)

    def _render_latest(self, snapshot: Snapshot) -> None:
        if self._rendered_for is not snapshot:
            self._plain, self._gzipped = self._render(snapshot), None
            self._rendered_for, self._scraped = snapshot, False
            self.renders += 1
            if self._gzip_wanted:
                self._gzipped = gzip.compress(self._plain, compresslevel=GZIP_LEVEL)

    def body(self, gzipped: bool) -> bytes | None:
        """The exposition of the latest snapshot (None before the first); rendered and
        compressed at most once per snapshot, whatever the number of concurrent scrapes."""
        snapshot = self._snapshot
        if snapshot is None:
            return None
        with self._lock:
            self._render_latest(snapshot)
            self._scraped, self._gzip_wanted = True, gzipped
            if not gzipped:
                return self._plain
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._plain, compresslevel=GZIP_LEVEL)
            return self._gzipped


OPEN_PATHS = ("/healthz", "/readyz")  # probes need no credentials: they tell only ok or stale
UNAUTHORIZED = {"WWW-Authenticate": 'Basic realm="carbonscope"'}


class _Handler(HttpHandler):
    metrics: ClassVar[_RenderedMetrics]
    health: ClassVar[SampleHealth]
    auth: ClassVar[BasicAuth | None] = None
    tls: ClassVar[bool] = False

    def setup(self) -> None:
        """A TLS connection's handshake runs here, on the connection's own thread, within the
        socket timeout (never on the accept thread): a client that stalls it costs only its
        connection, which the connection gate's deadline cuts."""
        if self.tls:
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        auth = self.auth
        if (
            auth is not None
            and path not in OPEN_PATHS
            and not auth.allows(self.headers.get("Authorization"))
        ):
            self.send(401, b"unauthorized\n", "text/plain; charset=utf-8", UNAUTHORIZED)
            return
        if path == "/metrics":
            gzipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
            body = self.metrics.body(gzipped)
            if body is None:
                self.send(503, b"no sample yet\n", "text/plain; charset=utf-8")
            elif gzipped:
                self.send(200, body, CONTENT_TYPE, {"Content-Encoding": "gzip"})
            else:
                self.send(200, body, CONTENT_TYPE)
        elif path == "/":
            self.send(200, INDEX, "text/html; charset=utf-8")
        elif path in ("/healthz", "/readyz"):
            status, text = self.health.liveness() if path == "/healthz" else self.health.readiness()
            self.send(status, text.encode(), "text/plain; charset=utf-8")
        else:
            self.send(404, b"not found\n", "text/plain")


class MetricsServer(socketserver.ThreadingTCPServer):
    """/metrics, bound on construction; whoever runs it serves it on a thread of its own (the
    daemon's ServerService) and calls ``publish`` after each sample."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True  # as http.server's: a restart rebinds at once

    def __init__(
        self,
        host: str,
        port: int,
        interval_s: float = 1.0,
        monotonic_s: Callable[[], float] = time.monotonic,
        web: WebConfig | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._metrics = _RenderedMetrics()
        self.health = SampleHealth(interval_s, monotonic_s)
        self._tls = web.tls if web is not None else None
        handler = type(
            "MetricsHandler",
            (_Handler,),
            {
                "metrics": self._metrics,
                "health": self.health,
                "auth": web.auth if web is not None else None,
                "tls": self._tls is not None,
            },
        )
        super().__init__((host, port), handler)

    def get_request(self) -> tuple[Any, Any]:
        """With TLS, the accepted socket is wrapped without a handshake (the handler does it)."""
        connection, address = super().get_request()
        if self._tls is not None:
            connection = self._tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    @property
    def scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def publish(self, snapshot: Snapshot) -> None:
        self.health.sampled()
        self._metrics.publish(snapshot)

    @property
    def renders(self) -> int:
        """How many times /metrics was rendered (once per scraped sample at most)."""
        return self._metrics.renders
