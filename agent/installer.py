"""`carbonscope install-service` / `uninstall-service`: the agent as a systemd service in one step.

Install puts a virtualenv at ``/opt/carbonscope`` with carbonscope in it, the hardened unit
(its ``ExecStart`` pointing there), a default ``/etc/carbonscope/carbonscope.toml`` with every
key commented (an existing one is kept), the README where the unit's ``Documentation=`` points,
and ``/usr/local/bin/carbonscope`` for users' ``carbonscope job run``; then enables and starts
the service. Uninstall reverses it and keeps the configuration and the state directory (the job
ledger) unless ``purge``. ``destdir`` stages everything under another root (tests, packaging),
without touching systemd; a virtualenv is not relocatable, so a staged one runs only in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from carbonscope.errors import CarbonscopeError

UNIT_NAME = "carbonscope.service"
SHIPPED_EXEC_START = "ExecStart=/opt/carbonscope/bin/carbonscope run"
Say = Callable[[str], None]


class InstallError(CarbonscopeError):
    """Why the install or uninstall cannot go on (the message names what to do)."""


@dataclass(frozen=True)
class Layout:
    """Where each part goes; ``destdir`` is prepended to every path (empty: the real root)."""

    destdir: Path = Path("/")
    prefix: Path = Path("/opt/carbonscope")
    unit_dir: Path = Path("/etc/systemd/system")
    config_dir: Path = Path("/etc/carbonscope")
    doc_dir: Path = Path("/usr/share/doc/carbonscope")
    bin_link: Path = Path("/usr/local/bin/carbonscope")
    # StateDirectory=carbonscope with DynamicUser=yes: the data is in /var/lib/private
    state_dirs: tuple[Path, ...] = (
        Path("/var/lib/carbonscope"),
        Path("/var/lib/private/carbonscope"),
    )

    def at(self, path: Path) -> Path:
        return self.destdir / path.relative_to("/")

    @property
    def staged(self) -> bool:
        return self.destdir != Path("/")

    @property
    def executable(self) -> Path:
        return self.prefix / "bin" / "carbonscope"


def shipped(name: str) -> str:
    """A file shipped inside the package (pyproject.toml's force-include, make dev-tree)."""
    return (resources.files("carbonscope") / "shipped" / name).read_text(encoding="utf-8")


def unit_text(layout: Layout) -> str:
    text = shipped("systemd/carbonscope.service")
    if SHIPPED_EXEC_START not in text:
        raise InstallError(f"the shipped unit has no {SHIPPED_EXEC_START!r} line")
    return text.replace(SHIPPED_EXEC_START, f"ExecStart={layout.executable} run")


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    os.replace(tmp, path)


def _run(argv: Sequence[str], say: Say) -> None:
    say("$ " + " ".join(argv))
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InstallError(
            f"{argv[0]} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-2000:]}"
        )


def _check_root(layout: Layout) -> None:
    if not layout.staged and os.geteuid() != 0:
        raise InstallError("installing a system service needs root: run it with sudo")


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def install(
    layout: Layout,
    package: str,
    pip_args: Sequence[str] = (),
    start: bool = True,
    say: Say = print,
) -> None:
    """Install (or upgrade) the service from ``package`` (a wheel, a source tree or a pip
    requirement such as ``carbonscope==0.1.0``)."""
    _check_root(layout)
    venv = layout.at(layout.prefix)
    if not (venv / "bin" / "python").exists():
        say(f"creating the virtualenv {venv}")
        _run([sys.executable, "-m", "venv", str(venv)], say)
    say(f"installing {package} into it")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "--disable-pip-version-check", "--upgrade", *pip_args, package], say)
    if not (venv / "bin" / "carbonscope").exists():
        raise InstallError(f"{venv}/bin/carbonscope is missing after the install of {package}")

    unit = layout.at(layout.unit_dir) / UNIT_NAME
    _write(unit, unit_text(layout), 0o644)
    say(f"wrote {unit}")
    config = layout.at(layout.config_dir) / "carbonscope.toml"
    if config.exists():
        say(f"kept the existing {config}")
    else:
        _write(config, shipped("config/carbonscope.toml"), 0o644)
        say(f"wrote {config} (every key commented: the defaults)")
    doc = layout.at(layout.doc_dir) / "README.md"
    _write(doc, shipped("README.md"), 0o644)
    link = layout.at(layout.bin_link)
    if link.is_symlink() or not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(layout.executable)
        say(f"linked {link} -> {layout.executable}")
    else:
        say(f"left {link} alone: it is not a link of ours")

    if not start or layout.staged:
        say("not starting the service (staged or --no-start)")
        return
    if not _systemd_running():
        raise InstallError("systemd is not running here: installed, but cannot start the service")
    _run(["systemctl", "daemon-reload"], say)
    _run(["systemctl", "enable", "--now", UNIT_NAME], say)
    say("started: systemctl status carbonscope; curl -s localhost:9377/healthz")


def uninstall(layout: Layout, purge: bool = False, stop: bool = True, say: Say = print) -> None:
    """Remove the service; the configuration and the job ledger stay unless ``purge``."""
    _check_root(layout)
    unit = layout.at(layout.unit_dir) / UNIT_NAME
    if stop and not layout.staged and _systemd_running() and unit.exists():
        _run(["systemctl", "disable", "--now", UNIT_NAME], say)
    if unit.exists():
        unit.unlink()
        say(f"removed {unit}")
        if stop and not layout.staged and _systemd_running():
            _run(["systemctl", "daemon-reload"], say)
    link = layout.at(layout.bin_link)
    if link.is_symlink() and Path(os.readlink(link)) == layout.executable:
        link.unlink()
        say(f"removed {link}")
    for directory in (layout.at(layout.prefix), layout.at(layout.doc_dir)):
        if directory.exists():
            shutil.rmtree(directory)
            say(f"removed {directory}")
    kept = [layout.at(layout.config_dir), *(layout.at(d) for d in layout.state_dirs)]
    for directory in kept:
        if not (directory.exists() or directory.is_symlink()):
            continue
        if purge:
            if directory.is_symlink():
                directory.unlink()
            else:
                shutil.rmtree(directory)
            say(f"purged {directory}")
        else:
            say(f"kept {directory} (uninstall-service --purge removes it)")
