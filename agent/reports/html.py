"""The HTML report: one self-contained file (no script, no network, no CDN), charts as inline
SVG, readable on screen and on paper: daily energy by component, emissions against grid
intensity, top jobs and teams, measured against modelled energy, and a coverage strip."""

from __future__ import annotations

import html
import time
from collections import defaultdict
from collections.abc import Sequence

from carbonscope.reports.data import Report
from carbonscope.reports.formats import figures_json, iso, to_json
from carbonscope.snapshot import Component
from carbonscope.units import UJ_PER_KWH
from carbonscope.version import __version__

WIDTH, HEIGHT, PAD = 720, 220, 44
COLOURS = {
    Component.CPU: "#3366cc",
    Component.DRAM: "#109618",
    Component.GPU: "#ff9900",
    Component.PLATFORM: "#990099",
}
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; color: #111; max-width: 780px; margin: 2em auto; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; } td, th { padding: 3px 6px; text-align: right; }
th:first-child, td:first-child { text-align: left; } tr.total td { font-weight: bold; }
thead th { border-bottom: 1px solid #888; } tr.total td { border-top: 1px solid #888; }
.note { color: #444; font-size: 0.9em; } svg { display: block; margin: 0.5em 0; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; }
  svg, table { break-inside: avoid; } }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _bars(
    title: str,
    labels: Sequence[str],
    stacks: dict[str, list[float]],
    colours: dict[str, str],
    unit: str,
) -> str:
    """Vertical stacked bars: one per label, one segment per stack."""
    n = max(len(labels), 1)
    top = max((sum(vals[i] for vals in stacks.values()) for i in range(len(labels))), default=0)
    top = top or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / n
    parts = [_axes(title, f"{top:.3g} {unit}")]
    for i, label in enumerate(labels):
        y = float(HEIGHT - PAD)
        for name, values in stacks.items():
            h = values[i] / top * inner_h
            if h <= 0:
                continue
            x = PAD + i * step + step * 0.15
            parts.append(
                f'<path d="M{x:.1f},{y:.1f}h{step * 0.7:.1f}v{-h:.1f}h{-step * 0.7:.1f}z" '
                f'fill="{colours[name]}"><title>{_e(label)} {_e(name)}: '
                f"{values[i]:.4g} {unit}</title></path>"
            )
            y -= h
        if n <= 16 or i % max(1, n // 8) == 0:
            parts.append(
                f'<text x="{PAD + (i + 0.5) * step:.1f}" y="{HEIGHT - PAD + 14}" '
                f'text-anchor="middle">{_e(label)}</text>'
            )
    parts.append(_legend(colours, [name for name in stacks if any(stacks[name])]))
    return _svg(title, parts)


def _axes(title: str, top_label: str) -> str:
    """The axes, the scale's top value above the axis (never cut at the left edge)."""
    return (
        f'<path d="M{PAD},{PAD}V{HEIGHT - PAD}H{WIDTH - PAD}" stroke="#666" fill="none"/>'
        f'<path d="M{PAD - 3},{PAD}h6" stroke="#666"/>'
        f'<text x="{PAD + 6}" y="{PAD - 3}">{_e(top_label)}</text>'
        f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end">0</text>'
    )


def _legend(colours: dict[str, str], names: Sequence[str]) -> str:
    out = []
    x = float(PAD)
    for name in names:
        out.append(
            f'<path d="M{x},{PAD - 24}h10v10h-10z" fill="{colours[name]}"/>'
            f'<text x="{x + 14}" y="{PAD - 15}">{_e(name)}</text>'
        )
        x += 30 + 6.5 * len(name)  # about a character's width at 11 px
    return "".join(out)


def _svg(title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_e(title)}">'
        + "".join(parts)
        + "</svg>"
    )


def _line(
    points: list[tuple[float, float] | None], x0: float, x1: float, top: float, colour: str
) -> str:
    """A polyline; None breaks it (a gap)."""
    if not points or x1 <= x0:
        return ""
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    path, move = [], True
    for point in points:
        if point is None:
            move = True
            continue
        t, v = point
        x = PAD + (t - x0) / (x1 - x0) * inner_w
        y = HEIGHT - PAD - (v / (top or 1.0)) * inner_h
        path.append(f"{'M' if move else 'L'}{x:.1f},{y:.1f}")
        move = False
    return f'<path d="{"".join(path)}" stroke="{colour}" stroke-width="1.6" fill="none"/>'


def _emissions_chart(report: Report) -> str:
    # per history row: its emissions as a rate (g per hour) and the intensity in force; a
    # gap between rows breaks both lines
    emissions: list[tuple[float, float] | None] = []
    intensity: list[tuple[float, float] | None] = []
    previous_end = None
    for row in report.history:
        span = max(row.ended_at - row.started_at, 1e-9)
        if previous_end is not None and row.started_at > previous_end + 1.0:
            emissions.append(None)
            intensity.append(None)
        middle = (row.started_at + row.ended_at) / 2
        emissions.append((middle, row.location_g / span * 3600))
        intensity.append((middle, row.factors.g_per_kwh))
        previous_end = row.ended_at
    x0, x1 = report.since, report.until
    top_e = max((p[1] for p in emissions if p is not None), default=0.0)
    top_i = max((p[1] for p in intensity if p is not None), default=0.0)
    parts = [
        _axes("emissions", f"{top_e:.3g} gCO2e/h"),
        f'<text x="{WIDTH - PAD}" y="{PAD + 4}" text-anchor="end">grid {top_i:.0f} g/kWh</text>',
        _line(emissions, x0, x1, top_e, "#cc3300"),
        _line(intensity, x0, x1, top_i, "#3366cc"),
        _legend({"emissions (location) per hour": "#cc3300", "grid intensity": "#3366cc"},
                ["emissions (location) per hour", "grid intensity"]),
    ]  # fmt: skip
    return _svg("Emissions against grid intensity", parts)


def _coverage_strip(report: Report) -> str:
    x0, x1 = report.since, report.until
    span = (x1 - x0) or 1.0
    inner_w = WIDTH - 2 * PAD

    def x(t: float) -> float:
        return PAD + max(0.0, min(1.0, (t - x0) / span)) * inner_w

    parts = [
        f'<path d="M{PAD},20h{inner_w}v24h{-inner_w}z" fill="#2ca02c">'
        "<title>recorded</title></path>"
    ]
    for a, b in report.gaps:
        parts.append(
            f'<path d="M{x(a):.1f},20H{max(x(b), x(a) + 1):.1f}v24H{x(a):.1f}z" fill="#d62728">'
            f"<title>gap {iso(a)} to {iso(b)}</title></path>"
        )
    parts.append(f'<text x="{PAD}" y="60">{_e(iso(x0))}</text>')
    parts.append(f'<text x="{WIDTH - PAD}" y="60" text-anchor="end">{_e(iso(x1))}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="70" '
        f'viewBox="0 0 {WIDTH} 70" role="img" aria-label="coverage">{"".join(parts)}</svg>'
    )


def _daily_energy(report: Report) -> str:
    days: dict[str, dict[Component, float]] = defaultdict(lambda: defaultdict(float))
    for row in report.history:
        day = time.strftime("%m-%d", time.gmtime(row.started_at))
        for component, uj in row.component_uj.items():
            days[day][component] += uj / UJ_PER_KWH
    labels = sorted(days)
    stacks = {c.value: [days[d].get(c, 0.0) for d in labels] for c in COLOURS}
    colours = {c.value: colour for c, colour in COLOURS.items()}
    return _bars("Daily energy by component", labels, stacks, colours, "kWh")


def _top(report: Report, key: str | None, title: str) -> str:
    totals: dict[str, float] = defaultdict(float)
    for job in report.jobs:
        name = job.name if key is None else dict(job.tags).get(key, "(none)")
        totals[name] += job.totals.energy_total_uj / UJ_PER_KWH
    top = sorted(totals.items(), key=lambda item: -item[1])[:10]
    if not top:
        return f"<p class='note'>{_e(title)}: no jobs in the window.</p>"
    labels = [name[:14] for name, _ in top]
    return _bars(title, labels, {"kWh": [v for _, v in top]}, {"kWh": "#3366cc"}, "kWh")


def _measured(report: Report) -> str:
    total = report.total
    stacks = {
        "measured": [total.measured_uj / UJ_PER_KWH],
        "modelled": [total.modelled_uj / UJ_PER_KWH],
    }
    colours = {"measured": "#2ca02c", "modelled": "#ff7f0e"}
    return _bars("Measured against modelled energy", ["node"], stacks, colours, "kWh")


def to_html(report: Report) -> str:
    data = to_json(report)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(cell)}</td>"
            for cell in (
                figures["group"],
                f"{figures['energy_kwh']:.3f}",
                f"{figures['emissions_location_kg']:.3f}",
                f"{figures['emissions_market_kg']:.3f}",
                f"{figures['embodied_kg']:.3f}",
                "-" if figures["measured_share"] is None else f"{figures['measured_share']:.0%}",
            )
        )
        + "</tr>"
        for figures in data["rows"]
    )
    total = figures_json(report.total)
    share = total["measured_share"]
    pue = data["pue"]
    gaps = "".join(f"<li>{_e(g['from'])} to {_e(g['until'])}</li>" for g in data["gaps"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>carbonscope report {_e(data["since"])} to {_e(data["until"])}</title>
<style>{CSS}</style></head><body>
<h1>carbonscope report</h1>
<p>{_e(data["since"])} to {_e(data["until"])}, by {_e(report.group_by)}; covered
{data["coverage_hours"]:.2f} h, {len(data["gaps"])} gap(s); PUE
{"-" if pue is None else f"{pue:.2f}"}. Scope 2 location-based and market-based emissions
side by side; embodied emissions (Scope 3) apart.</p>
<table><thead><tr><th>{_e(report.group_by)}</th><th>kWh</th><th>kgCO2e location</th>
<th>kgCO2e market</th><th>embodied kgCO2e</th><th>measured</th></tr></thead><tbody>{rows}
<tr class="total"><td>total</td><td>{total["energy_kwh"]:.3f}</td>
<td>{total["emissions_location_kg"]:.3f}</td><td>{total["emissions_market_kg"]:.3f}</td>
<td>{total["embodied_kg"]:.3f}</td><td>{"-" if share is None else f"{share:.0%}"}</td></tr>
</tbody></table>
<h2>Coverage</h2>{_coverage_strip(report)}
<ul class="note">{gaps or "<li>no gap: the agent recorded the whole window</li>"}</ul>
<h2>Daily energy by component</h2>{_daily_energy(report)}
<h2>Emissions against grid intensity</h2>{_emissions_chart(report)}
<h2>Top jobs</h2>{_top(report, None, "Top jobs by energy")}
<h2>Top teams</h2>{_top(report, "team", "Top teams by energy (tag team)")}
<h2>Measured against modelled</h2>{_measured(report)}
<p class="note">Energy is the node's IT energy; emissions are IT energy x PUE x the grid
intensity in force at each sample. Gaps are periods no agent recorded: not zeros, not
interpolated. carbonscope {__version__}.</p>
</body></html>
"""
