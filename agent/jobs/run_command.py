"""`carbonscope job run`: run a command as a tagged job and print what it cost.

The wrapper registers itself, so the command and everything it starts are the job's, and the
command's CPU time is still counted in the interval it exits (the wrapper reaps it). Signals
sent to the wrapper are passed on to the command. When the agent is down the command runs
anyway, with a warning. The exit status is the command's (128 + N when killed by signal N).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, TextIO

from carbonscope import display
from carbonscope.client import AgentUnavailable, JobApiError, JobClient, JobClientError

FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


def _terminal_delivers_to_child() -> bool:
    """True when we are in the terminal's foreground group: the terminal already sent its
    SIGINT/SIGQUIT to the command (same group), so passing them on would double them."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def launch_problem(command: Sequence[str]) -> tuple[int, str] | None:
    """(exit status, one line) when ``command`` cannot be started, as the shell would say
    (127 not found, 126 not executable); None when it can. Checked before any job is
    registered, so a typo records no empty job."""
    program = command[0]
    path = program if "/" in program else shutil.which(program)
    if path is None or not os.path.exists(path):
        return EXIT_NOT_FOUND, f"carbonscope: {program}: command not found"
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        return EXIT_NOT_EXECUTABLE, f"carbonscope: {program}: permission denied"
    return None


def default_name(command: Sequence[str]) -> str:
    """A job's name when ``--name`` is not given: the command's basename ("python3")."""
    return os.path.basename(command[0]) or command[0]


def run_as_job(
    command: Sequence[str],
    name: str,
    tags: Mapping[str, str],
    client: JobClient,
    err: TextIO = sys.stderr,
) -> tuple[int, dict[str, Any] | None]:
    """Run ``command`` as a job; return its exit status and the job's totals (None untracked)."""
    problem = launch_problem(command)
    if problem is not None:
        code, line = problem
        print(line, file=err)
        return code, None
    job_id: str | None = None
    try:
        job_id = str(client.start(name, tags)["job_id"])  # this process: the command's parent
        print(
            f"carbonscope: job {job_id} ({name}) started; "
            f"watch it with: carbonscope jobs show {job_id}",
            file=err,
        )
    except AgentUnavailable as exc:
        print(f"carbonscope: warning: {exc}; running the command untracked", file=err)
    except JobApiError as exc:
        if exc.status == 400:
            raise
        print(f"carbonscope: warning: job not registered: {exc}; running untracked", file=err)

    returncode: int  # as Popen has it: negative N when killed by signal N
    try:
        child = subprocess.Popen(list(command))
    except FileNotFoundError:  # removed since the check above
        print(f"carbonscope: {command[0]}: command not found", file=err)
        code = returncode = EXIT_NOT_FOUND
    except PermissionError:
        print(f"carbonscope: {command[0]}: permission denied", file=err)
        code = returncode = EXIT_NOT_EXECUTABLE
    else:
        code = _wait_forwarding_signals(child)
        returncode = child.returncode

    totals = None
    if job_id is not None:
        try:
            if returncode < 0:  # killed by a signal
                totals = client.stop(job_id, signal=-returncode)
            else:
                totals = client.stop(job_id, exit_code=returncode)
        except JobClientError as exc:
            print(f"carbonscope: warning: job {job_id} could not be stopped: {exc}", file=err)
    return code, totals


def _wait_forwarding_signals(child: subprocess.Popen[bytes]) -> int:
    from_terminal = _terminal_delivers_to_child()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if from_terminal and signum in (signal.SIGINT, signal.SIGQUIT):
            return
        if child.poll() is None:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        returncode = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - returncode if returncode < 0 else returncode


def format_duration_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def summary_lines(totals: Mapping[str, Any]) -> list[str]:
    """The end-of-job summary: duration, energy by component (parts adding up to the total as
    printed), emissions, measured vs modelled. Units scale with the figures (display.py)."""
    total_j = float(totals["energy_joules_total"])
    total, parts = display.energy_parts(
        total_j, {component: float(j) for component, j in totals["energy_joules"].items()}
    )
    emissions = totals["emissions_grams"]
    measured_j, modelled_j = float(totals["measured_joules"]), float(totals["modelled_joules"])
    known = measured_j + modelled_j
    measured_pct = round(100.0 * measured_j / known) if known else 0
    breakdown = " + ".join(f"{component} {parts[component]}" for component in sorted(parts))
    return [
        f"carbonscope: job {totals['job_id']} ({totals['name']}) {totals['state']}"
        + (f" ({totals['outcome']})" if totals.get("outcome") else "")
        + f" after {format_duration_s(float(totals['duration_s']))}",
        f"  energy     {_approx(total, totals.get('uncertainty_ratio'))}"
        + (f" = {breakdown}" if len(parts) > 1 else ""),
        *_idle_line(total_j, float(totals.get("idle_energy_joules_total") or 0.0)),
        f"  emissions  {display.emissions(float(emissions['location']))} CO2e location-based, "
        f"{display.emissions(float(emissions['market']))} CO2e market-based",
        f"  source     {measured_pct}% measured, {100 - measured_pct if known else 0}% modelled",
        *_grid_line(totals.get("grid_location")),
    ]


def _approx(figure: str, uncertainty: object) -> str:
    """A figure that is (partly) a model's estimate, as "≈ 249 J (±80 %)"."""
    if not isinstance(uncertainty, int | float) or uncertainty <= 0:
        return figure
    return f"≈ {figure} (±{uncertainty:.0%})"


def _idle_line(total_j: float, idle_j: float) -> list[str]:
    """How much of the job's energy is its share of the node's idle power (jobs.idle_policy)."""
    if idle_j <= 0:
        return []
    total, parts = display.energy_parts(
        total_j, {"active": max(0.0, total_j - idle_j), "idle share": idle_j}
    )
    return [f"             {total} = {parts['active']} active + {parts['idle share']} idle share"]


def _grid_line(grid: object) -> list[str]:
    """Where the emissions were weighed, and how that place was chosen (config, cloud, ...)."""
    if not isinstance(grid, Mapping):
        return []
    return [f"  grid       {grid.get('code')} (by {grid.get('resolved_by')}: {grid.get('detail')})"]
