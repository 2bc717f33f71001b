"""HTTP server for /metrics. Serves bytes rendered once per sample; a scrape does no work."""

from __future__ import annotations

import gzip
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from prometheus_client import CONTENT_TYPE_LATEST

from carbonscope.exporters.prometheus.collector import render
from carbonscope.snapshot import Snapshot

log = logging.getLogger(__name__)

INDEX = b"""<html><head><title>carbonscope</title></head><body>
<h1>carbonscope</h1><p><a href="/metrics">Metrics</a></p></body></html>
"""


class _RenderedMetrics:
    """The latest exposition, swapped atomically when a snapshot is published."""

    def __init__(self) -> None:
        self.latest: tuple[bytes, bytes] | None = None  # (plain, gzipped): swapped as one

    def publish(self, snapshot: Snapshot) -> None:
        body = render(snapshot)
        self.latest = (body, gzip.compress(body, compresslevel=6))


class _Handler(BaseHTTPRequestHandler):
    server_version = "carbonscope"
    metrics: ClassVar[_RenderedMetrics]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            latest = self.metrics.latest
            if latest is None:
                self._send(503, b"no sample yet\n", "text/plain; charset=utf-8")
                return
            body, gzipped = latest
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                self._send(200, gzipped, CONTENT_TYPE_LATEST, {"Content-Encoding": "gzip"})
            else:
                self._send(200, body, CONTENT_TYPE_LATEST)
        elif path == "/":
            self._send(200, INDEX, "text/html; charset=utf-8")
        elif path == "/healthz":
            ready = self.metrics.latest is not None
            self._send(200 if ready else 503, b"ok\n" if ready else b"starting\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(
        self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class MetricsServer(ThreadingHTTPServer):
    """/metrics, bound on construction; whoever runs it calls ``serve_forever`` on a thread of
    its own (the daemon's ServerService) and ``publish`` after each sample."""

    daemon_threads = True

    def __init__(self, host: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._metrics = _RenderedMetrics()
        handler = type("MetricsHandler", (_Handler,), {"metrics": self._metrics})
        super().__init__((host, port), handler)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def publish(self, snapshot: Snapshot) -> None:
        self._metrics.publish(snapshot)
