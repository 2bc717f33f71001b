"""The installed wheel: `carbonscope` is the only top-level name it claims, and it works from a
training repository that has its own `agent/` package (common in RL code)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PIP
from tests.daemon import Daemon
from tests.fakes.powercap import two_socket_server

pytestmark = pytest.mark.e2e


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist()}
        names = set(archive.namelist())
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    assert tops == {"carbonscope", next(t for t in tops if t.endswith(".dist-info"))}
    assert {
        "carbonscope/__init__.py",
        "carbonscope/__main__.py",
        "carbonscope/sensors/rapl.py",
        "carbonscope/exporters/prometheus/collector.py",
        "carbonscope/carbon/data/cloud_regions.csv",  # data files ship too
    } <= names
    assert b"carbonscope = carbonscope.cli:main" in entry_points


def test_track_job_from_a_repository_with_its_own_agent_package(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    # Dependencies come from the test environment's site-packages, added as a plain path: its
    # .pth files (the editable install of this checkout) are not processed from there.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    repository = tmp_path / "rl-project"
    (repository / "agent").mkdir(parents=True)
    (repository / "agent" / "__init__.py").write_text('ROLE = "the project\'s own agent"\n')
    (repository / "exporters").mkdir()
    (repository / "exporters" / "__init__.py").write_text('ROLE = "the project\'s exporters"\n')

    two_socket_server(tmp_path / "sys", with_psys=False)
    config = tmp_path / "carbonscope.toml"
    config.write_text('[agent]\ninterval = "100ms"\n[sensors]\nenable = ["rapl"]\n')
    daemon = Daemon(
        ["--config", str(config), "--sysfs-root", str(tmp_path / "sys")],
        tmp_path,
        python=str(python),
    )
    try:
        daemon.wait_ready()
        script = textwrap.dedent(
            f"""
            import time
            import agent, exporters
            import carbonscope
            from carbonscope import track_job
            assert agent.ROLE == "the project's own agent", agent.__file__
            assert exporters.ROLE == "the project's exporters", exporters.__file__
            assert carbonscope.__file__.startswith({str(venv)!r}), carbonscope.__file__
            with track_job("wheel-check", tags={{"team": "rl"}}, strict=True,
                           socket_path={str(daemon.socket)!r}) as job:
                time.sleep(0.5)
            assert job.tracked and job.energy_joules is not None, job.totals
            print("tracked", job.job_id, job.totals["name"], job.totals["tags"])
            """
        )
        result = subprocess.run(
            [str(python), "-c", script], cwd=repository, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "tracked j-" in result.stdout and "wheel-check {'team': 'rl'}" in result.stdout
        assert "wheel-check" in daemon.get("/metrics")  # the job the wheel's client registered
    finally:
        assert daemon.stop() == 0, daemon.log_text()
