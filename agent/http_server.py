"""The HTTP of the daemon's two servers (/metrics and the job API): one request per connection,
parsed strictly, answered in one write, on top of socketserver.

Why not ``http.server``: it costs the daemon ~8 MiB of its ~40 (through ``http.client`` it
loads ``ssl`` with libssl and libcrypto, ``email`` for header parsing, and through ``shutil``
lzma and bz2), and parses each request's headers with ``email.parser``. Both servers need
only this: a request line, at most ``MAX_HEADERS`` header lines of at most ``MAX_LINE`` bytes,
a body of a declared length, and one answer, after which the connection closes. The bounds
on connections and time per request are the daemon's (daemon/limits.py); a socket timeout
per read is the handler's ``timeout``.

Request errors are answered as http.server answered them: 400 for a malformed request line
or header, 414 for a request line too long, 431 for headers too many or too long, 501 for a
method the handler has no ``do_METHOD`` for, 505 for an HTTP version other than 1.0 or 1.1.
"""

from __future__ import annotations

import logging
import socketserver
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

MAX_LINE = 8192  # bytes of the request line or of one header line
MAX_HEADERS = 100
SERVER = "carbonscope"

REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Headers(Mapping[str, str]):
    """A request's headers, by name in any case (the last of repeated ones)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._fields.get(name.lower(), default)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def http_date(unix_s: float | None = None) -> str:
    """RFC 9110's IMF-fixdate, independent of the locale."""
    t = time.gmtime(unix_s)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class HttpHandler(socketserver.StreamRequestHandler):
    """One request, then the connection closes. Subclasses define ``do_GET`` and the like,
    read ``self.method``, ``self.path`` (the request target) and ``self.headers``, read a body
    from ``self.rfile`` and answer once with ``send``."""

    timeout = 10.0  # seconds per read or write on the socket

    method = ""
    path = ""
    version = ""
    headers: Headers = Headers({})
    answered = False

    def handle(self) -> None:
        if not self.parse_request():
            return
        action = getattr(self, f"do_{self.method}", None)
        if action is None:
            self.send_error(501, f"method {self.method} is not supported")
            return
        action()

    def send_error(self, status: int, message: str) -> None:
        """An answer to a request that could not be served (a subclass may answer JSON)."""
        self.send(status, f"{message}\n".encode(), "text/plain; charset=utf-8")

    def parse_request(self) -> bool:
        """The request line and headers; False (answered when the client is still there)
        when there is no request to serve. The daemon's connection gate counts a connection
        as busy from here on."""
        try:
            self._read_head()
        except _BadRequest as exc:
            self.send_error(exc.status, str(exc))
            return False
        except (TimeoutError, ConnectionError):
            return False
        return bool(self.method)

    def _read_head(self) -> None:
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            return  # closed before a request
        if len(line) > MAX_LINE:
            raise _BadRequest(414, "request line too long")
        words = line.decode("iso-8859-1").rstrip("\r\n").split(" ")
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            raise _BadRequest(400, "bad request line")
        method, target, version = words
        if not method or not set(method) <= _TOKEN or not target:
            raise _BadRequest(400, "bad request line")
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            self.version = "HTTP/1.1"
            raise _BadRequest(505, f"{version[:20]} is not supported")
        fields: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            raw = self.rfile.readline(MAX_LINE + 1)
            if len(raw) > MAX_LINE:
                raise _BadRequest(431, "header line too long")
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = raw.decode("iso-8859-1").partition(":")
            if not colon or not name or not set(name) <= _TOKEN:
                raise _BadRequest(400, "bad header line")
            key, value = name.lower(), value.strip(" \t\r\n")
            if key == "content-length" and fields.get(key, value) != value:
                raise _BadRequest(400, "conflicting Content-Length headers")
            fields[key] = value
        else:
            raise _BadRequest(431, f"more than {MAX_HEADERS} headers")
        if target.startswith("//"):  # as http.server: never read as a host (gh-87389)
            target = "/" + target.lstrip("/")
        self.method, self.path, self.version = method, target, version
        self.headers = Headers(fields)

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        """The one answer, in one write; a client gone meanwhile costs nothing."""
        if self.answered:
            return
        self.answered = True
        head = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
            f"Server: {SERVER}",
            f"Date: {http_date()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in (extra or {}).items()),
        ]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.method != "HEAD":
            payload += body
        try:
            self.wfile.write(payload)
        except OSError as exc:
            log.debug("cannot answer %s %s: %s", self.method, self.path[:100], exc)
        log.debug("%s %s -> %d", self.method, self.path[:100], status)
