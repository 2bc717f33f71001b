"""SQLite job ledger (WAL). One row per job, rewritten with its totals at every flush, and
the intensity series used (one row per period of constant intensity, with the node energy
accounted under it: agent/accounting/intensity_log.py).

Energy is stored as integer microjoules per component, so sums in reports are exact;
emissions as grams (REAL). Schema changes bump ``user_version``; version 1 ledgers gain the
intensity tables when opened, version 2 ledgers the jobs' ``duration_s`` column, version 5
ledgers the node history (history.py, history_table.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from carbonscope.accounting.emissions import EmissionFactors, Emissions
from carbonscope.accounting.intensity_log import IntensityPeriod
from carbonscope.accounting.totals import EnergyTotals
from carbonscope.errors import CarbonscopeError
from carbonscope.jobs.model import JobKind, JobRecord
from carbonscope.ledger import history_table
from carbonscope.ledger.history import HistoryRow
from carbonscope.sensors.base import Component
from carbonscope.snapshot import LedgerWrites

SCHEMA_VERSION = 6
LEDGER_FILE_NAME = "ledger.sqlite"  # in agent.state_dir
_COMPONENTS = (Component.CPU, Component.DRAM, Component.GPU, Component.PLATFORM)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    uid INTEGER,
    user TEXT NOT NULL,
    tags TEXT NOT NULL,            -- JSON object
    started_at REAL NOT NULL,      -- unix seconds
    ended_at REAL,                 -- NULL while running
    cpu_uj INTEGER NOT NULL DEFAULT 0,
    dram_uj INTEGER NOT NULL DEFAULT 0,
    gpu_uj INTEGER NOT NULL DEFAULT 0,
    platform_uj INTEGER NOT NULL DEFAULT 0,
    measured_uj INTEGER NOT NULL DEFAULT 0,
    modelled_uj INTEGER NOT NULL DEFAULT 0,
    emissions_location_g REAL NOT NULL DEFAULT 0,
    emissions_market_g REAL NOT NULL DEFAULT 0,
    processes TEXT NOT NULL,       -- JSON [[pid, start_ticks], ...]
    cgroup TEXT,
    updated_at REAL NOT NULL,
    duration_s REAL,               -- measured on the monotonic clock (NULL: older ledgers)
    outcome TEXT,                  -- how it ended: "exit 3", "signal SIGINT", "stopped", ...
    -- the idle share inside cpu_uj ... platform_uj (jobs.idle_policy); 0 in older ledgers
    cpu_idle_uj INTEGER NOT NULL DEFAULT 0,
    dram_idle_uj INTEGER NOT NULL DEFAULT 0,
    gpu_idle_uj INTEGER NOT NULL DEFAULT 0,
    platform_idle_uj INTEGER NOT NULL DEFAULT 0,
    embodied_g REAL NOT NULL DEFAULT 0  -- Scope 3: its share of the amortised hardware
);
CREATE INDEX IF NOT EXISTS jobs_started ON jobs (started_at);
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (ended_at) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS intensity_periods (
    period_id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,      -- unix seconds of the first sample under this value
    ended_at REAL NOT NULL,        -- ... and of the last
    provider TEXT NOT NULL,
    location TEXT NOT NULL,
    signal TEXT NOT NULL,
    emission_factor_type TEXT NOT NULL,
    g_per_kwh REAL NOT NULL,       -- location-based factor in force
    market_g_per_kwh REAL NOT NULL,
    pue REAL NOT NULL,
    marginal_provider TEXT NOT NULL,
    marginal_g_per_kwh REAL,
    energy_uj INTEGER NOT NULL,    -- node IT energy accounted under this period
    emissions_location_g REAL NOT NULL,
    emissions_market_g REAL NOT NULL,
    emissions_marginal_g REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS intensity_periods_started ON intensity_periods (started_at);
CREATE TABLE IF NOT EXISTS job_periods (  -- a job's energy under each intensity period
    job_id TEXT NOT NULL,
    period_id INTEGER NOT NULL,
    energy_uj INTEGER NOT NULL,
    PRIMARY KEY (job_id, period_id)
);
"""
_COLUMNS = (
    "job_id, name, kind, uid, user, tags, started_at, ended_at, cpu_uj, dram_uj, gpu_uj, "
    "platform_uj, measured_uj, modelled_uj, emissions_location_g, emissions_market_g, "
    "processes, cgroup, updated_at, duration_s, outcome, cpu_idle_uj, dram_idle_uj, "
    "gpu_idle_uj, platform_idle_uj, embodied_g"
)


