"""A local HTTP server that answers like the real grid intensity APIs.

Shapes follow ../shared/REFERENCE.md: Electricity Maps v3 (``auth-token`` header), WattTime v3
(``/login`` with HTTP Basic, then a bearer token that expires), UK Carbon Intensity (national
and regional). Tests set values, queue failures and read the requests it received.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Json = Any


def iso(unix_s: float, seconds: bool = True) -> str:
    return time.strftime(
        "%Y-%m-%dT%H:%M:%S.000Z" if seconds else "%Y-%m-%dT%H:%MZ", time.gmtime(unix_s)
    )


@dataclass
class Failure:
    """One scripted bad answer."""

    status: int = 500
    body: Json = None  # JSON body; None: the API's usual error shape for the status
    raw: bytes | None = None  # a non-JSON body instead (malformed answers)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering (timeouts)
    trickle_s: float = 0.0  # send the body a byte at a time, this far apart
    declare_length: bool = True  # False: no Content-Length, the body ends when the socket does


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class GridApiServer:
    def __init__(self) -> None:
        self.em_token = "em-" + secrets.token_hex(16)
        self.em_value: float | None = 300.0
        self.em_value_at: Callable[[], float] = time.time  # the "datetime" it reports
        self.em_forecast: list[tuple[float, float | None]] = []
        self.wt_username = "carbonscope-test"
        self.wt_password = "pw-" + secrets.token_hex(12)
        self.wt_token_lifetime_s = 1800.0
        self.wt_value_lbs: float | None = 900.0
        self.wt_units = "lbs_co2_per_mwh"
        self.wt_empty = False  # "data": [] (a region without data)
        self.wt_tokens: dict[str, float] = {}  # token -> issued at (monotonic)
        self.wt_logins = 0
        self.uk_actual: float | None = 180.0
        self.uk_forecast: float | None = 190.0
        self.uk_regional_forecast: float | None = 140.0
        self.failures: dict[str, deque[Failure]] = {}
        self.always: dict[str, Failure] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def write_em_token(self, path: Path) -> Path:
        """The Electricity Maps token as the agent's token_file wants it (mode 0600)."""
        path.write_text(self.em_token + "\n")
        path.chmod(0o600)
        return path

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, path: str, *failures: Failure) -> None:
        with self._lock:
            self.failures.setdefault(path, deque()).extend(failures)

    def fail_always(self, path: str, failure: Failure | None) -> None:
        with self._lock:
            if failure is None:
                self.always.pop(path, None)
            else:
                self.always[path] = failure

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the APIs ---------------------------------------------------------------------------

    def _scripted_failure(self, path: str) -> Failure | None:
        with self._lock:
            queue = self.failures.get(path)
            if queue:
                return queue.popleft()
            return self.always.get(path)

    def answer(self, request: Request) -> tuple[int, Json, dict[str, str]]:
        path, query, headers = request.path, request.query, request.headers
        if path.startswith("/v3/carbon-intensity/"):
            return self._electricitymaps(path, query, headers)
        if path == "/login":
            return self._watttime_login(headers)
        if path == "/v3/forecast":
            return self._watttime_forecast(query, headers)
        if path == "/intensity" or path.startswith("/regional/"):
            return self._uk(path)
        return 404, {"error": "Not Found"}, {}

    def _electricitymaps(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Json, dict[str, str]]:
        if headers.get("auth-token") != self.em_token:
            return 401, {"message": "Invalid authentication credentials"}, {}
        zone = query.get("zone")
        if not zone:
            return 400, {"error": "zone is required"}, {}
        factor = query.get("emissionFactorType", "lifecycle")
        now = time.time()
        if path.endswith("/latest"):
            return (
                200,
                {
                    "zone": zone,
                    "carbonIntensity": self.em_value,
                    "datetime": iso(self.em_value_at()),
                    "updatedAt": iso(now),
                    "createdAt": iso(now - 3600),
                    "emissionFactorType": factor,
                    "isEstimated": True,
                    "estimationMethod": "TIME_SLICER_AVERAGE",
                },
                {},
            )
        if path.endswith("/forecast"):
            return (
                200,
                {
                    "zone": zone,
                    "forecast": [
                        {"carbonIntensity": value, "datetime": iso(at)}
                        for at, value in self.em_forecast
                    ],
                    "updatedAt": iso(now),
                },
                {},
            )
        return 404, {"error": "Not Found"}, {}

    def _watttime_login(self, headers: dict[str, str]) -> tuple[int, Json, dict[str, str]]:
        expected = base64.b64encode(f"{self.wt_username}:{self.wt_password}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return 403, {"error": "Forbidden", "message": "invalid username or password"}, {}
        token = "wt-" + secrets.token_hex(20)
        with self._lock:
            self.wt_tokens[token] = time.monotonic()
            self.wt_logins += 1
        return 200, {"token": token}, {}

    def _watttime_forecast(
        self, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Json, dict[str, str]]:
        auth = headers.get("authorization", "")
        issued = self.wt_tokens.get(auth.removeprefix("Bearer "))
        if issued is None or time.monotonic() - issued > self.wt_token_lifetime_s:
            return 401, {"error": "Unauthorized", "message": "token expired or invalid"}, {}
        if query.get("signal_type") != "co2_moer" or query.get("horizon_hours") != "0":
            return 400, {"error": "bad request", "message": "unexpected parameters"}, {}
        region = query.get("region", "")
        now = time.time()
        data = (
            []
            if self.wt_empty
            else [{"point_time": iso(now - now % 300), "value": self.wt_value_lbs}]
        )
        return (
            200,
            {
                "data": data,
                "meta": {
                    "data_point_period_seconds": 300,
                    "region": region,
                    "warnings": [],
                    "model": {"date": "2026-10-01", "type": "binned_regression"},
                    "signal_type": "co2_moer",
                    "units": self.wt_units,
                    "generated_at_period_seconds": 300,
                    "generated_at": iso(now - now % 300),
                },
            },
            {},
        )

    def _uk(self, path: str) -> tuple[int, Json, dict[str, str]]:
        now = time.time()
        start = now - now % 1800
        period = {"from": iso(start, seconds=False), "to": iso(start + 1800, seconds=False)}
        if path == "/intensity":
            return (
                200,
                {
                    "data": [
                        {
                            **period,
                            "intensity": {
                                "forecast": self.uk_forecast,
                                "actual": self.uk_actual,
                                "index": "low",
                            },
                        }
                    ]
                },
                {},
            )
        parts = path.strip("/").split("/")  # regional/postcode/RG10 or regional/regionid/12
        if len(parts) != 3 or parts[1] not in ("postcode", "regionid"):
            return 404, {"error": {"code": "404 Not Found", "message": "not found"}}, {}
        if parts[1] == "postcode" and not parts[2][:1].isalpha():
            return (
                400,
                {"error": {"code": "400 Bad Request", "message": "Please enter a valid postcode"}},
                {},
            )
        entry = {
            "regionid": 12 if parts[1] == "postcode" else int(parts[2]),
            "dnoregion": "Scottish and Southern Electricity Networks",
            "shortname": "South England",
            "data": [
                {
                    **period,
                    "intensity": {"forecast": self.uk_regional_forecast, "index": "low"},
                    "generationmix": [{"fuel": "wind", "perc": 41.2}],
                }
            ],
        }
        if parts[1] == "postcode":
            entry["postcode"] = parts[2]
        return 200, {"data": [entry]}, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                split = urlsplit(self.path)
                request = Request(
                    split.path,
                    {key: values[-1] for key, values in parse_qs(split.query).items()},
                    {key.lower(): value for key, value in self.headers.items()},
                )
                with server._lock:
                    server.requests.append(request)
                failure = server._scripted_failure(split.path)
                if failure is not None:
                    time.sleep(failure.delay_s)
                    body = failure.body
                    if body is None:
                        body = {"error": {"code": f"{failure.status}", "message": "failure"}}
                    raw = failure.raw if failure.raw is not None else json.dumps(body).encode()
                    self._send(failure.status, raw, failure.headers, failure)
                    return
                status, body, headers = server.answer(request)
                self._send(status, json.dumps(body).encode(), headers)

            def _send(
                self,
                status: int,
                payload: bytes,
                headers: dict[str, str],
                failure: Failure | None = None,
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if failure is None or failure.declare_length:
                        self.send_header("Content-Length", str(len(payload)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if failure is not None and failure.trickle_s:
                        for index in range(len(payload)):
                            self.wfile.write(payload[index : index + 1])
                            self.wfile.flush()
                            time.sleep(failure.trickle_s)
                        return
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
