"""What `carbonscope report` shows, from the ledger alone (read-only, daemon up or not).

Node figures (``--by day|month|node``) come from the node history's rows (ledger/history.py):
a row is in the window when its midpoint is, so every figure is a sum of whole rows and the
totals equal the sum of the rows listed. Job figures (``--by job|user|tag:KEY``) come from the
jobs' ledger totals: a job is in the window when it ran in it, and it counts whole (its totals
are not split in time). Time nothing recorded (the daemon down, rows lost to a full disk) is a
gap: listed, excluded from ``coverage_hours``, never filled in.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from carbonscope.jobs.model import JobRecord
from carbonscope.ledger.history import HistoryRow
from carbonscope.units import UJ_PER_KWH

GROUPINGS = ("job", "user", "day", "month", "node")  # and tag:KEY
GAP_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class Figures:
    """One row of a report (or its total)."""

    group: str
    energy_uj: int = 0
    location_g: float = 0.0
    market_g: float = 0.0
    embodied_g: float = 0.0
    measured_uj: int = 0
    modelled_uj: int = 0
    pue_weighted_uj: float = 0.0  # Σ energy x PUE, for the energy-weighted PUE
    modelled_uncertainty_uj: int = 0  # ± on the modelled part (node figures only)
    sci: Sci | None = None  # per job

    @property
    def energy_kwh(self) -> float:
        return self.energy_uj / UJ_PER_KWH

    @property
    def measured_share(self) -> float | None:
        counted = self.measured_uj + self.modelled_uj
        return self.measured_uj / counted if counted else None

    @property
    def pue(self) -> float | None:
        return self.pue_weighted_uj / self.energy_uj if self.energy_uj else None

    def plus(self, other: Figures) -> Figures:
        return Figures(
            self.group,
            self.energy_uj + other.energy_uj,
            self.location_g + other.location_g,
            self.market_g + other.market_g,
            self.embodied_g + other.embodied_g,
            self.measured_uj + other.measured_uj,
            self.modelled_uj + other.modelled_uj,
            self.pue_weighted_uj + other.pue_weighted_uj,
            self.modelled_uncertainty_uj + other.modelled_uncertainty_uj,
        )

    @property
    def modelled_uncertainty(self) -> float | None:
        """The modelled energy's relative half-width (0.4: ±40 %), None when none is modelled
        or (job figures) it is not known."""
        if not self.modelled_uj or not self.modelled_uncertainty_uj:
            return None
        return self.modelled_uncertainty_uj / self.modelled_uj


@dataclass(frozen=True)
class Sci:
    """Software Carbon Intensity (ISO/IEC 21031) of one job, per job: (E x I) + M."""

    energy_kwh: float  # E: the job's IT energy x PUE
    intensity_g_per_kwh: float  # I: location-based, energy-weighted over the job
    embodied_g: float  # M: its share of the hardware's amortised footprint

    @property
    def sci_g(self) -> float:
        return self.energy_kwh * self.intensity_g_per_kwh + self.embodied_g


@dataclass(frozen=True)
class Report:
    since: float
    until: float
    group_by: str
    rows: tuple[Figures, ...]
    total: Figures
    coverage_s: float
    gaps: tuple[tuple[float, float], ...]
    history: tuple[HistoryRow, ...] = ()  # the node rows in the window (charts)
    jobs: tuple[JobRecord, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    pue: float | None = None  # energy-weighted over the node history in the window

    @property
    def coverage_hours(self) -> float:
        return self.coverage_s / 3600


def in_window(rows: Iterable[HistoryRow], since: float, until: float) -> list[HistoryRow]:
    return [r for r in rows if since <= (r.started_at + r.ended_at) / 2 < until]


def gaps_of(rows: list[HistoryRow], since: float, until: float) -> list[tuple[float, float]]:
    gaps = []
    cursor = since
    for row in rows:
        if row.started_at > cursor + GAP_TOLERANCE_S:
            gaps.append((cursor, row.started_at))
        cursor = max(cursor, row.ended_at)
    if until > cursor + GAP_TOLERANCE_S:
        gaps.append((cursor, until))
    return gaps


def _node_figures(group: str, row: HistoryRow) -> Figures:
    return Figures(
        group,
        row.node_uj,
        row.location_g,
        row.market_g,
        row.embodied_g,
        row.measured_uj,
        row.modelled_uj,
        row.node_uj * row.factors.pue,
        modelled_uncertainty_uj=row.modelled_uncertainty_uj,
    )


def _job_figures(group: str, job: JobRecord, pue: float) -> Figures:
    """A job's whole-run totals; its PUE is the node's over the window (jobs store grams,
    which carry the PUE, not the PUE itself)."""
    totals = job.totals
    energy = totals.energy_total_uj
    return Figures(
        group,
        energy,
        totals.emissions.location_g,
        totals.emissions.market_g,
        totals.embodied_g,
        totals.measured_uj,
        totals.modelled_uj,
        energy * pue,
    )


def _group_key(by: str, row: HistoryRow, node: str) -> str:
    if by == "day":
        return time.strftime("%Y-%m-%d", time.gmtime(row.started_at))
    if by == "month":
        return time.strftime("%Y-%m", time.gmtime(row.started_at))
    return node


def _job_key(by: str, job: JobRecord) -> str:
    if by == "job":
        return job.job_id
    if by == "user":
        return job.user
    key = by.removeprefix("tag:")
    return dict(job.tags).get(key, "(none)")


def _sci(job: JobRecord, pue: float) -> Sci:
    totals = job.totals
    kwh = totals.energy_total_uj / UJ_PER_KWH * pue
    intensity = totals.emissions.location_g / kwh if kwh else 0.0
    return Sci(kwh, intensity, job.totals.embodied_g)


def build_report(
    history: list[HistoryRow],
    jobs: list[JobRecord],
    since: float,
    until: float,
    by: str,
    node: Callable[[], str] = socket.gethostname,
) -> Report:
    rows = in_window(history, since, until)
    coverage = sum(r.covered_s for r in rows)
    gaps = tuple(gaps_of(rows, since, until))
    pue = _weighted_pue(rows)
    notes: list[str] = []
    groups: dict[str, Figures] = {}
    ran = [
        job for job in jobs if job.started_at < until and (job.ended_at or job.updated_at) >= since
    ]
    if by in ("day", "month", "node"):
        name = node()
        for row in rows:
            key = _group_key(by, row, name)
            figures = _node_figures(key, row)
            groups[key] = groups[key].plus(figures) if key in groups else figures
    else:
        for job in ran:
            key = _job_key(by, job)
            figures = _job_figures(key, job, pue or 1.0)
            if by == "job":
                figures = replace(figures, sci=_sci(job, pue or 1.0))
            groups[key] = groups[key].plus(figures) if key in groups else figures
        notes.append("job figures are whole-job totals of the jobs that ran in the window")
    ordered = sorted(groups.values(), key=lambda f: (-f.energy_uj, f.group))
    if by in ("day", "month"):
        ordered = sorted(groups.values(), key=lambda f: f.group)
    total = Figures("total")
    for figures in ordered:
        total = total.plus(figures)
    return Report(
        since,
        until,
        by,
        tuple(ordered),
        total,
        coverage,
        gaps,
        tuple(rows),
        tuple(ran),
        tuple(notes),
        pue,
    )


def _weighted_pue(rows: list[HistoryRow]) -> float | None:
    energy = sum(r.node_uj for r in rows)
    return sum(r.node_uj * r.factors.pue for r in rows) / energy if energy else None
