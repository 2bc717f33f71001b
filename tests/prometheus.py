"""A real Prometheus server (Debian's package) for end-to-end tests, and its query API."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import require_tool
from tests.daemon import free_port


class PrometheusServer:
    """``prometheus`` on a free loopback port with ``config`` (YAML text), its TSDB under
    ``directory``; in CI a missing binary fails the test (require_tool)."""

    def __init__(self, directory: Path, config: str) -> None:
        binary = require_tool("prometheus")
        port = free_port()
        path = directory / "prometheus.yml"
        path.write_text(config)
        self.base = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result (at unix time ``at``, else now)."""
        params: dict[str, Any] = {"query": promql} | ({"time": at} if at is not None else {})
        url = f"{self.base}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", (promql, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str, at: float | None = None) -> float:
        [sample] = self.query(promql, at)
        return float(sample["value"][1])

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Any]:
        params = {"query": promql, "start": start, "end": end, "step": step}
        url = f"{self.base}/api/v1/query_range?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            result: list[Any] = json.load(response)["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error."""
        with urllib.request.urlopen(f"{self.base}/api/v1/targets", timeout=10) as response:
            active: list[dict[str, Any]] = json.load(response)["data"]["activeTargets"]
        return active

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=15)
