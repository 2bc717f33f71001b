"""Write carbonscope's dashboards to grafana/dashboards/*.json (`make dashboards`).

The JSON is what Grafana imports and what grafana/provisioning/ points at; it is committed, and
tests/test_dashboards.py fails when it differs from what this writes. Needs the dev extras
(grafana-foundation-sdk)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from boards import fleet, jobs, node  # noqa: E402
from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402

BOARDS = {"node": node, "fleet": fleet, "jobs": jobs}


def rendered() -> dict[str, str]:
    """Each board's JSON text, panels numbered in order (ids are unique within a board)."""
    out = {}
    for name, module in BOARDS.items():
        model: dict[str, Any] = json.loads(json.dumps(module.build().build(), cls=JSONEncoder))
        y = 0
        x = 0
        row_height = 0
        for number, panel in enumerate(model.get("panels", []), 1):
            panel["id"] = number
            panel["description"] = module.DESCRIPTIONS[panel["title"]]  # what it shows
            grid = panel["gridPos"]
            if x + grid["w"] > 24:
                x, y, row_height = 0, y + row_height, 0
            grid["x"], grid["y"] = x, y
            x += grid["w"]
            row_height = max(row_height, grid["h"])
        for variable in model.get("templating", {}).get("list", []):
            variable.pop("id", None)  # the SDK's placeholder UUID, not Grafana's field
        out[name] = json.dumps(model, indent=2, sort_keys=True) + "\n"
    return out


PANELS_BEGIN = "<!-- panels: written by grafana/generate.py -->"
PANELS_END = "<!-- end of panels -->"


def panel_listing(boards: dict[str, str]) -> str:
    """docs/grafana.md's list of every panel and its queries."""
    lines = [PANELS_BEGIN]
    for name, text in boards.items():
        model = json.loads(text)
        lines += ["", f"### {model['title']} (`grafana/dashboards/{name}.json`)", ""]
        lines += [model["description"], "", "| panel | what it shows | unit | queries |"]
        lines += ["|---|---|---|---|"]
        for panel in model["panels"]:
            unit = panel["fieldConfig"]["defaults"].get("unit", "")
            queries = "<br>".join(
                "`" + target["expr"].replace("|", "\\|") + "`" for target in panel["targets"]
            )
            lines.append(f"| {panel['title']} | {panel['description']} | {unit} | {queries} |")
    lines += ["", PANELS_END]
    return "\n".join(lines)


def with_listing(doc: str, boards: dict[str, str]) -> str:
    before, _, rest = doc.partition(PANELS_BEGIN)
    _, _, after = rest.partition(PANELS_END)
    return before + panel_listing(boards) + after


def main() -> int:
    target = HERE / "dashboards"
    target.mkdir(exist_ok=True)
    boards = rendered()
    for name, text in boards.items():
        (target / f"{name}.json").write_text(text)
        print(f"wrote {target / f'{name}.json'}")
    doc = HERE.parent / "docs" / "grafana.md"
    doc.write_text(with_listing(doc.read_text(), boards))
    print(f"wrote the panel list in {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
