"""The ledger never wedges: each write is one transaction, committed or rolled back whatever is
raised; what was not written is kept and retried; the API refuses work it cannot keep."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from carbonscope.accounting.totals import EnergyTotals
from carbonscope.jobs.model import JobKind, JobRecord
from carbonscope.jobs.registry import Caller, JobRegistry, JobsSettings
from carbonscope.jobs.validation import JobRequest, JobRequestError
from carbonscope.ledger import JobLedger, LedgerError
from carbonscope.sensors.base import Component, SensorRoots
from tests.conftest import assert_promtool_clean
from tests.daemon import Daemon

pytestmark = pytest.mark.faults

ME = Caller(os.getpid(), os.geteuid(), os.getegid())


def record(job_id: str, cpu_uj: int) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        name=job_id,
        kind=JobKind.TAGGED,
        uid=0,
        user="root",
        tags=(),
        started_at=1_700_000_000.0,
        totals=EnergyTotals(energy_uj=((Component.CPU, cpu_uj),), measured_uj=cpu_uj),
        updated_at=1_700_000_001.0,
    )


def test_a_value_sqlite_cannot_hold_never_wedges_the_ledger(tmp_path: Path) -> None:
    ledger = JobLedger(tmp_path / "ledger.sqlite", wall_clock_s=lambda: 1_800_000_000.0)
    with pytest.raises(LedgerError, match="cannot write to the job ledger"):
        ledger.write([record("j-good-first", 5), record("j-huge", 10**26)])  # OverflowError
    ledger.write([record("j-after", 7)])  # the connection is not stuck in the failed one
    assert ledger.get("j-after") is not None and ledger.get("j-good-first") is None
    writes = ledger.writes()
    assert (writes.ok, writes.error) == (1, 1)
    assert writes.last_success_unix_s == 1_800_000_000.0
    assert "too large" in writes.last_error or "overflow" in writes.last_error.lower()
    ledger.close()


class FlakyStore:
    """The ledger behind a switch: a full or read-only disk, then a working one again."""

    def __init__(self, ledger: JobLedger) -> None:
        self.ledger = ledger
        self.broken = False

    def write(self, records: Any) -> None:
        if self.broken:
            raise LedgerError("database or disk is full")
        self.ledger.write(records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)


def test_unwritten_jobs_are_kept_until_the_store_works_and_new_work_is_refused(
    tmp_path: Path,
) -> None:
    store = FlakyStore(JobLedger(tmp_path / "ledger.sqlite"))
    registry = JobRegistry(
        JobsSettings(stop_wait_s=0.1), SensorRoots(tmp_path, Path("/proc")), store
    )
    kept = registry.register(ME, JobRequest("kept", (), ()))
    store.broken = True
    with pytest.raises(JobRequestError) as refused:
        registry.register(ME, JobRequest("refused", (), ()))
    assert refused.value.status == 503 and "disk is full" in str(refused.value)
    assert [r.name for r in registry.recent()] == ["kept"]  # nothing accepted that is not kept
    with pytest.raises(JobRequestError) as stopped:
        registry.stop(ME, kept.job_id)  # no sample comes: it ends after stop_wait_s
    assert stopped.value.status == 503
    assert not registry.get(kept.job_id).running  # ended in memory, not yet in the ledger
    assert store.ledger.get(kept.job_id).running  # type: ignore[union-attr]
    assert registry.flush() is not None  # still broken: kept dirty
    store.broken = False
    assert registry.flush() is None
    assert not store.ledger.get(kept.job_id).running  # type: ignore[union-attr]


def test_ledger_writes_are_metrics(tmp_path: Path) -> None:
    config = tmp_path / "carbonscope.toml"
    config.write_text('[agent]\ninterval = "100ms"\n[jobs]\nflush = "200ms"\n')
    daemon = Daemon(["--config", str(config), "--sysfs-root", str(tmp_path)], tmp_path)
    try:
        daemon.wait_ready()
        ok = ("carbonscope_ledger_writes_total", (("result", "ok"),))
        samples = daemon.wait_for(lambda s: s.get(ok, 0) >= 2)
        assert samples[("carbonscope_ledger_writes_total", (("result", "error"),))] == 0
        last = samples[("carbonscope_ledger_last_success_timestamp_seconds", ())]
        assert last > 1_700_000_000
        assert_promtool_clean(daemon.get().encode())
    finally:
        assert daemon.stop() == 0


def test_a_job_duration_is_measured_on_the_monotonic_clock(tmp_path: Path) -> None:
    wall, mono = [1_800_000_000.0], [100.0]
    ledger = JobLedger(tmp_path / "ledger.sqlite")
    registry = JobRegistry(
        JobsSettings(stop_wait_s=0.0),
        SensorRoots(tmp_path, Path("/proc")),
        ledger,
        wall_clock_s=lambda: wall[0],
        monotonic_s=lambda: mono[0],
    )
    job = registry.register(ME, JobRequest("stepped", (), ()))
    wall[0] += 3600 + 30  # NTP steps the wall clock an hour forward during the job
    mono[0] += 30
    assert registry.get(job.job_id).duration_s == 30.0
    stopped = registry.stop(ME, job.job_id)
    assert stopped.to_json(wall[0])["duration_s"] == 30.0  # not 3,630 s
    assert ledger.get(job.job_id).duration_s == 30.0  # type: ignore[union-attr]
