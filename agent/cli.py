"""The `carbonscope` command line. Exit codes: 0 success, 1 runtime failure, 2 usage/config."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from carbonscope.config import load_config
from carbonscope.durations import parse_duration
from carbonscope.errors import CarbonscopeError, ConfigError
from carbonscope.report_command import report
from carbonscope.service_commands import install_service, uninstall_service
from carbonscope.version import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from carbonscope.probe import ProbeResult

EXIT_RUNTIME = 1
EXIT_USAGE = 2

_path = click.Path(path_type=Path)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _duration_flag(value: str | None) -> float | str | None:
    """Durations from flags are validated by the config layer, which names the flag."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="carbonscope")
def cli() -> None:
    """Energy and carbon telemetry for Linux servers, as Prometheus metrics."""


@cli.command()
@click.option("--config", "config_path", type=_path, help="TOML config file.")
@click.option("--listen", help="HOST:PORT for /metrics (default 0.0.0.0:9377).")
@click.option("--interval", help='Sampling period, e.g. "1s", "500ms" (50ms..60s).')
@click.option("--sysfs-root", type=_path, help="Where sysfs is mounted (tests, containers).")
@click.option("--procfs-root", type=_path, help="Where procfs is mounted.")
@click.option("--state-dir", type=_path, help="Directory for persistent state.")
@click.option(
    "--web-config-file", type=_path, help="TLS and basic auth for /metrics (exporter-toolkit)."
)
def run(
    config_path: Path | None,
    listen: str | None,
    interval: str | None,
    sysfs_root: Path | None,
    procfs_root: Path | None,
    state_dir: Path | None,
    web_config_file: Path | None,
) -> None:
    """Run the agent in the foreground (systemd Type=notify aware)."""
    from carbonscope.daemon.runner import run_daemon

    loaded = load_config(
        config_path,
        flags={
            "agent.listen": listen,
            "agent.interval": _duration_flag(interval),
            "agent.sysfs_root": sysfs_root,
            "agent.procfs_root": procfs_root,
            "agent.state_dir": state_dir,
            "agent.web_config_file": web_config_file,
        },
    )
    _setup_logging(loaded.config.agent.log_level)
    log = logging.getLogger(__name__)
    log.info("configuration: %s", loaded.path or "built-in defaults")
    for warning in loaded.warnings:
        log.warning("%s", warning)
    sys.exit(run_daemon(loaded))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--config", "config_path", type=_path, help="TOML config file.")
@click.option("--sysfs-root", type=_path, help="Where sysfs is mounted.")
@click.option("--procfs-root", type=_path, help="Where procfs is mounted.")
def probe(
    as_json: bool, config_path: Path | None, sysfs_root: Path | None, procfs_root: Path | None
) -> None:
    """List every power source looked for, its status, reason and one reading."""
    from carbonscope.probe import run_probe

    loaded = load_config(
        config_path, flags={"agent.sysfs_root": sysfs_root, "agent.procfs_root": procfs_root}
    )
    _setup_logging("error")
    result = run_probe(loaded.config)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        from rich.console import Console  # rich: only for a terminal
        from rich.table import Table

        console = Console()
        table = Table(title="carbonscope probe: power sources")
        for column in ("source", "component", "device", "status", "power", "used", "reason"):
            table.add_column(column, overflow="fold", no_wrap=column in ("status", "power"))
        for row in result.rows:
            power = f"{row.power_watts:.2f} W" if row.power_watts is not None else "-"
            if row.uncertainty_ratio is not None and row.power_watts is not None:
                power = f"≈ {power} (±{row.uncertainty_ratio:.0%})"  # a model's estimate
            table.add_row(
                row.source,
                row.component,
                row.device,
                row.status,
                power,
                "yes" if row.used else "no",
                row.reason,
            )
        console.print(table)
        if result.gpus:
            gpu_table = Table(title="GPUs")
            for column in ("device", "model", "uuid", "energy", "power", "limit", "MIG"):
                gpu_table.add_column(column, overflow="fold")
            power_of = {row.device: row.power_watts for row in result.rows if row.source == "nvml"}
            for gpu in result.gpus:
                gpu_power = power_of.get(gpu.device)
                gpu_table.add_row(
                    gpu.device,
                    gpu.model,
                    gpu.uuid,
                    gpu.energy_method,
                    f"{gpu_power:.1f} W" if gpu_power is not None else "-",
                    f"{gpu.power_limit_w:.0f} W" if gpu.power_limit_w is not None else "-",
                    str(len(gpu.mig_instances)) if gpu.mig_instances else "off",
                )
            console.print(gpu_table)
        for source, lines in result.details.items():
            for line in lines:
                console.print(f"[dim]{source}:[/dim] {line}")
        console.print(result.node_energy_text, markup=False)
        _print_grid(console, result)
    sys.exit(0 if result.any_working else EXIT_RUNTIME)


