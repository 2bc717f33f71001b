"""`carbonscope report`: figures for climate disclosure from the ledger (agent/reports/)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click

from carbonscope.durations import parse_duration

FORMATS = ("table", "csv", "json", "html", "codecarbon", "impact")


def parse_time(value: str, now: float) -> float:
    """ "now", an ISO date or date-time (UTC unless it says otherwise), or a duration ago."""
    text = value.strip()
    if text == "now":
        return now
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - parse_duration(text)
        except ValueError:
            raise click.BadParameter(
                f"{value!r}: expected now, a date (2026-11-01), a date-time "
                "(2026-11-01T08:00:00Z) or a duration ago (30d, 12h)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _by(value: str) -> str:
    if value in ("job", "user", "day", "month", "node") or (
        value.startswith("tag:") and len(value) > 4
    ):
        return value
    raise click.BadParameter(f"{value!r}: one of job, user, tag:KEY, day, month, node")


@click.command("report")
@click.option("--since", default="30d", show_default=True, help="Start: date, date-time or 30d.")
@click.option("--until", default="now", show_default=True, help="End: date, date-time or now.")
@click.option(
    "--by", "group_by", default="day", show_default=True, help="job|user|tag:KEY|day|month|node"
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where the ledger is.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to a file.")
def report(
    since: str,
    until: str,
    group_by: str,
    fmt: str,
    state_dir: Path | None,
    output: Path | None,
) -> None:
    """Energy, Scope 2 emissions (location and market) and embodied emissions from the
    ledger, read-only, whether the agent runs or not."""
    from carbonscope.config import load_config
    from carbonscope.ledger import LEDGER_FILE_NAME, JobLedger
    from carbonscope.reports import formats
    from carbonscope.reports.data import build_report

    now = time.time()
    start, end = parse_time(since, now), parse_time(until, now)
    if end <= start:
        raise click.BadParameter(f"--until ({until}) is not after --since ({since})")
    by = _by(group_by)
    directory = state_dir or load_config().state_dir
    ledger = JobLedger(directory / LEDGER_FILE_NAME, read_only=True)
    try:
        built = build_report(
            ledger.history(start, end), ledger.jobs_between(start, end), start, min(end, now), by
        )
    finally:
        ledger.close()
    if fmt == "table":
        from rich.console import Console

        console = Console(file=output.open("w") if output else None)
        console.print(formats.to_table(built, width=min(console.width, 120)))
        return
    if fmt == "html":
        from carbonscope.reports.html import to_html

        text = to_html(built)
    else:
        text = {
            "csv": formats.to_csv,
            "json": lambda r: formats.dumps_json(r) + "\n",
            "codecarbon": formats.to_codecarbon,
            "impact": formats.to_impact,
        }[fmt](built)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
