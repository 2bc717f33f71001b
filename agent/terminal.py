"""What `carbonscope jobs` shows a person: the jobs table and one job's key/value lines.

Figures come from display.py (scaled units, three significant figures). A number is never
split across lines: the energy and CO2e columns do not wrap, and at a narrow terminal rich
folds the text columns instead. Only the table-printing commands import this (and rich).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich import box
from rich.table import Table

from carbonscope import display
from carbonscope.jobs.run_command import format_duration_s

Record = Mapping[str, object]
TEXT_COLUMNS = ("job_id", "name", "user", "state", "started", "duration")


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float | str) else float("nan")


def _columns(width: int) -> tuple[str, ...]:
    """The text columns that fit beside the figures: all from 120 columns, without user and
    start time from 80, and without the duration below that."""
    if width >= 120:
        return TEXT_COLUMNS
    if width >= 80:
        return ("job_id", "name", "state", "duration")
    return ("job_id", "name", "state")


def jobs_table(records: Sequence[Record], width: int) -> Table:
    columns = _columns(width)
    wide = width >= 80
    table = Table(
        title="carbonscope jobs",
        box=box.HEAVY_HEAD if wide else box.SIMPLE,
        pad_edge=wide,
        collapse_padding=not wide,
    )
    for column in columns:
        if column == "name":
            table.add_column(column, overflow="fold", min_width=8)
        else:
            table.add_column(column, no_wrap=True)
    for column in ("energy", "CO2e"):  # a number is never split
        table.add_column(column, justify="right", no_wrap=True, min_width=9)
    for record in records:
        emissions = record["emissions_grams"]
        assert isinstance(emissions, Mapping)
        text = {
            "job_id": str(record["job_id"]),
            "name": str(record["name"]),
            "user": str(record["user"]),
            "state": str(record["state"]),
            "started": display.local_time(str(record["started_at"])),
            "duration": format_duration_s(_number(record["duration_s"])),
        }
        table.add_row(
            *(text[column] for column in columns),
            display.energy(_number(record["energy_joules_total"])),
            display.emissions(_number(emissions["location"])),
        )
    return table


def record_fields(record: Record) -> list[tuple[str, str]]:
    """jobs show's key/value lines: real values, "-" for none, times with their zone."""
    tags = record.get("tags") or {}
    assert isinstance(tags, Mapping)
    pids = record.get("pids") or []
    assert isinstance(pids, list)
    ended = record.get("ended_at")
    return [
        ("user", str(record["user"])),
        ("kind", str(record["kind"])),
        ("started", display.local_time(str(record["started_at"]))),
        ("ended", display.local_time(str(ended)) if ended else "- (running)"),
        ("outcome", str(record.get("outcome") or "-")),
        ("tags", ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "-"),
        ("pids", ", ".join(str(pid) for pid in pids) or "-"),
        ("cgroup", str(record.get("cgroup") or "-")),
    ]
