"""Client of the job API, for training scripts and the CLI. Standard library only.

    from carbonscope import track_job
    with track_job("bert-finetune", tags={"team": "nlp"}) as job:
        train()
    print(job.energy_joules, job.emissions_grams)

When the agent is not running, ``track_job`` warns and lets the training run untracked (its
totals stay None) unless ``strict=True``, which raises instead.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from carbonscope.paths import client_jobs_socket

CONNECT_RETRY_S = 5.0  # how long a full listen backlog is retried before giving up
DEFAULT_TIMEOUT_S = 15.0  # a stop waits for the next sample, which may take a few seconds


class JobClientError(Exception):
    """The job API could not be used."""


class AgentUnavailable(JobClientError):
    """No agent answers on the socket."""


class JobApiError(JobClientError):
    """The agent refused the request (``status`` is the HTTP status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout_s: float) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self._socket_path = path

    def connect(self) -> None:
        """Connect, retrying briefly while the agent's listen backlog is full (a Unix socket
        answers EAGAIN then instead of waiting); the request timeout applies after."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + CONNECT_RETRY_S
        sock.setblocking(False)
        try:
            while True:
                try:
                    sock.connect(str(self._socket_path))
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.02)
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self.sock = sock


class JobClient:
    def __init__(
        self, socket_path: str | Path | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.socket_path = Path(socket_path) if socket_path else client_jobs_socket()
        self.timeout_s = timeout_s

    def start(
        self, name: str, tags: Mapping[str, str] | None = None, pids: list[int] | None = None
    ) -> dict[str, Any]:
        """Register a job; without ``pids`` the job is this process (as the agent sees it
        through SO_PEERCRED, which also works from inside a container's PID namespace)."""
        body: dict[str, Any] = {"name": name, "tags": dict(tags or {})}
        if pids:
            body["pids"] = pids
        return self._request("POST", "/v1/jobs", body)

    def stop(
        self, job_id: str, exit_code: int | None = None, signal: int | None = None
    ) -> dict[str, Any]:
        """End a job; ``exit_code`` or ``signal``: how its command ended, kept in the ledger."""
        body: dict[str, Any] = {}
        if exit_code is not None:
            body["exit_code"] = exit_code
        elif signal is not None:
            body["signal"] = signal
        return self._request("POST", f"/v1/jobs/{job_id}/stop", body)

    def get(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        jobs = self._request("GET", f"/v1/jobs?limit={limit}")["jobs"]
        return list(jobs)

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        connection = _UnixConnection(self.socket_path, self.timeout_s)
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AgentUnavailable(
                f"no carbonscope agent at {self.socket_path} ({exc.strerror or exc})"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise AgentUnavailable(
                f"the agent at {self.socket_path} did not answer: {exc}"
            ) from None
        finally:
            connection.close()
        try:
            data = json.loads(raw)
        except ValueError:
            raise JobApiError(response.status, f"unreadable answer: {raw[:200]!r}") from None
        if response.status >= 400:
            raise JobApiError(response.status, str(data.get("error", data)))
        return dict(data)


class track_job(contextlib.ContextDecorator):
    """Tag this process (and its children) as a job while the block or function runs.

    After the block: ``job_id``, ``energy_joules`` (``idle_energy_joules`` of it the idle
    share), ``emissions_grams`` (location-based),
    ``emissions_market_grams``, ``energy_by_component`` and ``totals`` (the API's answer),
    all None when the job could not be tracked.
    """

    def __init__(
        self,
        name: str,
        tags: Mapping[str, str] | None = None,
        *,
        strict: bool = False,
        socket_path: str | Path | None = None,
    ) -> None:
        self.name = name
        self.tags = dict(tags or {})
        self.strict = strict
        self._client = JobClient(socket_path)
        self.job_id: str | None = None
        self.totals: dict[str, Any] | None = None

    @property
    def tracked(self) -> bool:
        return self.job_id is not None

    @property
    def energy_joules(self) -> float | None:
        return None if self.totals is None else float(self.totals["energy_joules_total"])

    @property
    def idle_energy_joules(self) -> float | None:
        """The idle share inside ``energy_joules`` (the agent's ``jobs.idle_policy``)."""
        if self.totals is None:
            return None
        return float(self.totals.get("idle_energy_joules_total", 0.0))

    @property
    def energy_kwh(self) -> float | None:
        return None if self.totals is None else float(self.totals["energy_kwh"])

    @property
    def emissions_grams(self) -> float | None:
        return None if self.totals is None else float(self.totals["emissions_grams"]["location"])

    @property
    def emissions_market_grams(self) -> float | None:
        return None if self.totals is None else float(self.totals["emissions_grams"]["market"])

    @property
    def grid_location(self) -> dict[str, str] | None:
        """The node's grid location and how it was chosen ({"code", "resolved_by", "detail"})."""
        return None if self.totals is None else self.totals.get("grid_location")

    @property
    def energy_by_component(self) -> dict[str, float] | None:
        return None if self.totals is None else dict(self.totals["energy_joules"])

    def __enter__(self) -> track_job:
        self.job_id, self.totals = None, None
        try:
            self.job_id = str(self._client.start(self.name, self.tags)["job_id"])
        except JobClientError as exc:
            if self.strict:
                raise
            warnings.warn(
                f"carbonscope: not tracking job {self.name!r}: {exc}", RuntimeWarning, stacklevel=2
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.job_id is None:
            return
        try:
            self.totals = self._client.stop(self.job_id)
        except JobClientError as error:
            if self.strict and exc is None:
                raise
            warnings.warn(
                f"carbonscope: job {self.job_id} ({self.name!r}) could not be stopped: {error}",
                RuntimeWarning,
                stacklevel=2,
            )
