"""`carbonscope install-service` and `uninstall-service` (agent/installer.py does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from carbonscope.version import __version__

if TYPE_CHECKING:
    from carbonscope.installer import Layout

_path = click.Path(path_type=Path)


def _layout(destdir: Path | None, prefix: Path) -> Layout:
    from carbonscope.installer import Layout  # noqa: PLC0415 - only for these commands

    return Layout(destdir=destdir or Path("/"), prefix=prefix)


@click.command("install-service")
@click.option(
    "--package",
    default=f"carbonscope=={__version__}",
    show_default=True,
    help="What pip installs into the virtualenv: a wheel, a source tree or a requirement.",
)
@click.option("--prefix", type=_path, default=Path("/opt/carbonscope"), show_default=True)
@click.option("--destdir", type=_path, help="Stage under this root; systemd is not touched.")
@click.option("--pip-arg", "pip_args", multiple=True, help="Passed to pip install (repeatable).")
@click.option("--no-start", is_flag=True, help="Install and enable nothing: only the files.")
def install_service(
    package: str, prefix: Path, destdir: Path | None, pip_args: tuple[str, ...], no_start: bool
) -> None:
    """Install the agent as a hardened systemd service and start it (root)."""
    from carbonscope.installer import install  # noqa: PLC0415

    install(_layout(destdir, prefix), package, pip_args, start=not no_start, say=click.echo)


@click.command("uninstall-service")
@click.option("--prefix", type=_path, default=Path("/opt/carbonscope"), show_default=True)
@click.option("--destdir", type=_path, help="The staging root given to install-service.")
@click.option("--purge", is_flag=True, help="Also remove /etc/carbonscope and the job ledger.")
def uninstall_service(prefix: Path, destdir: Path | None, purge: bool) -> None:
    """Stop and remove the service; keeps the configuration and the ledger unless --purge."""
    from carbonscope.installer import uninstall  # noqa: PLC0415

    uninstall(_layout(destdir, prefix), purge=purge, say=click.echo)
