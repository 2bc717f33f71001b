"""The shipped Prometheus configuration, recording rules and alerts (deploy/prometheus):
promtool finds nothing to say, every rule's promtool unit test passes, and every alert is
tested firing and not firing and has its runbook section in docs/alerts.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
UNIT_TESTS = PROMETHEUS / "tests" / "carbonscope-rules.test.yml"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def rules(kind: str) -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [rule for rule in group["rules"] if kind in rule]
    return found


def test_promtool_checks_the_rules_and_the_example_config_clean() -> None:
    checked = promtool("check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "WARNING" not in checked.stdout + checked.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_rule_passes_its_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_rule_is_unit_tested_and_every_alert_both_ways() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    exprs = [case["expr"] for test in tests for case in test.get("promql_expr_test", [])]
    for rule in rules("record"):
        name = rule["record"]
        assert any(re.search(rf"\b{re.escape(name)}\b", e) for e in exprs), f"{name}: untested"
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for rule in rules("alert"):
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} always fires"


def test_every_alert_says_what_is_wrong_and_how_to_fix_it() -> None:
    runbook = (REPO / "docs" / "alerts.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", runbook, flags=re.M)
    }
    for rule in rules("alert"):
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        anchor = annotations["runbook_url"].removeprefix("docs/alerts.md#")
        assert anchor == rule["alert"].lower() and anchor in anchors, (anchor, sorted(anchors))


def test_the_fleet_queries_in_the_docs_parse(tmp_path: Path) -> None:
    """docs/reports.md's PromQL, each line of its promql blocks, parses (promtool)."""
    text = (REPO / "docs" / "reports.md").read_text()
    exprs = [
        line.strip()
        for block in re.findall(r"```promql\n(.*?)```", text, flags=re.S)
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(exprs) >= 7
    rules = [{"record": f"docs:reports:{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "reports.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "reports", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_promql_of_docs_deploy_parses(tmp_path: Path) -> None:
    """docs/deploy.md's PromQL blocks (the pod-name join), each block one expression."""
    text = (REPO / "docs" / "deploy.md").read_text()
    exprs = [block.strip() for block in re.findall(r"```promql\n(.*?)```", text, flags=re.S)]
    assert exprs
    rules = [{"record": f"docs:deploy:{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "deploy", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
