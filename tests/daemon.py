"""Runs the real `carbonscope run` as a subprocess and scrapes it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse(text: str) -> dict[tuple[str, Labels], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def short_socket_path() -> Path:
    """Unix socket paths are limited to 107 bytes: pytest's tmp paths can be longer."""
    directory = Path(tempfile.mkdtemp(prefix="cs-"))
    directory.chmod(0o755)  # reachable by other uids, like /run/carbonscope
    return directory / "jobs.sock"


class Daemon:
    """The daemon with its state, job socket and log under ``workdir`` (never the system's)."""

    def __init__(
        self,
        args: list[str],
        workdir: Path,
        env: dict[str, str] | None = None,
        state_dir: Path | None = None,
        socket_path: Path | None = None,
        python: str = sys.executable,
        wrapper: tuple[str, ...] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``wrapper``: an argv prefix the daemon runs under (tests/tmpfs.py's namespace); it
        must exec the daemon, so that ``process.pid`` is the daemon's."""
        self.port = free_port()
        self.tls = tls  # the client's context, when /metrics serves TLS (agent.web_config_file)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.state_dir = state_dir or workdir / "state"
        self.socket = socket_path or short_socket_path()
        self._log_path = workdir / f"daemon-{self.port}.log"
        self._log = open(self._log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                *wrapper,
                python,
                "-m",
                "carbonscope",
                "run",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--state-dir",
                str(self.state_dir),
                *args,
            ],
            env={**os.environ, "CARBONSCOPE_SOCKET": str(self.socket), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        return self._log_path.read_text()

    def get(self, path: str = "/metrics") -> str:
        with urllib.request.urlopen(self.url + path, timeout=5, context=self.tls) as response:
            return str(response.read().decode())

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.process.returncode}:\n{self.log_text()}"
                )
            try:
                self.get("/healthz")
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"daemon not ready after {timeout_s}s:\n{self.log_text()}")

    def scrape(self) -> dict[tuple[str, Labels], float]:
        return parse(self.get())

    def wait_for(
        self, condition: Callable[[dict[tuple[str, Labels], float]], bool], timeout_s: float = 15.0
    ) -> dict[tuple[str, Labels], float]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            samples = self.scrape()
            if condition(samples):
                return samples
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout_s}s; last scrape: {samples}")

    def samples_after(self, count: int) -> dict[tuple[str, Labels], float]:
        """A scrape taken once `count` more samples have completed than now."""
        start = self.scrape()[("carbonscope_samples_total", ())]
        return self.wait_for(lambda s: s[("carbonscope_samples_total", ())] >= start + count)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._log.close()
