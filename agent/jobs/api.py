"""The job API: HTTP/1.1 + JSON on a Unix socket, every request authorised by SO_PEERCRED.

    POST /v1/jobs                  {"name", "tags", "pids"} -> 201 {"job_id", ...}
    POST /v1/jobs/{job_id}/stop    -> 200 the job's totals
    GET  /v1/jobs[?limit=N]        -> 200 {"jobs": [...]}
    GET  /v1/jobs/{job_id}         -> 200 the job's totals

The socket file is mode 0666: who may connect is decided by the directory it lives in, and
what each caller may do by its peer credentials, never by file permissions. Errors are JSON
``{"error": "..."}`` with a 4xx status; no request can crash the daemon.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

from carbonscope.errors import CarbonscopeError
from carbonscope.http_server import HttpHandler
from carbonscope.jobs.model import Caller
from carbonscope.jobs.registry import JobRegistry
from carbonscope.jobs.validation import (
    JobRequestError,
    parse_job_request,
    parse_stop_request,
    validate_job_id,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 10.0
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_credentials(sock: socket.socket) -> Caller:
    pid, uid, gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return Caller(pid=pid, uid=uid, gid=gid)


class _Handler(HttpHandler):
    timeout = REQUEST_TIMEOUT_S  # a silent client cannot hold a thread for ever
    registry: ClassVar[JobRegistry]
    grid_location: ClassVar[Mapping[str, str] | None] = None  # the node's, in every job answer
    model_uncertainty: ClassVar[Mapping[str, float]] = {}  # component -> the model's ± ratio

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            caller = peer_credentials(self.connection)
            status, body = self._route(method, caller)
        except JobRequestError as exc:
            status, body = exc.status, {"error": str(exc)}
        except Exception:  # a bug must cost one request, never the daemon
            log.exception("job api: %s %s failed", method, self.path)
            status, body = 500, {"error": "internal error (see the agent's log)"}
        self._send(status, body)

    def _route(self, method: str, caller: Caller) -> tuple[int, dict[str, Any]]:
        path, _, query = self.path.partition("#")[0].partition("?")  # origin-form: no host
        parts = [part for part in path.split("/") if part]
        if parts[:2] != ["v1", "jobs"] or len(parts) > 4:
            raise JobRequestError(f"no such endpoint: {path[:200]}", status=404)
        registry = self.registry
        now = registry.now()
        if len(parts) == 2:
            if method == "POST":
                request = parse_job_request(self._json_body())
                record = registry.register(caller, request)
                return 201, self._job_json(record.to_json(now))
            if method == "GET":
                limit = _limit(parse_qs(query).get("limit", ["100"])[-1])
                records = registry.recent(limit, caller)
                return 200, {"jobs": [self._job_json(record.to_json(now)) for record in records]}
            raise JobRequestError(f"{method} is not allowed on /v1/jobs", status=405)
        job_id = validate_job_id(parts[2])
        if len(parts) == 4:
            if parts[3] != "stop":
                raise JobRequestError(f"no such endpoint: {path[:200]}", status=404)
            if method != "POST":
                raise JobRequestError("use POST to stop a job", status=405)
            outcome = parse_stop_request(self._json_body(optional=True))
            stopped = registry.stop(caller, job_id, outcome)
            return 200, self._job_json(stopped.to_json(registry.now()))
        if method != "GET":
            raise JobRequestError(f"{method} is not allowed on a job", status=405)
        return 200, self._job_json(registry.get(job_id, caller).to_json(now))

    def _job_json(self, job: dict[str, Any]) -> dict[str, Any]:
        if self.grid_location is not None:
            job["grid_location"] = dict(self.grid_location)
        job["uncertainty_ratio"] = energy_uncertainty(job["energy_joules"], self.model_uncertainty)
        return job

    def _json_body(self, optional: bool = False) -> Any:
        if self.headers.get("Transfer-Encoding"):
            raise JobRequestError("send the body with a Content-Length", status=411)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if optional:
                return None
            raise JobRequestError("a Content-Length header is required", status=411)
        try:
            length = int(length_header)
        except ValueError:
            raise JobRequestError("Content-Length is not a number") from None
        if length < 0:
            raise JobRequestError("Content-Length is negative")
        if length > MAX_BODY_BYTES:
            raise JobRequestError(
                f"body of {length} bytes is too large (at most {MAX_BODY_BYTES})", status=413
            )
        raw = self.rfile.read(length)
        if optional and not raw.strip():
            return None
        try:
            return json.loads(raw)
        except RecursionError:
            raise JobRequestError("the body is nested too deeply") from None
        except ValueError as exc:  # bad JSON, bad UTF-8, an integer of thousands of digits
            raise JobRequestError(f"the body is not valid JSON: {str(exc)[:200]}") from None

    def send_error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        self.send(status, (json.dumps(body, indent=None) + "\n").encode(), "application/json")


def energy_uncertainty(
    energy_j: Mapping[str, float], model_uncertainty: Mapping[str, float]
) -> float | None:
    """The relative half-width of a job's energy: its modelled components' (the model's
    errors on them run together, so they add), over its whole energy; None when none of it
    is modelled."""
    total = sum(energy_j.values())
    spread = sum(j * model_uncertainty[c] for c, j in energy_j.items() if c in model_uncertainty)
    if total <= 0 or not any(c in model_uncertainty for c in energy_j):
        return None
    return spread / total


def _limit(value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        raise JobRequestError(f"limit {value!r} is not a number") from None
    if not 1 <= limit <= 10_000:
        raise JobRequestError("limit must be between 1 and 10000")
    return limit


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Connections and time per request are bounded by whoever serves it
    (carbonscope.daemon.limits, applied by the daemon's ServerService)."""

    daemon_threads = True
    block_on_close = False


class JobApiServer(_Server):
    """The job API, bound on construction; the daemon serves it on its own thread
    (carbonscope.daemon.services.ServerService) and ``server_close`` removes the socket."""

    def __init__(
        self,
        path: Path,
        registry: JobRegistry,
        grid_location: Mapping[str, str] | None = None,
        model_uncertainty: Mapping[str, float] | None = None,
    ) -> None:
        """``grid_location``: the node's grid location and how it was chosen ({"code",
        "resolved_by", "detail"}), added to every job's JSON, so a job's summary names it;
        ``model_uncertainty``: the power model's relative half-width per modelled component,
        from which each job's ``uncertainty_ratio`` is given."""
        self.path = path
        _prepare_socket_path(path)
        handler = type(
            "JobApiHandler",
            (_Handler,),
            {
                "registry": registry,
                "grid_location": grid_location,
                "model_uncertainty": dict(model_uncertainty or {}),
            },
        )
        try:
            super().__init__(str(path), handler)
            os.chmod(path, 0o666)
        except OSError as exc:
            raise CarbonscopeError(
                f"cannot serve the job API on {path}: {exc.strerror or exc}"
            ) from None

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _prepare_socket_path(path: Path) -> None:
    """Create the directory; remove a stale socket, but never steal a live one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as exc:
        raise CarbonscopeError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise CarbonscopeError(f"{path} exists and is not a socket: refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: left over from a crash
        return
    finally:
        probe.close()
    raise CarbonscopeError(f"another agent is already serving the job API on {path}")
