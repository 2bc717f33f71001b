"""What a person reads: scaled units with three significant figures, parts that add up to
the printed total, tables that never split a number at 60 or 80 columns."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from carbonscope import display
from carbonscope.accounting.emissions import Emissions
from carbonscope.accounting.totals import EnergyTotals
from carbonscope.cli import cli
from carbonscope.jobs.api import energy_uncertainty
from carbonscope.jobs.model import JobKind, JobRecord
from carbonscope.jobs.run_command import summary_lines
from carbonscope.ledger import LEDGER_FILE_NAME, JobLedger
from carbonscope.sensors.base import Component


@pytest.mark.parametrize(
    ("joules", "text"),
    [
        *[(3, "3.00 J"), (3_000, "3000 J"), (3_600, "1.00 Wh"), (3e6, "833 Wh")],
        *[(3.6e6, "1.00 kWh"), (0.0049, "0.00490 J"), (0, "0 J"), (72.04, "72.0 J")],
        (5.4e9, "1500 kWh"),
    ],
)
def test_energy_in_the_unit_that_reads(joules: float, text: str) -> None:
    assert display.energy(joules) == text


@pytest.mark.parametrize(
    ("grams", "text"),
    [(0.0031, "3.10 mg"), (0.9996, "1.00 g"), (3.05, "3.05 g"), (2_500, "2.50 kg"), (0, "0 mg")],
)
def test_emissions_in_the_unit_that_reads(grams: float, text: str) -> None:
    assert display.emissions(grams) == text


@given(st.lists(st.floats(0, 1e10), min_size=1, max_size=4))
def test_parts_add_up_to_the_total_as_printed(values: list[float]) -> None:
    parts = {f"part{i}": value for i, value in enumerate(values)}
    total, shown = display.energy_parts(sum(values), parts)
    number, unit = total.split()
    decimals = len(number.partition(".")[2])
    assert {text.split()[1] for text in shown.values()} == {unit}
    assert round(sum(float(text.split()[0]) for text in shown.values()), decimals) == float(number)


def ledger_with_jobs(directory: Path) -> None:
    ledger = JobLedger(directory / LEDGER_FILE_NAME)
    records = [
        JobRecord(
            job_id=f"j-{index:012x}",
            name=name,
            kind=JobKind.TAGGED,
            uid=0,
            user="root",
            tags=(("team", "nlp"),) if index else (),
            started_at=1_764_600_000.0,
            totals=EnergyTotals(
                energy_uj=((Component.CPU, uj // 2), (Component.DRAM, uj - uj // 2)),
                measured_uj=uj,
                emissions=Emissions(location_g=grams, market_g=grams),
            ),
            updated_at=1_764_600_100.0,
            ended_at=1_764_600_100.0,
            duration_s=100.0,
        )
        for index, (name, uj, grams) in enumerate(
            [
                ("a-rather-long-training-job-name", 123_456_789_000, 1234.5),
                ("tiny", 3_000_000, 0.0003),
            ]
        )
    ]
    ledger.write(records)
    ledger.close()


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_the_jobs_table_never_splits_a_number(tmp_path: Path, columns: int) -> None:
    ledger_with_jobs(tmp_path)
    args = ["--state-dir", str(tmp_path), "--socket", str(tmp_path / "none")]
    listed = CliRunner().invoke(cli, ["jobs", "list", *args], env={"COLUMNS": str(columns)})
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    figures = ["34.3 Wh", "1.23 kg", "3.00 J", "0.300 mg", "j-000000000001", "finished"]
    figures += ["1m40s"] if columns >= 80 else []
    figures += ["UTC", "root"] if columns >= 120 else []
    for figure in figures:
        assert any(figure in line for line in lines), (figure, listed.stdout)


def test_jobs_show_prints_real_values_with_their_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_with_jobs(tmp_path)
    args = ["--state-dir", str(tmp_path), "--socket", str(tmp_path / "none")]
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        shown = CliRunner().invoke(cli, ["jobs", "show", "j-000000000001", *args])
    finally:
        monkeypatch.undo()
        time.tzset()
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "  tags       team=nlp\n" in text and "  cgroup     -\n" in text
    assert "{" not in text and "None" not in text  # no Python reprs
    assert re.search(r"started +2025-12-01 \d\d:\d\d:\d\d CET", text), text
    assert "  energy     3.00 J = cpu 1.50 J + dram 1.50 J\n" in text
    as_json = CliRunner().invoke(cli, ["jobs", "show", "j-000000000001", "--json", *args])
    assert json.loads(as_json.stdout)["energy_joules_total"] == 3.0  # JSON: base units, exact


def test_a_modelled_figure_reads_as_an_estimate_with_its_uncertainty() -> None:
    model = {"cpu": 0.86, "dram": 0.73}  # a VM: the model gives both
    assert energy_uncertainty({"cpu": 200.0, "dram": 49.0}, model) == pytest.approx(
        (200 * 0.86 + 49 * 0.73) / 249
    )
    # a measured GPU beside a modelled CPU: the ± is the modelled part's, over the whole
    assert energy_uncertainty({"cpu": 100.0, "gpu": 300.0}, model) == pytest.approx(0.215)
    assert energy_uncertainty({"gpu": 300.0}, model) is None  # nothing modelled: no ±
    totals = {
        "job_id": "j-1",
        "name": "train",
        "state": "finished",
        "duration_s": 13.0,
        "energy_joules": {"cpu": 200.0, "dram": 49.0},
        "energy_joules_total": 249.0,
        "idle_energy_joules_total": 177.0,
        "measured_joules": 0.0,
        "modelled_joules": 249.0,
        "emissions_grams": {"location": 1.0, "market": 1.0},
        "uncertainty_ratio": energy_uncertainty({"cpu": 200.0, "dram": 49.0}, model),
    }
    lines = summary_lines(totals)
    assert "  energy     ≈ 249 J (±83%) = cpu 200 J + dram 49 J" in lines
    assert "             249 J = 72 J active + 177 J idle share" in lines
    assert "  energy     249 J = " in "\n".join(
        summary_lines({**totals, "uncertainty_ratio": None})
    )
