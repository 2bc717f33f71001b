"""The state dir's filesystem fills up mid-run, then has room again: a real (tiny) tmpfs under
the real daemon. Nothing acknowledged is lost, nothing is accepted that cannot be kept, and
the node energy in the ledger is exactly the energy the daemon counted."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from carbonscope.client import JobApiError, JobClient
from carbonscope.ledger import LEDGER_FILE_NAME
from tests.daemon import Daemon
from tests.fakes.powercap import two_socket_server
from tests.tmpfs import fill, require_private_tmpfs, run_inside, seen_by, tmpfs_wrapper

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

WRITES = "carbonscope_ledger_writes_total"
OK, ERROR = ((("result", "ok"),)), ((("result", "error"),))
NODE = ("carbonscope_node_energy_joules_total", ())


_QUERY = """
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA query_only = 1")
energy = db.execute("SELECT COALESCE(SUM(energy_uj), 0) FROM intensity_periods").fetchone()[0]
jobs = dict(db.execute("SELECT name, ended_at IS NULL FROM jobs").fetchall())
print(json.dumps([energy, jobs]))
"""


def ledger_rows(pid: int, path: Path) -> tuple[int, dict[str, bool]]:
    """(node energy in the intensity periods, {job name: still running}) as stored, read in
    the daemon's own mount namespace."""
    energy_uj, jobs = json.loads(run_inside(pid, sys.executable, "-c", _QUERY, str(path)).stdout)
    return int(energy_uj), {name: bool(running) for name, running in jobs.items()}


def test_a_disk_that_fills_up_and_frees_loses_no_joule_and_no_acknowledged_job(
    tmp_path: Path,
) -> None:
    require_private_tmpfs()
    tree = two_socket_server(tmp_path / "sys", with_psys=False, with_mmio=False)
    package = tree.zones["intel-rapl:0"]
    config = tmp_path / "carbonscope.toml"
    config.write_text('[agent]\ninterval = "100ms"\n[jobs]\nflush = "200ms"\n')
    state = tmp_path / "state"
    state.mkdir()
    daemon = Daemon(
        ["--config", str(config), "--sysfs-root", str(tmp_path / "sys")],
        tmp_path,
        state_dir=state,
        wrapper=tmpfs_wrapper(state, "1m"),
    )
    try:
        daemon.wait_ready()
        inside = seen_by(daemon.process.pid, state)
        assert (inside / LEDGER_FILE_NAME).exists() and not (state / LEDGER_FILE_NAME).exists()
        client = JobClient(daemon.socket, timeout_s=5)
        before = client.start("before", pids=[os.getpid()])["job_id"]
        package.advance(10_000_000)
        daemon.wait_for(lambda s: s[NODE] >= 10.0 and s[(WRITES, OK)] >= 2)

        filled = fill(inside / "filler")
        assert filled > 0
        package.advance(20_000_000)  # counted while nothing can be written
        full = daemon.wait_for(lambda s: s[(WRITES, ERROR)] >= 2 and s[NODE] >= 30.0)
        with pytest.raises(JobApiError) as refused:
            client.start("refused", pids=[os.getpid()])
        assert refused.value.status == 503
        assert "full" in str(refused.value)
        assert (
            ledger_rows(daemon.process.pid, state / LEDGER_FILE_NAME)[0] == 10_000_000
        )  # not yet written

        (inside / "filler").unlink()  # room again
        recovered = daemon.wait_for(lambda s: s[(WRITES, OK)] >= full[(WRITES, OK)] + 2)
        after = client.start("after", pids=[os.getpid()])["job_id"]
        client.stop(before)
        package.advance(5_000_000)
        counted = daemon.wait_for(lambda s: s[NODE] >= 35.0)
        settled = daemon.wait_for(lambda s: s[(WRITES, OK)] >= counted[(WRITES, OK)] + 2)
        stored_uj, jobs = ledger_rows(daemon.process.pid, state / LEDGER_FILE_NAME)
    finally:
        assert daemon.stop() == 0, daemon.log_text()

    # Every joule the daemon counted, once: the 20 J of the full disk were kept in memory.
    assert settled[NODE] == 35.0
    assert stored_uj == 35_000_000
    assert jobs == {"before": False, "after": True}  # and "refused" was never acknowledged
    assert after != before
    assert settled[(WRITES, ERROR)] == recovered[(WRITES, ERROR)]  # no failure once there is room
    assert "database or disk is full" in daemon.log_text()
