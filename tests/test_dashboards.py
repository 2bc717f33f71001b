"""The Grafana dashboards (grafana/): the committed JSON is what the code writes, and every
panel follows the rules docs/grafana.md lists. A misspelled metric makes the lint fail."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool, unavailable

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = REPO / "grafana" / "dashboards"
BOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
RANGE_FUNCTIONS = ("rate", "irate", "increase")
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$__range": "1h",
    "$instance": "node-a:9464",
    "$job_id": "j-0123456789ab",
    "$scrape_job": "carbonscope",
}


def boards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in BOARD_FILES}


def documented_metrics() -> set[str]:
    names = set(re.findall(r"`(carbonscope_[a-z_]+)`", (REPO / "docs" / "metrics.md").read_text()))
    return names | {name.removesuffix("_total") for name in names}


def problems(board: dict[str, Any]) -> list[str]:
    """Every rule of docs/grafana.md this dashboard breaks."""
    found: list[str] = []
    variables = board.get("templating", {}).get("list", [])
    if not any(v["type"] == "datasource" and v["name"] == "datasource" for v in variables):
        found.append("no $datasource variable")
    known = documented_metrics()
    ids = [panel.get("id") for panel in board["panels"]]
    if len(set(ids)) != len(ids):
        found.append(f"panel ids repeat: {ids}")
    for panel in board["panels"]:
        title = panel["title"]
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            found.append(f"{title}: datasource is not $datasource")
        if not panel.get("description"):
            found.append(f"{title}: no description of what it shows")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            found.append(f"{title}: no unit")
        if not panel.get("targets"):
            found.append(f"{title}: no query")
        for target in panel.get("targets", []):
            found += [f"{title}: {p}" for p in expression_problems(target["expr"], known)]
    for variable in variables:
        if variable["type"] == "query":
            found += [
                f"${variable['name']}: {p}" for p in expression_problems(variable["query"], known)
            ]
    return found


def expression_problems(expr: str, known: set[str]) -> list[str]:
    found = []
    for name in set(re.findall(r"\bcarbonscope_[a-z_]+", expr)):
        if name not in known:
            found.append(f"{name} is not a metric the agent exports")
    if re.search(r"\b(sum|avg)_over_time\(", expr):
        found.append("a gauge or counter summed or averaged over time")
    for function, argument, window in re.findall(
        r"\b(rate|irate|increase)\(\s*([a-z_:]+)\s*(?:\{[^}]*\})?\s*(\[[^\]]*\])", expr
    ):
        if window not in ("[$__rate_interval]", "[$__range]"):
            found.append(f"{function}() over {window}, not $__rate_interval or $__range")
        if not argument.endswith("_total"):
            found.append(f"{function}() of {argument}, which is not a counter")
    return found


def test_the_committed_json_is_what_the_code_writes(tmp_path: Path) -> None:
    try:
        import grafana_foundation_sdk  # noqa: F401, PLC0415 - a dev extra: make test installs it
    except ImportError:
        unavailable("grafana-foundation-sdk not installed (pip install -e '.[dev]')")
    code = (
        "import sys; sys.path.insert(0, 'grafana'); import generate; "
        "import json; print(json.dumps(generate.rendered()))"
    )
    written = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert written.returncode == 0, written.stderr
    for name, text in json.loads(written.stdout).items():
        assert (DASHBOARDS / f"{name}.json").read_text() == text, f"run make dashboards ({name})"
    sys.path.insert(0, str(REPO / "grafana"))
    try:
        import generate  # noqa: PLC0415

        doc = (REPO / "docs" / "grafana.md").read_text()
        assert generate.with_listing(doc, json.loads(written.stdout)) == doc, "make dashboards"
    finally:
        sys.path.remove(str(REPO / "grafana"))


def test_there_are_the_three_dashboards_with_their_panels() -> None:
    found = boards()
    assert set(found) == {"node", "fleet", "jobs"}
    assert all(len(board["panels"]) >= 8 for board in found.values())


@pytest.mark.parametrize("name", [path.stem for path in BOARD_FILES])
def test_every_panel_follows_the_rules(name: str) -> None:
    assert problems(boards()[name]) == []


def test_a_misspelled_metric_or_a_bad_window_is_caught() -> None:
    board = copy.deepcopy(boards()["node"])
    board["panels"][0]["targets"][0]["expr"] = board["panels"][0]["targets"][0]["expr"].replace(
        "carbonscope_energy_joules_total", "carbonscope_energy_jules_total"
    )
    board["panels"][1]["targets"][0]["expr"] = "rate(carbonscope_node_energy_joules_total[5m])"
    board["panels"][2]["fieldConfig"]["defaults"].pop("unit")
    found = problems(board)
    assert any("carbonscope_energy_jules_total is not a metric" in p for p in found), found
    assert any("over [5m]" in p for p in found) and any("no unit" in p for p in found), found
    assert problems({**board, "panels": board["panels"][:1] * 2}) != []  # repeated ids


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    rules = []
    for name, board in boards().items():
        exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
        for index, expr in enumerate(exprs):
            substituted = expr
            for variable, value in SUBSTITUTIONS.items():
                substituted = substituted.replace(variable, value)
            rules.append({"record": f"check:{name}:{index}", "expr": substituted})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
