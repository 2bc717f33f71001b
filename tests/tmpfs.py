"""A small tmpfs that only the daemon sees: a real filesystem that fills up, for disk-full tests.

The daemon runs in a private mount namespace (``unshare --mount``; for a non-root user also
``--map-root-user``) where a tmpfs of a few hundred KiB is mounted on its state dir. Nothing is
mounted on the host. The test reaches the daemon's view of that tmpfs through
``/proc/<pid>/root``, to fill it up or read the ledger.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import unavailable

_MOUNT = 'mount -t tmpfs -o "size=$0" carbonscope-test "$1" && shift && exec "$@"'


def _unshare() -> tuple[str, ...]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    return (unshare, "--mount") if os.geteuid() == 0 else (unshare, "--mount", "--map-root-user")


@functools.cache
def unavailable_reason() -> str:
    """Why a private tmpfs cannot be mounted here ("" when it can)."""
    prefix = _unshare()
    if not prefix:
        return "unshare (util-linux) not found"
    probe = subprocess.run(
        [*prefix, "sh", "-c", _MOUNT, "64k", "/mnt", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a private mount namespace: {probe.stderr.strip()}"
    return ""


def require_private_tmpfs() -> None:
    """Skip without a private tmpfs; in CI (a root VM, where it works) fail instead."""
    reason = unavailable_reason()
    if reason:
        unavailable(reason)


def tmpfs_wrapper(mount_point: Path, size: str) -> tuple[str, ...]:
    """The argv prefix that runs a command with a tmpfs of ``size`` ("512k") on mount_point."""
    return (*_unshare(), "sh", "-c", _MOUNT, size, str(mount_point))


def seen_by(pid: int, path: Path) -> Path:
    """``path`` as the process ``pid`` sees it (inside its mount namespace), for plain file
    operations. Not for SQLite: it resolves the /proc/<pid>/root link to this namespace's /
    and would open the file underneath the tmpfs; use ``run_inside`` for that."""
    return Path(f"/proc/{pid}/root") / path.resolve().relative_to("/")


def run_inside(pid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv in the mount namespace of ``pid`` (the daemon's), as the daemon sees files."""
    nsenter = shutil.which("nsenter")
    assert nsenter is not None, "nsenter (util-linux) not found"
    enter = [nsenter, f"--target={pid}", "--mount"]
    if os.geteuid() != 0:
        enter += ["--user", "--preserve-credentials"]
    return subprocess.run([*enter, *argv], capture_output=True, text=True, timeout=30, check=True)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; the bytes written."""
    written = 0
    block = b"\0" * 4096
    with path.open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return written
