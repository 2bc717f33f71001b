"""The `carbonscope` command line. Exit codes: 0 success, 1 runtime failure, 2 usage/config."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from agent import __version__
from agent.config import load_config
from agent.config.durations import parse_duration
from agent.errors import CarbonscopeError, ConfigError

EXIT_RUNTIME = 1
EXIT_USAGE = 2

_path = click.Path(path_type=Path)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))


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
def run(
    config_path: Path | None,
    listen: str | None,
    interval: str | None,
    sysfs_root: Path | None,
    procfs_root: Path | None,
    state_dir: Path | None,
) -> None:
    """Run the agent in the foreground (systemd Type=notify aware)."""
    from agent.daemon.runner import run_daemon

    loaded = load_config(
        config_path,
        flags={
            "agent.listen": listen,
            "agent.interval": _duration_flag(interval),
            "agent.sysfs_root": sysfs_root,
            "agent.procfs_root": procfs_root,
            "agent.state_dir": state_dir,
        },
    )
    _setup_logging(loaded.config.agent.log_level)
    logging.getLogger(__name__).info("configuration: %s", loaded.path or "built-in defaults")
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
    from agent.probe import run_probe

    loaded = load_config(
        config_path, flags={"agent.sysfs_root": sysfs_root, "agent.procfs_root": procfs_root}
    )
    _setup_logging("error")
    result = run_probe(loaded.config)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        console = Console()
        table = Table(title="carbonscope probe: power sources")
        for column in ("source", "component", "device", "status", "power", "used", "reason"):
            table.add_column(column, overflow="fold")
        for row in result.rows:
            power = f"{row.power_watts:.2f} W" if row.power_watts is not None else "-"
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
        intensity = result.intensity
        console.print(
            f"grid: {intensity.location} ({intensity.resolved_by}: {intensity.detail}) "
            f"{intensity.g_per_kwh:.1f} gCO2e/kWh {intensity.signal}, "
            f"provider {intensity.provider}, PUE {result.pue:g}"
        )
    sys.exit(0 if result.any_working else EXIT_RUNTIME)


@cli.group()
def config() -> None:
    """Configuration helpers."""


@config.command("check")
@click.argument("file", type=_path, required=False)
def config_check(file: Path | None) -> None:
    """Validate a config file (default: the one `run` would use)."""
    loaded = load_config(file)
    click.echo(f"{loaded.path or 'built-in defaults'}: OK")


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
