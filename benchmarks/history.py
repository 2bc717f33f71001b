"""Node history and report benchmarks: what the history costs per sample and per minute, the
ledger's bytes per day, and `carbonscope report` over a year of history."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.timing import timed
from carbonscope.ledger import JobLedger
from carbonscope.ledger.history import Factors, HistoryRow, NodeHistory
from carbonscope.reports.data import build_report
from carbonscope.reports.formats import to_json
from carbonscope.sampling.monitor import Monitor
from carbonscope.snapshot import Component

DAY_S = 86400
FACTORS = Factors("static", "FR", "average", "lifecycle", "ember 2024", 56.0, 56.0, None, 1.2)
TARGET_REPORT_S = 5.0  # a year of history for an auditor: seconds, not minutes


def _row(start: float, resolution: int) -> HistoryRow:
    uj = 6_000_000_000 * resolution // 60
    return HistoryRow(
        start,
        start + resolution,
        FACTORS,
        resolution_s=resolution,
        covered_s=float(resolution),
        node_uj=uj,
        measured_uj=uj,
        component_uj={
            Component.CPU: uj * 8 // 10,
            Component.DRAM: uj // 10,
            Component.GPU: uj // 10,
        },
        device_uj={
            "cpu/rapl/package-0": uj * 4 // 10,
            "cpu/rapl/package-1": uj * 4 // 10,
            "dram/rapl/dram-0": uj // 10,
            "gpu/nvml/gpu0": uj // 10,
        },
        location_g=0.112 * resolution / 60,
        market_g=0.112 * resolution / 60,
        embodied_g=0.01 * resolution,
    )


def history_rows(tmp: Path, monitor: Monitor) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    history = NodeHistory(None)
    monitor.subscribe(history)
    per_sample = timed(monitor.sample, 2000)
    monitor._listeners.remove(history)
    bare = timed(monitor.sample, 2000)
    extra = (statistics.median(per_sample) - statistics.median(bare)) * 1e6
    rows.append(("history: extra per sample (differencing)", f"{extra:.0f} us", "-", "2000", "-"))

    ledger = JobLedger(tmp / "history-bench.sqlite")
    start = 1_700_000_000.0
    minute = [0]

    def write_one() -> None:
        ledger.write_history([_row(start + 60 * minute[0], 60)])
        minute[0] += 1

    writes = timed(write_one, 1440)  # a day of minutes, one flush each (the worst case)
    rows.append(
        (
            "history: write one minute row (one transaction)",
            f"{statistics.median(writes) * 1e6:.0f} us",
            f"{statistics.quantiles(writes, n=100)[98] * 1e6:.0f} us",
            "1440",
            "-",
        )
    )
    ledger.close()
    day_file = tmp / "history-day.sqlite"
    day = JobLedger(day_file)
    before = day_file.stat().st_size + _wal(day_file)
    for chunk in range(48):  # a day as the flush writes it: 30 rows at a time
        day.write_history([_row(start + 60 * (30 * chunk + i), 60) for i in range(30)])
    day._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    per_day = day_file.stat().st_size - before
    day.close()
    rows.append(
        ("history: ledger bytes per day (1440 rows)", f"{per_day / 1024:.0f} KiB", "-", "-", "-")
    )

    year_file = tmp / "history-year.sqlite"
    year = JobLedger(year_file)
    now = start + 365 * DAY_S
    recent = [_row(now - 35 * DAY_S + 60 * i, 60) for i in range(35 * 1440)]
    hours = [_row(start + 3600 * i, 3600) for i in range(330 * 24)]
    for batch in range(0, len(hours), 5000):
        year.write_history(hours[batch : batch + 5000])
    for batch in range(0, len(recent), 5000):
        year.write_history(recent[batch : batch + 5000])
    year._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size_mib = year_file.stat().st_size / 2**20
    year.close()

    def one_report() -> None:
        reader = JobLedger(year_file, read_only=True)
        try:
            built = build_report(reader.history(start, now), [], start, now, "month")
            to_json(built)
        finally:
            reader.close()

    took = timed(one_report, 3)
    worst = max(took)
    verdict = "PASS" if worst <= TARGET_REPORT_S else "FAIL"
    rows.append(
        (
            f"report --by month, a year ({len(recent) + len(hours)} rows, {size_mib:.1f} MiB)",
            f"{statistics.median(took):.2f} s",
            f"{worst:.2f} s",
            "3",
            f"{verdict}: <= {TARGET_REPORT_S:g} s",
        )
    )
    return rows


def _wal(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0
