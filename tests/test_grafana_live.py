"""The SRE's view against a live Prometheus (Debian's package): it loads deploy/prometheus's
rules and scrapes two real agents, one on fake RAPL + fake NVML with a running job and a live
intensity API (a loopback fake of Electricity Maps, with a forecast), one with no sensor (the
model). Every dashboard query and variable query, with its variables given real values,
returns data; the recording rules give the node and fleet power; a failing GPU makes its alert
pending; and the same check finds a misspelled metric."""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carbonscope.client import JobClient
from tests.conftest import require_tool
from tests.daemon import Daemon
from tests.fakes.grid_apis import GridApiServer
from tests.fakes.nvml import UNKNOWN, FakeGpu, FakeNvml
from tests.fakes.powercap import two_socket_server
from tests.prometheus import PrometheusServer

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
BOARDS = REPO / "grafana" / "dashboards"
RULES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
TICK_S = 0.1
# per tick on node A: packages 2 x 5 J, DRAM 2 x 1 J (120 W), two GPUs 10 J each (200 W)
ZONE_J = {"intel-rapl:0": 5, "intel-rapl:1": 5, "intel-rapl:0:0": 1, "intel-rapl:1:0": 1}
GPU_J = 10


class Load(threading.Thread):
    """Node A's hardware at a steady power: energy added every tick, counted as it goes."""

    def __init__(self, tree: Any, nvml: FakeNvml) -> None:
        super().__init__(daemon=True)
        self.tree, self.nvml = tree, nvml
        self.stop = threading.Event()
        self.joules = 0.0
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(TICK_S):
            for zone, joules in ZONE_J.items():
                self.tree.zones[zone].advance(joules * 1_000_000)
            for gpu in self.nvml.gpus:
                gpu.energy_mj += GPU_J * 1000
            self.nvml.write()
            self.joules += sum(ZONE_J.values()) + GPU_J * len(self.nvml.gpus)

    def watts(self) -> float:
        return self.joules / (time.monotonic() - self.started)


@pytest.fixture
def grid_api() -> Iterator[GridApiServer]:
    server = GridApiServer()
    now = time.time()
    server.em_forecast = [(now + hours * 3600, 300.0 - 10 * hours) for hours in range(1, 25)]
    yield server
    server.close()


def short_windowed(rules: list[Path], directory: Path) -> list[Path]:
    """The shipped rules with their 5- and 30-minute windows cut to 10 s: this Prometheus
    runs for seconds, and rate() over a window the data does not yet fill divides the
    increase it has by the whole window. Everything else is unchanged."""
    directory.mkdir()
    copies = []
    for rule in rules:
        text = rule.read_text().replace("[5m]", "[10s]").replace("[30m]", "[10s]")
        (directory / rule.name).write_text(text)
        copies.append(directory / rule.name)
    return copies


def record_panels(
    prometheus: PrometheusServer,
    boards: dict[str, dict[str, Any]],
    choices: dict[str, list[dict[str, str]]],
    since: float,
    out: Path,
) -> None:
    """Each panel's data over the run, as Grafana would ask for it (a range query for a time
    series, an instant query otherwise), for grafana/pictures.py to draw docs/images from."""
    end = time.time()
    recorded: dict[str, list[dict[str, Any]]] = {}
    for name, board in boards.items():
        # windows this run fills (rate() over a half-empty window reads low)
        values = {**choices[name][0], "__rate_interval": "10s"}
        panels = []
        for panel in board["panels"]:
            results = []
            for target in panel["targets"]:
                expr = substituted(target["expr"], values)
                if panel["type"] == "timeseries":
                    data = prometheus.query_range(expr, since, end, 1)
                else:
                    data = prometheus.query(expr)
                results.append({"legend": target.get("legendFormat", ""), "result": data})
            unit = panel["fieldConfig"]["defaults"].get("unit", "")
            panels.append(
                {
                    "title": panel["title"],
                    "type": panel["type"],
                    "unit": unit,
                    "gridPos": panel["gridPos"],
                    "targets": results,
                }
            )
        recorded[name] = [{"title": board["title"], "panels": panels}]
    out.mkdir(parents=True, exist_ok=True)
    (out / "panels.json").write_text(json.dumps(recorded, indent=1))


