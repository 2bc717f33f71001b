"""The job API on a real Unix socket: peer-credential authorisation and hostile requests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from carbonscope.client import AgentUnavailable, JobApiError, JobClient, track_job
from carbonscope.daemon.services import ServerService
from carbonscope.errors import CarbonscopeError
from carbonscope.jobs.api import MAX_BODY_BYTES, JobApiServer
from carbonscope.jobs.registry import Caller, JobRegistry, JobsSettings
from carbonscope.jobs.validation import JobRequest
from carbonscope.ledger import JobLedger
from carbonscope.sensors.base import SensorRoots
from tests.daemon import short_socket_path

NOBODY = 65534


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[JobRegistry, Path]]:
    registry = JobRegistry(
        JobsSettings(stop_wait_s=0.2),
        SensorRoots(sysfs=tmp_path / "sys", procfs=Path("/proc")),
        JobLedger(tmp_path / "ledger.sqlite"),
    )
    path = short_socket_path()
    server = ServerService("job API", lambda: JobApiServer(path, registry))
    server.start()
    yield registry, path
    server.stop()


def raw_request(path: Path, request: bytes) -> tuple[int, dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def post(path: Path, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    return raw_request(
        path,
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body,
    )


def as_another_user(action: Callable[[], int]) -> str:
    """Run ``action`` as a different uid than the job owner: as root, fork and become nobody;
    as a normal user, we already are "another user" to root's processes and jobs."""
    if os.geteuid() != 0:
        return str(action())
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write_end, str(action()).encode())
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end) as reader:
        return reader.read()


def test_register_get_stop_round_trip(api: tuple[JobRegistry, Path]) -> None:
    _registry, path = api
    client = JobClient(path)
    started = client.start("bert-finetune", {"team": "nlp"}, [os.getpid()])
    assert started["state"] == "running" and started["tags"] == {"team": "nlp"}
    job_id = started["job_id"]
    assert client.get(job_id)["name"] == "bert-finetune"
    assert [job["job_id"] for job in client.list()] == [job_id]
    stopped = client.stop(job_id)
    assert stopped["state"] == "finished"  # no sampler here: it ends after the stop wait
    assert stopped["energy_joules_total"] == 0.0
    # without pids, the job is the caller's own process as the kernel reports it
    assert client.start("mine")["pids"] == [os.getpid()]


def test_a_stop_records_how_the_command_ended(api: tuple[JobRegistry, Path]) -> None:
    registry, path = api
    client = JobClient(path)
    plain, failed, killed = (client.start(name)["job_id"] for name in ("plain", "failed", "hit"))
    assert client.stop(plain)["outcome"] == "stopped"
    assert client.stop(failed, exit_code=3)["outcome"] == "exit 3"
    assert client.stop(killed, signal=2)["outcome"] == "signal SIGINT"
    registry.flush()
    stored = {r.name: r.outcome for r in registry.recent(10)}
    assert stored == {"plain": "stopped", "failed": "exit 3", "hit": "signal SIGINT"}
    assert client.get(failed)["outcome"] == "exit 3"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"exit_code": 256}, "exit_code must be an integer from 0 to 255"),
        ({"signal": 0}, "signal must be an integer from 1 to 64"),
        ({"exit_code": True}, "exit_code must be an integer"),
        ({"exit_code": 1, "signal": 9}, "not both"),
        ({"reason": "x"}, "unknown field"),
        ([1], "JSON object"),
    ],
)
def test_a_stop_with_a_bad_status_is_a_400(
    api: tuple[JobRegistry, Path], body: object, message: str
) -> None:
    _registry, path = api
    job_id = JobClient(path).start("to-stop")["job_id"]
    with pytest.raises(JobApiError) as refused:
        JobClient(path)._request("POST", f"/v1/jobs/{job_id}/stop", body)
    assert refused.value.status == 400 and message in str(refused.value)
    assert JobClient(path).get(job_id)["state"] == "running"


def test_another_user_cannot_register_roots_process_or_stop_roots_job(
    api: tuple[JobRegistry, Path],
) -> None:
    registry, path = api
    root_job = registry.register(Caller(1, 0, 0), JobRequest("root-job", (), (1,)))

    def attempt() -> int:
        status_register, _ = post(path, "/v1/jobs", b'{"name": "x", "pids": [1]}')
        status_stop, _ = post(path, f"/v1/jobs/{root_job.job_id}/stop", b"")
        return status_register * 1000 + status_stop

    # registering root's process: 403; stopping root's job: 404, as for a GET of it
    assert as_another_user(attempt) == str(403 * 1000 + 404)
    assert registry.get(root_job.job_id).running


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"name": "x", "pids": []}', 400, "non-empty list"),
        (b'{"name": "x", "pids": [1], "labels": {}}', 400, "unknown field"),
        (b'{"name": "x", "pids": ["1"]}', 400, "not a process id"),
        (b'{"name": "", "pids": [1]}', 400, "must not be empty"),
        (b'{"name": "a\\"} evil{x=\\"", "pids": [1]}', 400, "quotes"),
        (b'{"name": "line\\nbreak", "pids": [1]}', 400, "control characters"),
        (b'{"name": "x", "tags": {"Bad-Key": "v"}, "pids": [1]}', 400, "tag key"),
        (b'{"name": "x", "tags": {"team": "a\\\\b"}, "pids": [1]}', 400, "backslashes"),
        (b'{"name": "' + b"n" * 129 + b'", "pids": [1]}', 400, "at most 128"),
        (b'{"name": "x", "pids": [4194305]}', 400, "not a process id"),
        (b'{"name": "x", "pids": [4194000]}', 404, "no such process"),
    ],
)
def test_bad_requests_get_a_4xx_json_error(
    api: tuple[JobRegistry, Path], body: bytes, status: int, message: str
) -> None:
    _registry, path = api
    got_status, answer = post(path, "/v1/jobs", body)
    assert got_status == status
    assert message in answer["error"]


