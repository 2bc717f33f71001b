"""The report's formats: JSON (the fixed shape pipelines read), CSV (the same columns), a rich
table for a terminal, codecarbon's emissions.csv columns, and an Impact Framework manifest."""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from typing import Any

from carbonscope.reports.data import Figures, Report
from carbonscope.version import __version__

COLUMNS = (
    "group",
    "energy_kwh",
    "emissions_location_kg",
    "emissions_market_kg",
    "embodied_kg",
    "measured_share",
)
# codecarbon 3.x's EmissionsData fields, in its emissions.csv order (tests compare them).
CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
    "ram_energy", "energy_consumed", "water_consumed", "country_name", "country_iso_code",
    "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
    "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip


def iso(unix_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def figures_json(figures: Figures, with_group: bool = True) -> dict[str, Any]:
    share = figures.measured_share
    out: dict[str, Any] = {"group": figures.group} if with_group else {}
    out |= {
        "energy_kwh": figures.energy_kwh,
        "emissions_location_kg": figures.location_g / 1000,
        "emissions_market_kg": figures.market_g / 1000,
        "embodied_kg": figures.embodied_g / 1000,
        "measured_share": share,
    }
    if figures.sci is not None:
        sci = figures.sci
        out["sci"] = {
            "E_kwh": sci.energy_kwh,
            "I_g_per_kwh": sci.intensity_g_per_kwh,
            "M_g": sci.embodied_g,
            "sci_g_per_job": sci.sci_g,
        }
    return out


def to_json(report: Report) -> dict[str, Any]:
    return {
        "since": iso(report.since),
        "until": iso(report.until),
        "group_by": report.group_by,
        "coverage_hours": report.coverage_hours,
        "gaps": [{"from": iso(a), "until": iso(b)} for a, b in report.gaps],
        "pue": report.pue,
        "rows": [figures_json(row) for row in report.rows],
        "total": figures_json(report.total, with_group=False),
    }


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for figures in (*report.rows, report.total):
        row = figures_json(figures)
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return out.getvalue()


def to_codecarbon(report: Report) -> str:
    """One emissions.csv row per group, so codecarbon's tooling reads the figures: kg and kWh
    as codecarbon writes them (emissions location-based, energy_consumed IT energy)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CODECARBON_COLUMNS, lineterminator="\n")
    writer.writeheader()
    duration = max(report.coverage_s, 0.0)
    location = report.history[-1].factors.location if report.history else ""
    for figures in report.rows:
        kg = figures.location_g / 1000
        writer.writerow(
            dict.fromkeys(CODECARBON_COLUMNS, "")
            | {
                "timestamp": iso(report.until),
                "project_name": figures.group,
                "run_id": figures.group,
                "experiment_id": f"carbonscope-report-{report.group_by}",
                "duration": duration,
                "emissions": kg,
                "emissions_rate": kg / duration if duration else 0.0,
                "energy_consumed": figures.energy_kwh,
                "country_iso_code": location,
                "os": platform.platform(),
                "python_version": platform.python_version(),
                "codecarbon_version": f"carbonscope {__version__}",
                "tracking_mode": "machine",
                "pue": figures.pue or "",
            }
        )
    return out.getvalue()


def to_impact(report: Report) -> str:
    """A Green Software Foundation Impact Framework manifest: one child per group, its
    observations (timestamp, duration, energy in kWh, carbon in gCO2e) from the node history
    (node groupings) or one per job."""
    import yaml  # noqa: PLC0415 - only for this format

    children: dict[str, Any] = {}
    if report.group_by in ("day", "month", "node"):
        for row in report.history:
            children.setdefault("node", {"inputs": []})["inputs"].append(
                {
                    "timestamp": iso(row.started_at),
                    "duration": round(row.ended_at - row.started_at, 3),
                    "energy": row.node_uj / 3.6e12,
                    "carbon": row.location_g,
                    "carbon-embodied": row.embodied_g,
                }
            )
    else:
        for job in report.jobs:
            end = job.ended_at or job.updated_at
            totals = job.totals
            children[job.job_id] = {
                "inputs": [
                    {
                        "timestamp": iso(job.started_at),
                        "duration": round(max(0.0, end - job.started_at), 3),
                        "energy": totals.energy_total_uj / 3.6e12,
                        "carbon": totals.emissions.location_g,
                        "carbon-embodied": job.totals.embodied_g,
                    }
                ]
            }
    manifest = {
        "name": f"carbonscope report by {report.group_by}",
        "description": (
            f"{iso(report.since)} to {iso(report.until)}: energy (kWh), carbon "
            "(gCO2e, location-based) and embodied carbon from the carbonscope ledger"
        ),
        "tags": {"kind": "carbonscope", "complexity": "simple"},
        "initialize": {"plugins": {}},
        "tree": {"children": children},
    }
    return str(yaml.safe_dump(manifest, sort_keys=False))


def to_table(report: Report, width: int = 100) -> Any:
    from rich.table import Table  # noqa: PLC0415 - rich only for a terminal

    table = Table(
        title=f"carbonscope report by {report.group_by}: {iso(report.since)} to "
        f"{iso(report.until)}",
        caption=_caption(report),
        width=width,
    )
    for column, justify in (
        ("group", "left"),
        ("kWh", "right"),
        ("kgCO2e location", "right"),
        ("kgCO2e market", "right"),
        ("embodied kgCO2e", "right"),
        ("measured", "right"),
        ("modelled ±", "right"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for figures in (*report.rows, report.total):
        share = figures.measured_share
        table.add_row(
            figures.group,
            f"{figures.energy_kwh:.3f}",
            f"{figures.location_g / 1000:.3f}",
            f"{figures.market_g / 1000:.3f}",
            f"{figures.embodied_g / 1000:.3f}",
            "-" if share is None else f"{share:.0%}",
            "-" if figures.modelled_uncertainty is None else f"{figures.modelled_uncertainty:.0%}",
            end_section=figures is report.rows[-1] if report.rows else False,
        )
    return table


def _caption(report: Report) -> str:
    data = to_json(report)
    pue = data["pue"]
    parts = [f"covered {report.coverage_hours:.2f} h", f"{len(report.gaps)} gap(s)"]
    if pue is not None:
        parts.append(f"PUE {pue:.2f}")
    parts += list(report.notes)
    return "; ".join(parts)


def dumps_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=2)
