"""Jobs end to end: the real daemon on fake RAPL + fake NVML, `carbonscope job run`, restarts."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carbonscope.client import JobClient, track_job
from carbonscope.procfs import read_cpu_stat, read_pid_stat
from tests.daemon import Daemon, Labels
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import two_socket_server

pytestmark = pytest.mark.e2e

JOB_RUN = (sys.executable, "-m", "carbonscope", "job", "run")


def job_run_without_agent(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`carbonscope job run ARGS` with the socket pointing where no agent listens."""
    return subprocess.run(
        [*JOB_RUN, *args],
        env={**os.environ, "CARBONSCOPE_SOCKET": str(tmp_path / "absent.sock")},
        capture_output=True,
        text=True,
        timeout=60,
    )


BUSY_CHILD = """
import pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text(str(__import__("os").getpid()))
stop = pathlib.Path(sys.argv[2])
while not stop.exists():
    for _ in range(20000):
        pass
sys.exit(3)
"""


BUSY_SECOND = """
import time
until = time.monotonic() + 1.5
while time.monotonic() < until:
    pass
"""


def series(samples: dict[tuple[str, Labels], float], name: str, **match: str) -> float:
    return sum(
        value
        for (metric, labels), value in samples.items()
        if metric == name and all(dict(labels).get(k) == v for k, v in match.items())
    )