@pytest.mark.faults
def test_a_thousand_tags_oversized_bodies_and_odd_requests(
    api: tuple[JobRegistry, Path],
) -> None:
    _registry, path = api
    tags = {f"k{i}": "v" for i in range(1000)}
    status, answer = post(
        path, "/v1/jobs", json.dumps({"name": "x", "tags": tags, "pids": [1]}).encode()
    )
    assert status == 400 and "too many tags: 1000" in answer["error"]
    status, answer = raw_request(
        path, f"POST /v1/jobs HTTP/1.1\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
    )
    assert status == 413
    status, _ = raw_request(path, b"POST /v1/jobs HTTP/1.1\r\n\r\n")
    assert status == 411
    status, _ = raw_request(path, b"DELETE /v1/jobs HTTP/1.1\r\n\r\n")
    assert status == 405
    status, _ = raw_request(path, b"GET /v1/jobs/..%2f..%2fetc HTTP/1.1\r\n\r\n")
    assert status == 404
    status, _ = raw_request(path, b"GET /v2/anything HTTP/1.1\r\n\r\n")
    assert status == 404
    status, _ = raw_request(path, b"GET /v1/jobs/j-000000000000 HTTP/1.1\r\n\r\n")
    assert status == 404
    # still serving after all of that
    assert JobClient(path).list() == []


def test_socket_is_connectable_by_everyone_and_a_live_socket_is_never_stolen(
    api: tuple[JobRegistry, Path], tmp_path: Path
) -> None:
    registry, path = api
    assert path.stat().st_mode & 0o777 == 0o666
    with pytest.raises(CarbonscopeError, match="already serving"):
        JobApiServer(path, registry)


def test_client_errors_name_the_cause(tmp_path: Path, api: tuple[JobRegistry, Path]) -> None:
    with pytest.raises(AgentUnavailable, match="no carbonscope agent"):
        JobClient(tmp_path / "nothing.sock").list()
    _registry, path = api
    with pytest.raises(JobApiError) as refused:
        JobClient(path).get("j-000000000000")
    assert refused.value.status == 404 and "no such job" in str(refused.value)


def test_track_job_warns_without_an_agent_and_raises_when_strict(tmp_path: Path) -> None:
    """Run in a clean interpreter that imports only the standard-library client."""
    script = f"""
import sys, warnings
from carbonscope import track_job
heavy = {{"pydantic", "click", "rich", "psutil", "prometheus_client", "apscheduler"}}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with track_job("offline", socket_path={str(tmp_path / "none.sock")!r}) as job:
        pass
assert job.energy_joules is None and not job.tracked
assert "not tracking job 'offline'" in str(caught[0].message)
try:
    with track_job("strict", strict=True, socket_path={str(tmp_path / "none.sock")!r}):
        raise SystemExit("block must not run")
except Exception as exc:
    assert type(exc).__name__ == "AgentUnavailable", exc
assert not heavy & {{name.split(".")[0] for name in sys.modules}}, sys.modules.keys()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_track_job_as_context_manager_and_decorator(api: tuple[JobRegistry, Path]) -> None:
    registry, path = api
    with track_job("ctx", tags={"team": "nlp"}, socket_path=path) as job:
        assert registry.get(str(job.job_id)).running
    assert job.tracked and job.energy_joules == 0.0 and job.emissions_grams == 0.0
    assert job.totals is not None and job.totals["state"] == "finished"

    tracker = track_job("deco", socket_path=path)

    @tracker
    def train() -> str:
        return "trained"

    assert train() == "trained"
    assert tracker.totals is not None and tracker.totals["name"] == "deco"


@pytest.mark.faults
@pytest.mark.parametrize(
    "body",
    [b"[" * 20_000 + b"]" * 20_000, b'{"name": "x", "pids": [' + b"9" * 5000 + b"]}"],
    ids=["deeply-nested", "5000-digit-integer"],
)
def test_malformed_json_of_any_depth_or_number_size_is_a_400(
    api: tuple[JobRegistry, Path], body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    _registry, path = api
    status, answer = post(path, "/v1/jobs", body)
    assert status == 400, answer
    assert "JSON" in answer["error"] or "nested" in answer["error"]
    assert "Traceback" not in caplog.text
