"""Draw each dashboard from real data: docs/images/dashboards/<board>.svg.

`make dashboard-pictures` runs the live test (tests/test_grafana_live.py) with
CARBONSCOPE_DASHBOARD_DATA set: a real Prometheus, scraping two real agents on fake hardware,
answers every panel's queries, and the answers are saved. This draws them where the
dashboard's JSON puts its panels: time series as lines, stats as their value, tables as rows.
It is not Grafana's rendering (no Grafana server is in this project's registries); it shows
what each panel's queries return.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path
from typing import Any

COLUMN_PX, ROW_PX, PAD = 50, 30, 6
COLOURS = ("#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0")
UNITS = {"watt": "W", "kwatth": "kWh", "massg": "g", "masskg": "kg", "percentunit": "%"}


def unit_text(unit: str) -> str:
    return (
        unit.removeprefix("suffix:").strip() if unit.startswith("suffix:") else UNITS.get(unit, "")
    )


def figure(value: float, unit: str) -> str:
    if unit == "percentunit":
        value *= 100
    magnitude = abs(value)
    text = f"{value:.3g}" if magnitude < 1e5 else f"{value:.3e}"
    suffix = unit_text(unit)
    return f"{text} {suffix}".strip()


def legend(template: str, labels: dict[str, str]) -> str:
    if not template or template == "__auto":
        shown = {k: v for k, v in labels.items() if k not in ("__name__", "instance", "job")}
        return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def draw_series(panel: dict[str, Any], x: int, y: int, w: int, h: int) -> list[str]:
    lines: list[tuple[str, list[tuple[float, float]]]] = []
    for target in panel["targets"]:
        for result in target["result"]:
            points = [(float(t), float(v)) for t, v in result.get("values", [])]
            if points:
                lines.append((legend(target["legend"], result["metric"]), points))
    if not lines:
        return [text(x + w / 2, y + h / 2, "no data", 12, anchor="middle")]
    ts = [t for _, points in lines for t, _ in points]
    vs = [v for _, points in lines for _, v in points]
    t0, t1 = min(ts), max(ts) or 1
    low, high = min(0.0, *vs), max(vs)
    high = high if high > low else low + 1
    top, bottom, left, right = y + 4, y + h - 16, x + 76, x + w - 8
    out = [
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#555"/>',
        text(left - 4, top + 8, figure(high, panel["unit"]), 9, anchor="end"),
        text(left - 4, bottom, figure(low, panel["unit"]), 9, anchor="end"),
    ]
    for index, (name, points) in enumerate(lines[: len(COLOURS)]):
        colour = COLOURS[index]
        coords = " ".join(
            f"{left + (t - t0) / ((t1 - t0) or 1) * (right - left):.1f},"
            f"{bottom - (v - low) / (high - low) * (bottom - top):.1f}"
            for t, v in points
        )
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>'
        )
        out.append(
            text(left + 4 + index * (w - 60) / min(len(lines), 4), y + h - 3, name[:28], 9, colour)
        )
    return out


def draw_stat(panel: dict[str, Any], x: int, y: int, w: int, h: int) -> list[str]:
    values = [
        (legend(target["legend"], result["metric"]), float(result["value"][1]))
        for target in panel["targets"]
        for result in target["result"]
    ]
    if not values:
        return [text(x + w / 2, y + h / 2, "no data", 12, anchor="middle")]
    out = []
    for index, (name, value) in enumerate(values[:3]):
        cx = x + (index + 0.5) * w / min(len(values), 3)
        out.append(text(cx, y + h / 2 + 6, figure(value, panel["unit"]), 20, "#7eb26d", "middle"))
        if len(values) > 1:
            out.append(text(cx, y + h - 4, name, 9, anchor="middle"))
    return out


def draw_table(panel: dict[str, Any], x: int, y: int, w: int, h: int) -> list[str]:
    rows = []
    for target in panel["targets"]:
        for result in target["result"]:
            labels = {k: v for k, v in result["metric"].items() if k not in ("__name__", "job")}
            cells = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
            rows.append(f"{cells}  {figure(float(result['value'][1]), panel['unit'])}")
    if not rows:
        return [text(x + w / 2, y + h / 2, "no data", 12, anchor="middle")]
    most = max(1, (h - 8) // 13)
    return [text(x + 6, y + 14 + i * 13, row[: w // 5], 9) for i, row in enumerate(rows[:most])]


def text(
    x: float, y: float, content: str, size: int, fill: str = "#ccc", anchor: str = "start"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" '
        f'text-anchor="{anchor}" font-family="sans-serif">{html.escape(content)}</text>'
    )


def draw(board: dict[str, Any]) -> str:
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    width, height = 24 * COLUMN_PX, bottom * ROW_PX + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="#111217"/>',
        text(PAD, 24, board["title"] + " (drawn from a live test's query results)", 16, "#fff"),
    ]
    for panel in board["panels"]:
        grid = panel["gridPos"]
        x, y = grid["x"] * COLUMN_PX + PAD, grid["y"] * ROW_PX + 36
        w, h = grid["w"] * COLUMN_PX - 2 * PAD, grid["h"] * ROW_PX - PAD
        out.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="#181b1f" stroke="#2c3235"/>'
        )
        out.append(text(x + 6, y + 14, panel["title"], 11, "#d8d9da"))
        body = {"timeseries": draw_series, "stat": draw_stat, "table": draw_table}[panel["type"]]
        out += body(panel, x, y + 18, w, h - 18)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(data: Path, target: Path) -> int:
    recorded = json.loads((data / "panels.json").read_text())
    target.mkdir(parents=True, exist_ok=True)
    for name, [board] in recorded.items():
        (target / f"{name}.svg").write_text(draw(board))
        print(f"wrote {target / f'{name}.svg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
