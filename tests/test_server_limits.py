"""Both servers are bounded: connections (the idlest is cut for a new one), a deadline per
whole request, a listen backlog for bursts; thousands of idle sockets cost no service."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbonscope.client import JobClient
from carbonscope.daemon.limits import ConnectionLimits
from carbonscope.daemon.services import ServerService
from carbonscope.exporters.prometheus import MetricsServer
from carbonscope.jobs.api import JobApiServer
from carbonscope.jobs.registry import JobRegistry, JobsSettings
from carbonscope.sensors.base import SensorRoots
from tests.daemon import short_socket_path

pytestmark = pytest.mark.faults

LIMITS = ConnectionLimits(max_connections=8, request_timeout_s=1.0)


@pytest.fixture
def metrics() -> Iterator[ServerService]:
    service = ServerService("metrics", lambda: MetricsServer("127.0.0.1", 0), LIMITS)
    service.start()
    yield service
    service.stop()


def address(service: ServerService) -> tuple[str, int]:
    assert isinstance(service.server, MetricsServer)
    return service.server.address


def test_a_fresh_scrape_is_answered_while_hundreds_of_idle_connections_are_open(
    metrics: ServerService,
) -> None:
    threads_before = threading.active_count()
    idle = []
    try:
        for _ in range(300):
            sock = socket.create_connection(address(metrics), timeout=5)
            idle.append(sock)  # connected, never sends a byte
        host, port = address(metrics)
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as answer:  # 503: nothing published yet
            urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2)
        assert answer.value.code == 503 and time.monotonic() - started < 2
        assert metrics.gate is not None and metrics.gate.open_connections() <= 8
        # the idle connections were cut to admit the others: their threads are gone again
        deadline = time.monotonic() + 5
        while threading.active_count() > threads_before + 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= threads_before + 8
    finally:
        for sock in idle:
            sock.close()


def test_a_client_trickling_bytes_is_cut_at_the_request_deadline(metrics: ServerService) -> None:
    sock = socket.create_connection(address(metrics), timeout=5)
    started = time.monotonic()
    sent = 0
    answer: bytes | None
    try:
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n":  # 1.5 s of it: past the deadline
            if time.monotonic() - started > 1.5:
                break
            sock.sendall(bytes([byte]))  # a byte every 0.1 s: every single read is on time
            sent += 1
            time.sleep(0.1)
        sock.settimeout(2)
        answer = sock.recv(100)
    except TimeoutError:
        answer = None  # still open two seconds on: never cut
    except OSError:
        answer = b""  # reset while sending: cut as well
    finally:
        sock.close()
    assert answer == b"", answer  # closed without an answer: the request was not complete
    assert sent < 20 and time.monotonic() - started < 3.0


def test_stalled_clients_do_not_shut_the_job_api_for_everyone(tmp_path: Path) -> None:
    settings = JobsSettings(max_created_per_minute=1000)  # the burst is not a flood
    registry = JobRegistry(settings, SensorRoots(tmp_path, Path("/proc")), None)
    path = short_socket_path()
    service = ServerService("job API", lambda: JobApiServer(path, registry), LIMITS)
    service.start()
    stalled = []
    try:
        for _ in range(64):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(path))
            sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nContent-Len")  # and nothing more
            stalled.append(sock)
        assert JobClient(path, timeout_s=5).list() == []
        # a burst of simultaneous clients: the backlog absorbs it, none is "agent unavailable"
        results: list[object] = []

        def one() -> None:
            try:
                results.append(JobClient(path, timeout_s=10).start("burst", pids=[os.getpid()]))
            except Exception as exc:
                results.append(exc)

        burst = [threading.Thread(target=one) for _ in range(200)]
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join(30)
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(results) == 200 and not failures, failures[:3]
    finally:
        for sock in stalled:
            sock.close()
        service.stop()
