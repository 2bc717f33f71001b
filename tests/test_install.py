"""`carbonscope install-service` / `uninstall-service` in a throw-away root (--destdir): every
file where docs/deploy.md says, with its mode; the installed unit verifies and scores ≤ 2.0;
the shipped config is every key, commented, at its default; and why CAP_DAC_READ_SEARCH
survives a RAPL module reload where a chmod does not."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from carbonscope.config.schema import Config
from carbonscope.installer import InstallError, Layout, install, uninstall
from tests.conftest import REPO, require_tool, unavailable
from tests.fakes.powercap import FakePowercap

SHIPPED_CONFIG = REPO / "deploy/config/carbonscope.toml"


def carbonscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbonscope", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.e2e
def test_install_and_uninstall_in_a_throwaway_root(wheel: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    install = (
        "install-service",
        "--destdir",
        str(root),
        "--package",
        str(wheel),
        "--pip-arg=--no-deps",  # the test's own dependencies: no download
        "--pip-arg=--no-index",
    )
    done = carbonscope(*install)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not starting the service (staged or --no-start)" in done.stdout

    venv = root / "opt/carbonscope"
    assert os.access(venv / "bin/carbonscope", os.X_OK)
    unit = root / "etc/systemd/system/carbonscope.service"
    assert mode(unit) == 0o644
    assert "ExecStart=/opt/carbonscope/bin/carbonscope run\n" in unit.read_text()
    config = root / "etc/carbonscope/carbonscope.toml"
    assert mode(config) == 0o644 and mode(config.parent) == 0o755
    assert config.read_text() == SHIPPED_CONFIG.read_text()
    assert (root / "usr/share/doc/carbonscope/README.md").read_text() == (
        REPO / "README.md"
    ).read_text()
    link = root / "usr/local/bin/carbonscope"
    assert link.is_symlink() and os.readlink(link) == "/opt/carbonscope/bin/carbonscope"
    # the files install-service reads ship inside the wheel, not only in this checkout
    site = next(venv.glob("lib/python3*/site-packages/carbonscope/shipped"))
    assert (site / "systemd/carbonscope.service").is_file()

    # The installed unit, its ExecStart mapped into the staging root (verify checks that the
    # binary exists; the rest is the installed file byte for byte).
    analyze = require_tool("systemd-analyze")
    checked = tmp_path / "carbonscope.service"
    checked.write_text(unit.read_text().replace("/opt/carbonscope/bin/", f"{venv}/bin/"))
    verify = subprocess.run([analyze, "verify", str(checked)], capture_output=True, text=True)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(checked)],
        capture_output=True,
        text=True,
    )
    assert security.returncode == 0, security.stdout[-1500:] + security.stderr
    score = re.search(
        r"Overall exposure level for carbonscope.service: (\d+\.\d+)", security.stdout
    )
    assert score is not None and float(score.group(1)) <= 2.0

    # An operator's edits survive a reinstall (an upgrade).
    config.write_text('[agent]\ninterval = "2s"\n')
    again = carbonscope(*install)
    assert again.returncode == 0 and "kept the existing" in again.stdout
    assert config.read_text() == '[agent]\ninterval = "2s"\n'

    # The ledger lives where StateDirectory with DynamicUser puts it.
    state = root / "var/lib/private/carbonscope"
    state.mkdir(parents=True)
    (state / "ledger.sqlite").write_bytes(b"jobs")
    (root / "var/lib/carbonscope").symlink_to("private/carbonscope")
    removed = carbonscope("uninstall-service", "--destdir", str(root))
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists() and not venv.exists() and not link.is_symlink()
    assert not (root / "usr/share/doc/carbonscope").exists()
    assert config.exists() and (state / "ledger.sqlite").read_bytes() == b"jobs"
    assert "kept" in removed.stdout and "--purge" in removed.stdout
    purged = carbonscope("uninstall-service", "--destdir", str(root), "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not config.parent.exists() and not state.exists()
    assert not (root / "var/lib/carbonscope").is_symlink()


def test_installing_for_real_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not staged and not root: refused before anything is written (the suite runs as root
    in CI, so the user id is what the test sets)."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for step in (lambda: install(Layout(), "nothing"), lambda: uninstall(Layout())):
        with pytest.raises(InstallError, match="needs root: run it with sudo"):
            step()


def keys_of(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= keys_of(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_the_shipped_config_is_every_key_commented_at_its_default() -> None:
    text = SHIPPED_CONFIG.read_text()
    assert Config.model_validate(tomllib.loads(text)) == Config()  # as shipped: all defaults
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", text)
    values = tomllib.loads(uncommented)
    assert Config.model_validate(values) == Config()  # every value shown is the default

    def flat(table: dict[str, object], prefix: str = "") -> set[str]:
        found = set()
        for key, value in table.items():
            if isinstance(value, dict):
                found |= flat(value, f"{prefix}{key}.")
            else:
                found.add(prefix + key)
        return found

    assert flat(values) == keys_of(Config)
    # and it is the block docs/configuration.md documents, key for key
    docs = (REPO / "docs/configuration.md").read_text().split("```toml\n", 1)[1]
    documented = re.sub(r"(?m)^# (\w+ = )", r"\1", docs.split("```", 1)[0])
    assert flat(tomllib.loads(documented)) == flat(values)


def test_cap_dac_read_search_survives_a_rapl_module_reload(request: pytest.FixtureRequest) -> None:
    """Why the unit uses a capability: `modprobe -r intel_rapl_common && modprobe
    intel_rapl_common` destroys the zones and creates them again, energy_uj root-only (0400),
    so a chmod (or a udev rule that ran once) is lost, while CAP_DAC_READ_SEARCH bypasses the
    file's read permission whatever its mode. Here: an unprivileged user with only that
    capability (ambient, as the unit's AmbientCapabilities gives it) before and after the
    zones are recreated; and the same user without it."""
    setpriv = require_tool("setpriv")
    if os.geteuid() != 0:
        unavailable("changing to an unprivileged user with a capability needs root")
    # pytest's own directories are 0700: the tree goes where another user can walk to it
    base = Path(tempfile.mkdtemp(prefix="carbonscope-rapl-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    base.chmod(0o755)
    sysfs = base / "sys"
    tree = FakePowercap(sysfs)
    zone = tree.add_zone((0,), "package-0", energy_uj=12_345)
    energy = zone.path / "energy_uj"

    def read_as_nobody(with_capability: bool) -> subprocess.CompletedProcess[str]:
        caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        argv += caps if with_capability else ["--inh-caps=-all"]
        return subprocess.run(
            [*argv, "cat", str(energy)], capture_output=True, text=True, timeout=30
        )

    assert mode(energy) == 0o400
    assert read_as_nobody(True).stdout.strip() == "12345"
    assert read_as_nobody(False).returncode != 0  # root-only, as on the host

    # A chmod works until the module is reloaded ...
    energy.chmod(0o444)
    assert read_as_nobody(False).stdout.strip() == "12345"
    # ... which removes the zones and creates them again, root-only.
    shutil.rmtree(tree.devices_dir)
    shutil.rmtree(tree.class_dir)
    tree = FakePowercap(sysfs)
    zone = tree.add_zone((0,), "package-0", energy_uj=67_890)
    assert mode(zone.path / "energy_uj") == 0o400
    assert read_as_nobody(False).returncode != 0  # the chmod is gone
    assert read_as_nobody(True).stdout.strip() == "67890"  # the capability is not
