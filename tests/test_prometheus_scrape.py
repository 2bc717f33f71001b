"""A real Prometheus server (Debian's package) scrapes the real daemon and can query it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.daemon import Daemon, free_port
from tests.fakes.powercap import two_socket_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    sysfs = tmp_path / "sys"
    tree = two_socket_server(sysfs)
    process = Daemon(
        ["--sysfs-root", str(sysfs), "--interval", "200ms"],
        env={"CARBONSCOPE_CONFIG": "", "CARBONSCOPE_SENSORS__ENABLE": "rapl"},
        workdir=tmp_path,
    )
    process.wait_ready()
    process.tree = tree  # type: ignore[attr-defined]
    yield process
    assert process.stop() == 0, process.log_text()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_and_queries_the_agent(daemon: Daemon, tmp_path: Path) -> None:
    binary = require_tool("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: carbonscope\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{daemon.port}']\n"
    )
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 45
        energy: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            for zone in ("intel-rapl:0", "intel-rapl:2"):
                daemon.tree.zones[zone].advance(50_000_000)  # type: ignore[attr-defined]
            try:
                energy = query(base, "carbonscope_node_energy_joules_total")
                if (
                    energy
                    and len(query(base, "carbonscope_node_energy_joules_total[10s]"))
                    and float(energy[0]["value"][1]) > 0
                ):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert energy, "Prometheus never stored a sample of the agent"
        [up] = query(base, 'up{job="carbonscope"}')
        assert up["value"][1] == "1"
        devices = {
            r["metric"]["device"]
            for r in query(base, 'carbonscope_energy_joules_total{source="rapl"}')
        }
        assert devices == {"package-0", "package-1", "dram-0", "dram-1", "psys"}
        assert query(base, 'carbonscope_emissions_grams_total{method="location"}')
        # psys is the node: the stored node counter is psys' counter, not psys + packages.
        [difference] = query(
            base,
            "carbonscope_node_energy_joules_total"
            ' - ignoring(component, device, source) carbonscope_energy_joules_total{device="psys"}',
        )
        assert float(difference["value"][1]) == 0.0
    finally:
        server.terminate()
        server.wait(timeout=15)
