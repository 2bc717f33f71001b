"""Default locations of the state directory and the jobs socket.

Standard library only: the job client (``track_job``) resolves the socket with the same rules
as the daemon without importing the daemon's dependencies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SYSTEM_STATE_DIR = Path("/var/lib/carbonscope")
SYSTEM_JOBS_SOCKET = Path("/run/carbonscope/jobs.sock")


def default_state_dir(env: Mapping[str, str], euid: int) -> Path:
    if euid == 0:
        return SYSTEM_STATE_DIR
    xdg = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local/state")
    return Path(xdg) / "carbonscope"


def default_jobs_socket(env: Mapping[str, str], euid: int, state_dir: Path) -> Path:
    if euid == 0:
        return SYSTEM_JOBS_SOCKET
    runtime = env.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "carbonscope/jobs.sock" if runtime else state_dir / "jobs.sock"


def client_jobs_socket(env: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    """Where a client looks: $CARBONSCOPE_SOCKET, else the system daemon's socket when it
    exists, else the per-user default a daemon run by this user would use."""
    env = os.environ if env is None else env
    if env.get("CARBONSCOPE_SOCKET"):
        return Path(env["CARBONSCOPE_SOCKET"])
    if SYSTEM_JOBS_SOCKET.exists():
        return SYSTEM_JOBS_SOCKET
    euid = os.geteuid() if euid is None else euid
    return default_jobs_socket(env, euid, default_state_dir(env, euid))