def substituted(expr: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${name}", values[name])
    return expr


def missing_data(
    prometheus: PrometheusServer, board: dict[str, Any], choices: list[dict[str, str]]
) -> list[str]:
    """The queries of a dashboard that return nothing for every one of ``choices`` (variable
    values), and the variable queries that list nothing."""
    missing = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            if not any(prometheus.query(substituted(target["expr"], c)) for c in choices):
                missing.append(f"{panel['title']}: {target['expr']}")
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        selector, label = match.groups()
        found = {
            sample["metric"].get(label)
            for c in choices
            for sample in prometheus.query(substituted(selector, c))
        }
        if not found - {None}:
            missing.append(f"${variable['name']}: {variable['query']}")
    return missing


def test_dashboards_rules_and_alerts_on_a_live_prometheus(
    tmp_path: Path, nvml_library: Path, grid_api: GridApiServer
) -> None:
    require_tool("prometheus")  # before anything starts
    nvml = FakeNvml(
        nvml_library,
        tmp_path / "nvml.state",
        gpus=[
            FakeGpu(energy_mj=10**6, processes=[(os.getpid(), 2 * 1024**3, 70)]),
            FakeGpu(energy_mj=2 * 10**6),
        ],
    )
    nvml.write()
    sysfs_a = tmp_path / "a" / "sys"
    tree = two_socket_server(sysfs_a, with_psys=False)
    token = grid_api.write_em_token(tmp_path / "em.token")
    config_a = tmp_path / "a.toml"
    config_a.write_text(
        '[agent]\ninterval = "200ms"\n[sensors]\nenable = ["rapl", "nvml"]\n'
        '[carbon]\nlocation = "DE"\nprovider = "electricitymaps"\nrefresh = "1s"\n'
        f'[carbon.electricitymaps]\nurl = "{grid_api.url}"\ntoken_file = "{token}"\n'
        'zone = "DE"\n'
    )
    node_a = Daemon(
        ["--config", str(config_a), "--sysfs-root", str(sysfs_a)],
        tmp_path / "a",
        env={"CARBONSCOPE_CONFIG": "", **nvml.env},
    )
    (tmp_path / "b" / "sys").mkdir(parents=True)
    node_b = Daemon(
        ["--sysfs-root", str(tmp_path / "b" / "sys"), "--interval", "200ms"],
        tmp_path / "b",
        env={"CARBONSCOPE_CONFIG": "", "TZ": "UTC"},
    )
    load = Load(tree, nvml)
    server = None
    try:
        node_a.wait_ready()
        node_b.wait_ready()
        job = JobClient(node_a.socket, timeout_s=10).start(
            "bert-finetune", {"team": "nlp"}, pids=[os.getpid()]
        )
        load.start()
        targets = ", ".join(f"'127.0.0.1:{n.port}'" for n in (node_a, node_b))
        server = PrometheusServer(
            tmp_path,
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files:\n"
            + "".join(f"  - {rule}\n" for rule in short_windowed(RULES, tmp_path / "rules"))
            + "scrape_configs:\n"
            "  - job_name: carbonscope\n    static_configs:\n"
            f"      - targets: [{targets}]\n",
        )
        instance_a, instance_b = (f"127.0.0.1:{n.port}" for n in (node_a, node_b))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if (
                    len(server.query("fleet:carbonscope_node_power_watts:sum_rate5m"))
                    and len(server.query("carbonscope_grid_intensity_forecast_grams_per_kwh"))
                    and len(server.query("instance:carbonscope_node_power_watts:rate5m")) == 2
                ):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        time.sleep(12)  # a dozen scrapes of every series, the rules evaluated on them

        # every panel's query and every variable's query returns data
        common = {"__rate_interval": "1m", "__range": "1h", "scrape_job": "carbonscope"}
        choices = {
            "node": [{**common, "instance": i} for i in (instance_a, instance_b)],
            "fleet": [common],
            "jobs": [{**common, "instance": ".*", "job_id": job["job_id"]}],
        }
        boards = {path.stem: json.loads(path.read_text()) for path in BOARDS.glob("*.json")}
        assert set(boards) == set(choices)
        for name, board in boards.items():
            assert missing_data(server, board, choices[name]) == [], name

        if os.environ.get("CARBONSCOPE_DASHBOARD_DATA"):  # make dashboard-pictures
            since = time.time() - (time.monotonic() - load.started) + 10  # once windows fill
            record_panels(
                server, boards, choices, since, Path(os.environ["CARBONSCOPE_DASHBOARD_DATA"])
            )

        # the same check finds a misspelled metric
        broken = copy.deepcopy(boards["node"])
        first = broken["panels"][0]["targets"][0]
        first["expr"] = first["expr"].replace(
            "carbonscope_energy_joules", "carbonscope_enrgy_joules"
        )
        assert len(missing_data(server, broken, choices["node"])) == 1

        # recording rules: node A's power is what the load puts in; the fleet is A + B, as
        # the node rules stood when the fleet rule was evaluated: the node group's latest
        # round then, this one or the one before (the groups run side by side, 1 s apart)
        [fleet_sample] = server.query("fleet:carbonscope_node_power_watts:sum_rate5m")
        at, fleet = float(fleet_sample["value"][0]), float(fleet_sample["value"][1])
        node_rule = "instance:carbonscope_node_power_watts:rate5m"
        power_a = server.value(f'{node_rule}{{instance="{instance_a}"}}', at)
        power_b = server.value(f'{node_rule}{{instance="{instance_b}"}}', at)
        assert power_a == pytest.approx(load.watts(), rel=0.1)
        assert power_b > 0  # the model's estimate of this machine
        sums = [server.value(f"sum({node_rule})", at - lag) for lag in (0.0, 1.0)]
        assert any(fleet == pytest.approx(total, rel=0.01) for total in sums), (fleet, sums)
        teams = server.query("team:carbonscope_job_power_watts:sum_rate5m")
        assert [sample["metric"].get("tag_team") for sample in teams] == ["nlp"]
        measured_a = f'instance:carbonscope_measured_energy:ratio_rate5m{{instance="{instance_a}"}}'
        modelled_b = f'instance:carbonscope_modelled_energy:ratio_rate5m{{instance="{instance_b}"}}'
        assert server.value(measured_a) == pytest.approx(1.0)  # RAPL and NVML measure it all
        assert server.value(modelled_b) == pytest.approx(1.0)  # no sensor: all modelled

        # a GPU that fails to read: its source alert is pending within a few evaluations
        nvml.gpus[1].errors = {"nvmlDeviceGetTotalEnergyConsumption": UNKNOWN}
        deadline = time.monotonic() + 30
        pending: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not pending:
            pending = server.query('ALERTS{alertname="CarbonscopeSourceFailing"}')
            time.sleep(0.5)
        assert pending, server.query('carbonscope_source_status{source="nvml"} == 1')
        assert pending[0]["metric"]["alertstate"] == "pending"
        assert pending[0]["metric"]["device"] == "gpu1"
    finally:
        load.stop.set()
        if server is not None:
            server.stop()
        for node in (node_a, node_b):
            assert node.stop() == 0, node.log_text()