# intensity_periods columns, in table order, and how each is read from an IntensityPeriod.
_PERIOD_COLUMN_VALUES: tuple[tuple[str, Callable[[IntensityPeriod], object]], ...] = (
    ("period_id", lambda p: p.period_id),
    ("started_at", lambda p: p.started_at_unix_s),
    ("ended_at", lambda p: p.ended_at_unix_s),
    ("provider", lambda p: p.provider),
    ("location", lambda p: p.location),
    ("signal", lambda p: p.signal),
    ("emission_factor_type", lambda p: p.emission_factor_type),
    ("g_per_kwh", lambda p: p.factors.location_g_per_kwh),
    ("market_g_per_kwh", lambda p: p.factors.market_g_per_kwh),
    ("pue", lambda p: p.factors.pue),
    ("marginal_provider", lambda p: p.marginal_provider),
    ("marginal_g_per_kwh", lambda p: p.factors.marginal_g_per_kwh),
    ("energy_uj", lambda p: p.energy_uj),
    ("emissions_location_g", lambda p: p.emissions.location_g),
    ("emissions_market_g", lambda p: p.emissions.market_g),
    ("emissions_marginal_g", lambda p: p.emissions.marginal_g),
)
_PERIOD_COLUMNS = ", ".join(name for name, _value in _PERIOD_COLUMN_VALUES)


def _period(row: Sequence[Any]) -> IntensityPeriod:
    (period_id, started, ended, provider, location, signal, factor_type, g_per_kwh) = row[:8]
    (market, pue, marginal_provider, marginal, energy, location_g, market_g, marginal_g) = row[8:]
    return IntensityPeriod(
        period_id=int(period_id),
        started_at_unix_s=float(started),
        ended_at_unix_s=float(ended),
        provider=str(provider),
        location=str(location),
        signal=str(signal),
        emission_factor_type=str(factor_type),
        marginal_provider=str(marginal_provider),
        factors=EmissionFactors(
            float(pue),
            float(g_per_kwh),
            float(market),
            None if marginal is None else float(marginal),
        ),
        energy_uj=int(energy),
        emissions=Emissions(float(location_g), float(market_g), float(marginal_g)),
    )


class LedgerError(CarbonscopeError):
    pass