def _age_text(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _print_grid(console: Console, result: ProbeResult) -> None:
    for value in (result.intensity, result.marginal):
        if value is not None:
            console.print(
                f"grid: {value.location} ({value.resolved_by}: {value.detail}) "
                f"{value.g_per_kwh:.1f} gCO2e/kWh {value.signal}, "
                f"provider {value.provider}, age {_age_text(value.age_s)}, "
                f"emission factor {value.emission_factor_type}",
                markup=False,
            )
    console.print(f"PUE {result.pue:g}")
    host = result.host
    if host is not None:
        memory = f"{host.memory_total_bytes / 1024**3:.1f} GiB" if host.memory_total_bytes else "?"
        console.print(
            f"host: {host.logical_cpus or '?'} logical CPUs ({host.physical_cores or '?'} cores), "
            f"{memory} memory",
            markup=False,
        )
    feed = result.feed
    if feed is None:
        return
    last = feed.last_value
    newest = (
        f"{last.g_per_kwh:.1f} gCO2e/kWh {last.signal} for {last.location}, "
        f"age {_age_text(last.age_s)}"
        if last
        else "none"
    )
    console.print(
        f"provider {feed.provider}: {feed.state} ({'up' if feed.up else 'down'}); "
        f"last value: {newest}; last error: {feed.last_error or 'none'}",
        markup=False,
    )


@cli.group()
def config() -> None:
    """Configuration helpers."""


@config.command("check")
@click.argument("file", type=_path, required=False)
def config_check(file: Path | None) -> None:
    """Validate a config file (default: the one `run` would use)."""
    loaded = load_config(file)
    for warning in loaded.warnings:
        click.echo(f"carbonscope: warning: {warning}", err=True)
    click.echo(f"{loaded.path or 'built-in defaults'}: OK")


def _tag_pairs(values: tuple[str, ...]) -> dict[str, str]:
    from carbonscope.jobs.validation import JobRequestError, validate_tags

    tags: dict[str, str] = {}
    for value in values:
        key, sep, tag_value = value.partition("=")
        if not sep:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--tag")
        tags[key] = tag_value
    try:
        validate_tags(tags)
    except JobRequestError as exc:
        raise click.BadParameter(str(exc), param_hint="--tag") from None
    return tags


@cli.group()
def job() -> None:
    """Run a command as a tagged job."""


@job.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--name", help="Job name (shown as job_name); default: the command's name.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag; repeatable.")
@click.option("--socket", "socket_path", type=_path, help="Job API socket of the agent.")
@click.option("--json", "as_json", is_flag=True, help="Print the totals as JSON at the end.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def job_run(
    name: str | None,
    tags: tuple[str, ...],
    socket_path: Path | None,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as a job; print its energy and emissions; exit with its status.

    carbonscope job run --name bert --tag team=nlp -- python train.py
    """
    from carbonscope.client import JobApiError, JobClient
    from carbonscope.jobs.run_command import default_name, run_as_job, summary_lines
    from carbonscope.jobs.validation import JobRequestError, validate_name

    name = name or default_name(command)
    try:
        validate_name(name)
    except JobRequestError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    try:
        code, totals = run_as_job(command, name, _tag_pairs(tags), JobClient(socket_path))
    except JobApiError as exc:
        raise click.UsageError(f"the agent refused the job: {exc}") from None
    if totals is not None:
        if as_json:
            click.echo(json.dumps(totals, indent=2), err=True)
        else:
            for line in summary_lines(totals):
                click.echo(line, err=True)
    sys.exit(code)


@cli.group(invoke_without_command=True)
@click.pass_context
def jobs(ctx: click.Context) -> None:
    """The job ledger: `jobs list` (the default) and `jobs show ID`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(jobs_list)


_socket_option = click.option(
    "--socket", "socket_path", type=_path, help="Job API socket of the agent."
)
_state_dir_option = click.option(
    "--state-dir", type=_path, help="Read the ledger here when the agent is not running."
)


def _ledger_records(
    socket_path: Path | None, state_dir: Path | None, job_id: str | None, limit: int
) -> list[dict[str, object]]:
    """From the agent (live totals); from the ledger file when the agent is down."""
    import time

    from carbonscope.client import AgentUnavailable, JobApiError, JobClient
    from carbonscope.ledger import LEDGER_FILE_NAME, JobLedger

    client = JobClient(socket_path)
    try:
        return [client.get(job_id)] if job_id else client.list(limit)
    except JobApiError as exc:
        raise CarbonscopeError(str(exc)) from None
    except AgentUnavailable as exc:
        directory = state_dir or load_config().state_dir
        ledger = JobLedger(directory / LEDGER_FILE_NAME, read_only=True)
        click.echo(f"carbonscope: {exc}; reading {ledger.path}", err=True)
        # The API's visibility rule, also for a reader of the file: root sees every job,
        # anyone else only their own.
        uid = None if os.geteuid() == 0 else os.geteuid()
        try:
            if job_id:
                records = [r for r in [ledger.get(job_id)] if r and uid in (None, r.uid)]
            else:
                records = ledger.recent(limit, uid=uid)
        finally:
            ledger.close()
        if job_id and not records:
            raise CarbonscopeError(f"no such job: {job_id}") from None
        return [record.to_json(time.time()) for record in records]


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@_socket_option
@_state_dir_option
def jobs_list(
    as_json: bool = False,
    limit: int = 50,
    socket_path: Path | None = None,
    state_dir: Path | None = None,
) -> None:
    """Recent jobs, newest first, with their energy and emissions."""
    records = _ledger_records(socket_path, state_dir, None, limit)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    from rich.console import Console  # rich: only for a terminal

    from carbonscope.terminal import jobs_table

    console = Console()
    console.print(jobs_table(records, console.width))


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_socket_option
@_state_dir_option
def jobs_show(job_id: str, as_json: bool, socket_path: Path | None, state_dir: Path | None) -> None:
    """One job's record and totals."""
    from carbonscope.jobs.run_command import summary_lines

    record = _ledger_records(socket_path, state_dir, job_id, 1)[0]
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    for line in summary_lines(record):
        click.echo(line)
    from carbonscope.terminal import record_fields

    for key, value in record_fields(record):
        click.echo(f"  {key:<10} {value}")


cli.add_command(install_service)
cli.add_command(report)
cli.add_command(uninstall_service)


def main() -> None:
    try:
        cli.main(prog_name="carbonscope", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        sys.exit(130)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"carbonscope: {problem}", err=True)
        sys.exit(EXIT_USAGE)
    except CarbonscopeError as exc:
        click.echo(f"carbonscope: error: {exc}", err=True)
        sys.exit(EXIT_RUNTIME)