def wait_for_file(path: Path, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def test_job_run_gets_its_cpu_share_and_its_gpu_energy(nvml_library: Path, tmp_path: Path) -> None:
    fake = FakeNvml(nvml_library, tmp_path / "nvml.state", gpus=[FakeGpu(energy_mj=10**6)])
    fake.write()
    sysfs = tmp_path / "sys"
    tree = two_socket_server(sysfs, with_psys=False)
    config = tmp_path / "carbonscope.toml"
    config.write_text(
        '[agent]\ninterval = "100ms"\n[sensors]\nenable = ["rapl", "nvml"]\n'
        '[carbon]\nlocation = "FR"\n[jobs]\npromoted_tags = ["team"]\n'
    )
    daemon = Daemon(
        ["--config", str(config), "--sysfs-root", str(sysfs)], workdir=tmp_path, env=fake.env
    )
    pid_file, stop_file = tmp_path / "child.pid", tmp_path / "child.stop"
    runner = None
    try:
        daemon.wait_ready()
        runner = subprocess.Popen(
            [
                *JOB_RUN,
                "--name",
                "e2e-train",
                "--tag",
                "team=ml",
                "--",
                sys.executable,
                "-c",
                BUSY_CHILD,
                str(pid_file),
                str(stop_file),
            ],
            env={**os.environ, "CARBONSCOPE_SOCKET": str(daemon.socket)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        child = int(wait_for_file(pid_file))
        fake.gpus[0].processes = [(child, 2 * 1024**3, 80)]
        fake.write()
        before = daemon.samples_after(3)  # the daemon has seen the process on the GPU
        procfs = Path("/proc")
        cpu_start, child_start = read_cpu_stat(procfs)[0], read_pid_stat(procfs, child)
        for _ in range(25):
            tree.zones["intel-rapl:0"].advance(5_000_000)
            tree.zones["intel-rapl:0:0"].advance(1_000_000)
            tree.zones["intel-rapl:1"].advance(4_000_000)
            fake.gpus[0].energy_mj += 30_000
            fake.write()
            time.sleep(0.1)
        after = daemon.samples_after(3)
        cpu_end, child_end = read_cpu_stat(procfs)[0], read_pid_stat(procfs, child)
        stop_file.touch()
        _out, err = runner.communicate(timeout=30)
        final = daemon.samples_after(1)
    finally:
        stop_file.touch()
        if runner is not None and runner.poll() is None:
            runner.kill()
        assert daemon.stop() == 0, daemon.log_text()

    assert runner.returncode == 3, err
    assert "carbonscope: job j-" in err and "(e2e-train) finished (exit 3) after" in err
    assert "CO2e location-based" in err and "% measured" in err
    # "  energy     750 J = cpu 700 J + gpu 50.0 J": the parts add up to the total as printed
    (energy_line,) = [line for line in err.splitlines() if line.startswith("  energy ")]
    total_text, _, parts_text = energy_line.split(maxsplit=1)[1].partition(" = ")
    total_value, unit = total_text.split()
    parts = [part.split() for part in parts_text.split(" + ")]
    assert {"cpu", "gpu"} <= {part[0] for part in parts} and {part[2] for part in parts} == {unit}
    decimals = len(total_value.partition(".")[2])
    assert round(sum(float(part[1]) for part in parts), decimals) == float(total_value)
    # "             750 J = 745 J active + 5.00 J idle share": the same total, split by origin
    lines = err.splitlines()
    idle_line = lines[lines.index(energy_line) + 1].split()
    assert idle_line[:2] == [total_value, unit] and idle_line[-2:] == ["idle", "share"]
    active_j, idle_j = float(idle_line[3]), float(idle_line[7])
    assert idle_j > 0 and round(active_j + idle_j, decimals) == float(total_value)

    [job_id] = {
        dict(labels)["job_id"] for (name, labels) in final if name == "carbonscope_job_info"
    }
    info = next(labels for (name, labels) in final if name == "carbonscope_job_info")
    assert dict(info)["job_name"] == "e2e-train" and dict(info)["tag_team"] == "ml"
    assert final[("carbonscope_job_running", (("job_id", job_id),))] == 0

    def job_energy(samples: dict[tuple[str, Labels], float], component: str) -> float:
        return series(
            samples, "carbonscope_job_energy_joules_total", job_id=job_id, component=component
        )

    # GPU: the job's process was the GPU's only process for every joule the GPU used
    assert job_energy(after, "gpu") - job_energy(before, "gpu") == pytest.approx(750.0, abs=1e-6)

    # CPU: the job's share of active CPU energy is its share of busy CPU time
    def gained(name: str, **match: str) -> float:
        return series(after, name, **match) - series(before, name, **match)

    attributed = "carbonscope_attributed_energy_joules_total"
    idle_share = "carbonscope_job_idle_energy_joules_total"
    job_idle = gained(idle_share, job_id=job_id, component="cpu")
    assert job_idle > 0  # jobs.idle_policy = reserved: it carries the idle power it held
    active = (
        gained(attributed, component="cpu", bucket="jobs")
        - job_idle
        + gained(attributed, component="cpu", bucket="system")
    )
    job_cpu = job_energy(after, "cpu") - job_energy(before, "cpu") - job_idle
    assert child_start is not None and child_end is not None
    child_ticks = child_end.own_ticks - child_start.own_ticks
    busy_ticks = cpu_end.busy - cpu_start.busy
    assert active > 0 and busy_ticks > 0
    assert job_cpu / active == pytest.approx(child_ticks / busy_ticks, abs=0.15)

    # every component's buckets sum to its energy, and to node energy over the plan
    node = final[("carbonscope_node_energy_joules_total", ())]
    buckets_total = sum(
        value
        for (name, labels), value in final.items()
        if name == attributed and dict(labels)["component"] in ("cpu", "dram", "gpu")
    )
    assert buckets_total == pytest.approx(node, abs=1e-6)
    for component in ("cpu", "dram", "gpu"):
        energy = series(final, "carbonscope_energy_joules_total", component=component)
        assert series(final, attributed, component=component) == pytest.approx(energy, abs=1e-6)
    job_grams = series(
        final, "carbonscope_job_emissions_grams_total", job_id=job_id, method="location"
    )
    assert job_grams > 0


def test_job_survives_a_daemon_sigkill_losing_at_most_one_flush_interval(
    nvml_library: Path, tmp_path: Path
) -> None:
    fake = FakeNvml(nvml_library, tmp_path / "nvml.state", gpus=[FakeGpu(energy_mj=0)])
    fake.write()
    config = tmp_path / "carbonscope.toml"
    config.write_text(
        '[agent]\ninterval = "100ms"\n[sensors]\nenable = ["nvml"]\n[jobs]\nflush = "500ms"\n'
    )
    args = ["--config", str(config)]
    sleeper = subprocess.Popen(["sleep", "300"])
    fake.gpus[0].processes = [(sleeper.pid, 1024**3, 50)]
    fake.write()
    first = Daemon(args, workdir=tmp_path, env=fake.env)
    second = None
    try:
        first.wait_ready()
        client = JobClient(first.socket)
        job_id = client.start("restart-me", {}, [sleeper.pid])["job_id"]
        first.samples_after(2)
        for _ in range(15):  # 1 J every 100 ms: 10 W
            fake.gpus[0].energy_mj += 1000
            fake.write()
            time.sleep(0.1)
        first.samples_after(1)
        live = client.get(job_id)["energy_joules"].get("gpu", 0.0)
        assert live == pytest.approx(15.0, abs=1e-6)
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL

        second = Daemon(
            args,
            workdir=tmp_path,
            env=fake.env,
            state_dir=first.state_dir,
            socket_path=first.socket,
        )
        second.wait_ready()
        resumed = client.get(job_id)
        assert resumed["state"] == "running"
        stored = resumed["energy_joules"].get("gpu", 0.0)
        assert 0 <= live - stored <= 0.5 * 10 + 1.0  # one flush interval at 10 W (+ one step)
        second.samples_after(2)
        for _ in range(10):
            fake.gpus[0].energy_mj += 1000
            fake.write()
            time.sleep(0.1)
        second.samples_after(3)
        totals = client.stop(job_id)
        assert totals["energy_joules"]["gpu"] == pytest.approx(stored + 10.0, abs=1e-6)
        assert totals["state"] == "finished"
        assert [job["job_id"] for job in client.list() if job["name"] == "restart-me"] == [job_id]
    finally:
        sleeper.kill()
        sleeper.wait()
        first.stop()
        if second is not None:
            assert second.stop() == 0, second.log_text()
    with sqlite3.connect(first.state_dir / "ledger.sqlite") as db:
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1


def test_job_run_without_an_agent_warns_and_runs_the_command(tmp_path: Path) -> None:
    result = job_run_without_agent(
        tmp_path, "--name", "offline", "--", "sh", "-c", "echo hello; exit 7"
    )
    assert result.returncode == 7
    assert result.stdout == "hello\n"
    assert "no carbonscope agent" in result.stderr and "untracked" in result.stderr


def test_job_run_passes_signals_on_and_reports_death_by_signal(tmp_path: Path) -> None:
    marker = tmp_path / "got-term"
    script = (
        "import signal, sys, time, pathlib\n"
        f"def on_term(*_): pathlib.Path({str(marker)!r}).write_text('x'); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        f"pathlib.Path({str(tmp_path / 'ready')!r}).write_text('1')\n"
        "time.sleep(60)\n"
    )
    runner = subprocess.Popen(
        [*JOB_RUN, "--name", "sig", "--", sys.executable, "-c", script],
        env={**os.environ, "CARBONSCOPE_SOCKET": str(tmp_path / "absent.sock")},
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_file(tmp_path / "ready")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 143
    assert marker.read_text() == "x"
    killed = job_run_without_agent(tmp_path, "--name", "k", "--", "sh", "-c", "kill -KILL $$")
    assert killed.returncode == 128 + signal.SIGKILL


def test_job_run_bad_tag_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    result = job_run_without_agent(
        tmp_path, "--name", "x", "--tag", "Team=1", "--", "touch", str(tmp_path / "ran")
    )
    assert result.returncode == 2
    assert "--tag" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "ran").exists()


def test_job_run_names_the_job_after_its_command_and_skips_what_cannot_start(
    tmp_path: Path,
) -> None:
    daemon = Daemon(
        ["--sysfs-root", str(tmp_path)], tmp_path, env={"CARBONSCOPE_CONFIG": "", "TZ": "UTC"}
    )
    try:
        daemon.wait_ready()

        def job_run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*JOB_RUN, *args],
                env={**os.environ, "CARBONSCOPE_SOCKET": str(daemon.socket)},
                capture_output=True,
                text=True,
                timeout=60,
            )

        ran = job_run("--", "sh", "-c", "exit 0")
        assert ran.returncode == 0, ran.stderr
        # the summary names where its emissions were weighed, and how that was chosen
        assert "\n  grid       WORLD (by default: time zone UTC names no country" in ran.stderr
        with track_job("tracked", socket_path=daemon.socket) as tracked:
            pass
        assert tracked.grid_location is not None
        assert tracked.grid_location["resolved_by"] == "default"
        (started,) = [line for line in ran.stderr.splitlines() if " started; " in line]
        job_id = started.split()[2]
        assert started == (
            f"carbonscope: job {job_id} (sh) started; watch it with: carbonscope jobs show {job_id}"
        )
        # no sensor here (an empty sysfs): the model's figures read as estimates, with their ±
        busy = job_run("--name", "busy", "--", sys.executable, "-c", BUSY_SECOND)
        assert busy.returncode == 0, busy.stderr
        assert re.search(r"\n  energy     ≈ \S+ \S?J \(±\d+%\)", busy.stderr), busy.stderr
        assert 'carbonscope_model_uncertainty_ratio{component="cpu"}' in daemon.get("/metrics")
        missing = job_run("--name", "typo", "--", "no-such-command-here", "--flag")
        assert missing.returncode == 127
        assert missing.stderr == "carbonscope: no-such-command-here: command not found\n"
        script = tmp_path / "not-executable.sh"
        script.write_text("#!/bin/sh\necho hi\n")
        denied = job_run("--", str(script))
        assert denied.returncode == 126
        assert "permission denied" in denied.stderr
        jobs = JobClient(daemon.socket).list()
        assert sorted(job["name"] for job in jobs) == ["busy", "sh", "tracked"]  # no typo job
        assert {job["name"]: job["outcome"] for job in jobs}["sh"] == "exit 0"
        killed = job_run("--name", "killed", "--", "sh", "-c", "kill -INT $$")
        assert killed.returncode == 128 + signal.SIGINT
        assert "finished (signal SIGINT) after" in killed.stderr
        outcomes = {job["name"]: job["outcome"] for job in JobClient(daemon.socket).list()}
        assert outcomes == {
            "sh": "exit 0",
            "busy": "exit 0",
            "tracked": "stopped",
            "killed": "signal SIGINT",
        }
    finally:
        assert daemon.stop() == 0
