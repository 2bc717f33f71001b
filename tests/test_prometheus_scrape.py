"""A real Prometheus server (Debian's package) scrapes the real daemon and can query it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon
from tests.fakes.powercap import two_socket_server
from tests.prometheus import PrometheusServer

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


def test_prometheus_scrapes_and_queries_the_agent(daemon: Daemon, tmp_path: Path) -> None:
    server = PrometheusServer(
        tmp_path,
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: carbonscope\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{daemon.port}']\n",
    )
    query = server.query
    try:
        deadline = time.monotonic() + 45
        energy: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            for zone in ("intel-rapl:0", "intel-rapl:2"):
                daemon.tree.zones[zone].advance(50_000_000)  # type: ignore[attr-defined]
            try:
                energy = query("carbonscope_node_energy_joules_total")
                if (
                    energy
                    and len(query("carbonscope_node_energy_joules_total[10s]"))
                    and float(energy[0]["value"][1]) > 0
                ):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert energy, "Prometheus never stored a sample of the agent"
        [up] = query('up{job="carbonscope"}')
        assert up["value"][1] == "1"
        devices = {
            r["metric"]["device"] for r in query('carbonscope_energy_joules_total{source="rapl"}')
        }
        assert devices == {"package-0", "package-1", "dram-0", "dram-1", "psys"}
        assert query('carbonscope_emissions_grams_total{method="location"}')
        # psys is the node: the stored node counter is psys' counter, not psys + packages.
        [difference] = query(
            "carbonscope_node_energy_joules_total"
            ' - ignoring(component, device, source) carbonscope_energy_joules_total{device="psys"}',
        )
        assert float(difference["value"][1]) == 0.0
    finally:
        server.stop()