class JobLedger:
    def __init__(
        self,
        path: Path,
        read_only: bool = False,
        wall_clock_s: Callable[[], float] = time.time,
        history_hourly_after_s: float = 35 * 86400.0,
        history_retention_s: float = 400 * 86400.0,
    ) -> None:
        self.path = path
        self._history_hourly_after_s = history_hourly_after_s
        self._history_retention_s = history_retention_s
        self._lock = threading.Lock()
        self._wall_clock_s = wall_clock_s
        self._writes = LedgerWrites()
        if read_only:  # for `carbonscope jobs` when the agent is down: never create or migrate
            try:
                self._db = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, check_same_thread=False
                )
                self._db.execute("SELECT 1 FROM jobs LIMIT 1")
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the job ledger {path}: {exc}") from None
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoint, no tearing
            self._db.execute("PRAGMA busy_timeout=5000")
            # The daemon appends (history rows, job totals) and rarely reads: a small page cache
            # keeps its RSS flat as the ledger grows (SQLite's default allows 2 MiB)
            self._db.execute("PRAGMA cache_size=-256")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"{path}: ledger schema {version} is newer than this carbonscope "
                    f"understands ({SCHEMA_VERSION})"
                )
            self._db.executescript(_SCHEMA + history_table.SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "duration_s" not in columns:  # a version 1 or 2 ledger
                self._db.execute("ALTER TABLE jobs ADD COLUMN duration_s REAL")
            if "outcome" not in columns:  # a version 1 to 3 ledger
                self._db.execute("ALTER TABLE jobs ADD COLUMN outcome TEXT")
            for component in _COMPONENTS:  # a version 1 to 4 ledger: no idle shares yet
                if f"{component.value}_idle_uj" not in columns:
                    self._db.execute(
                        f"ALTER TABLE jobs ADD COLUMN {component.value}_idle_uj "
                        "INTEGER NOT NULL DEFAULT 0"
                    )
            if "embodied_g" not in columns:  # a version 1 to 5 ledger
                self._db.execute("ALTER TABLE jobs ADD COLUMN embodied_g REAL NOT NULL DEFAULT 0")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot open the job ledger {path}: {exc}") from None

    def write(self, records: Iterable[JobRecord]) -> None:
        records = list(records)
        rows = [_row(record) for record in records]
        if not rows:
            return
        placeholders = ", ".join("?" * len(rows[0]))
        period_rows = [
            (record.job_id, period_id, energy_uj)
            for record in records
            for period_id, energy_uj in record.energy_by_period
        ]
        self._transaction(
            (f"INSERT OR REPLACE INTO jobs ({_COLUMNS}) VALUES ({placeholders})", rows),
            (
                "INSERT OR REPLACE INTO job_periods (job_id, period_id, energy_uj) "
                "VALUES (?, ?, ?)",
                period_rows,
            ),
        )

    def _transaction(self, *statements: tuple[str, Sequence[Sequence[object]]]) -> None:
        """One transaction, committed or rolled back whatever is raised (a full disk, a value
        SQLite cannot hold): the connection is never left inside a failed transaction."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    for sql, rows in statements:
                        self._db.executemany(sql, rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except Exception as exc:
                writes = self._writes
                self._writes = replace(writes, error=writes.error + 1, last_error=str(exc))
                raise LedgerError(f"cannot write to the job ledger {self.path}: {exc}") from exc
            writes = self._writes
            self._writes = replace(
                writes, ok=writes.ok + 1, last_success_unix_s=self._wall_clock_s()
            )

    def writes(self) -> LedgerWrites:
        """How the writes went so far (memory only: the monitor reads it every sample)."""
        return self._writes

    def next_period_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(period_id) FROM intensity_periods").fetchone()
        return 1 if row[0] is None else int(row[0]) + 1

    def write_periods(self, periods: list[IntensityPeriod]) -> None:
        if not periods:
            return
        rows = [tuple(value(p) for _name, value in _PERIOD_COLUMN_VALUES) for p in periods]
        placeholders = ", ".join("?" * len(_PERIOD_COLUMN_VALUES))
        self._transaction(
            (
                f"INSERT OR REPLACE INTO intensity_periods ({_PERIOD_COLUMNS}) "
                f"VALUES ({placeholders})",
                rows,
            )
        )

    def periods(self, since_unix_s: float = 0.0) -> list[IntensityPeriod]:
        """Stored periods that end at or after ``since``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_PERIOD_COLUMNS} FROM intensity_periods WHERE ended_at >= ? "
                "ORDER BY period_id",
                (since_unix_s,),
            ).fetchall()
        return [_period(row) for row in rows]

    def job_periods(self, job_id: str) -> list[tuple[IntensityPeriod, int]]:
        """The intensity periods a job ran under, with its energy (µJ) in each."""
        columns = ", ".join(f"p.{name}" for name in _PERIOD_COLUMNS.split(", "))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {columns}, j.energy_uj FROM job_periods j "
                "JOIN intensity_periods p USING (period_id) WHERE j.job_id = ? "
                "ORDER BY period_id",
                (job_id,),
            ).fetchall()
        return [(_period(row[:-1]), int(row[-1])) for row in rows]

    def write_history(self, rows: list[HistoryRow]) -> None:
        self._transaction((history_table.INSERT, [history_table.to_row(r) for r in rows]))

    def compact_history(self, now_unix_s: float) -> None:
        """Minute rows to hourly ones past history_hourly_after; older than the retention,
        deleted. One transaction, off the sampling path (the flush schedule)."""
        with self._lock:
            statements = history_table.compaction(
                self._db, now_unix_s, self._history_hourly_after_s, self._history_retention_s
            )
        self._transaction(*statements)

    def history(self, since_unix_s: float, until_unix_s: float) -> list[HistoryRow]:
        with self._lock:
            try:
                return history_table.select(self._db, since_unix_s, until_unix_s)
            except sqlite3.OperationalError as exc:  # read-only, an older schema: no table
                raise LedgerError(
                    f"{self.path} has no node history ({exc}): it was written by an older "
                    "carbonscope; the agent adds it when it next starts"
                ) from None

    def jobs_between(self, since_unix_s: float, until_unix_s: float) -> list[JobRecord]:
        """Jobs that ran in the window (started before its end, last seen after its start)."""
        return self._query(
            "WHERE started_at < ? AND COALESCE(ended_at, updated_at) >= ? ORDER BY started_at",
            (until_unix_s, since_unix_s),
        )

    def running(self) -> list[JobRecord]:
        return self._query("WHERE ended_at IS NULL ORDER BY started_at", ())

    def get(self, job_id: str) -> JobRecord | None:
        found = self._query("WHERE job_id = ?", (job_id,))
        return found[0] if found else None

    def recent(self, limit: int, uid: int | None = None) -> list[JobRecord]:
        if uid is None:
            return self._query("ORDER BY started_at DESC LIMIT ?", (limit,))
        return self._query("WHERE uid = ? ORDER BY started_at DESC LIMIT ?", (uid, limit))

    def _query(self, where: str, args: tuple[object, ...]) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs {where}", args).fetchall()
        return [_record(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(record: JobRecord) -> tuple[object, ...]:
    totals = record.totals
    energy, idle = dict(totals.energy_uj), dict(totals.idle_uj)
    return (
        record.job_id,
        record.name,
        record.kind.value,
        record.uid,
        record.user,
        json.dumps(dict(record.tags), sort_keys=True),
        record.started_at,
        record.ended_at,
        *(energy.get(component, 0) for component in _COMPONENTS),
        totals.measured_uj,
        totals.modelled_uj,
        totals.emissions.location_g,
        totals.emissions.market_g,
        json.dumps([list(identity) for identity in record.processes]),
        record.cgroup,
        record.updated_at,
        record.duration_s,
        record.outcome,
        *(idle.get(component, 0) for component in _COMPONENTS),
        totals.embodied_g,
    )


def _record(row: tuple[object, ...]) -> JobRecord:
    (job_id, name, kind, uid, user, tags, started, ended, *rest) = row
    energy, rest = rest[:4], rest[4:]
    measured, modelled, location_g, market_g, processes, cgroup, updated, duration, outcome = rest[
        :9
    ]
    idle, embodied = rest[9:13], rest[13]
    return JobRecord(
        job_id=str(job_id),
        name=str(name),
        kind=JobKind(str(kind)),
        uid=None if uid is None else int(str(uid)),
        user=str(user),
        tags=tuple(sorted(json.loads(str(tags)).items())),
        started_at=float(str(started)),
        ended_at=None if ended is None else float(str(ended)),
        totals=EnergyTotals(
            energy_uj=tuple(
                (component, int(str(uj)))
                for component, uj in zip(_COMPONENTS, energy, strict=True)
                if int(str(uj))
            ),
            measured_uj=int(str(measured)),
            modelled_uj=int(str(modelled)),
            emissions=Emissions(float(str(location_g)), float(str(market_g))),
            idle_uj=tuple(
                (component, int(str(uj)))
                for component, uj in zip(_COMPONENTS, idle, strict=True)
                if int(str(uj))
            ),
            embodied_g=float(str(embodied)),
        ),
        processes=tuple((int(pid), int(start)) for pid, start in json.loads(str(processes))),
        cgroup=None if cgroup is None else str(cgroup),
        updated_at=float(str(updated)),
        duration_s=None if duration is None else float(str(duration)),
        outcome=None if outcome is None else str(outcome),
    )
