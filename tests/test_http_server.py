"""The daemon's own HTTP (http_server.py): strict parsing, one answer, the connection closed."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from carbonscope.http_server import MAX_HEADERS, MAX_LINE, HttpHandler, http_date


class _Echo(HttpHandler):
    def do_GET(self) -> None:
        body = f"{self.path} {self.headers.get('X-Thing')} {self.headers.get('x-none')}"
        self.send(200, body.encode(), "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.send(201, self.rfile.read(length), "application/octet-stream", {"X-Extra": "1"})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[:2]  # type: ignore[misc]
    srv.shutdown()
    srv.server_close()


def exchange(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):  # the server closes after its one answer
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def test_a_request_gets_one_answer_and_the_connection_closes(server: tuple[str, int]) -> None:
    status, headers, body = exchange(server, b"GET /x?y=1 HTTP/1.1\r\nX-THING: a b \r\n\r\n")
    assert (status, body) == (200, b"/x?y=1 a b None")
    assert headers["Connection"] == "close" and headers["Content-Length"] == str(len(body))
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", headers["Date"])
    status, headers, body = exchange(server, b"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
    assert (status, body, headers["X-Extra"]) == (201, b"hello", "1")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /\r\n\r\n", 400),  # HTTP/0.9
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"G\x00T / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET /" + b"a" * MAX_LINE + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_LINE + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"PATCH / HTTP/1.1\r\n\r\n", 501),
        (b"get / HTTP/1.1\r\n\r\n", 501),
    ],
)
def test_malformed_requests_get_the_status_http_server_gave(
    server: tuple[str, int], raw: bytes, status: int
) -> None:
    assert exchange(server, raw)[0] == status


def test_a_target_with_leading_slashes_is_never_read_as_a_host(server: tuple[str, int]) -> None:
    assert exchange(server, b"GET //evil.example/x HTTP/1.1\r\n\r\n")[2].startswith(
        b"/evil.example/x "
    )


def test_a_client_that_says_nothing_gets_nothing(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""


def test_dates_are_imf_fixdate_whatever_the_locale() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110's example
