"""The jobs the exporter shows: retention, the cardinality cap and the promoted-tag labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from carbonscope.accounting.attribution import Bucket
from carbonscope.jobs.live import LiveJob
from carbonscope.labels import tag_label
from carbonscope.sensors.base import Component
from carbonscope.snapshot import AttributionView, BucketEnergy, JobView


def expired(
    jobs: Mapping[str, LiveJob], now: float, keep_finished_s: float, max_per_user: int
) -> list[str]:
    """Finished jobs whose final totals the ledger already has and that are past retention, or
    beyond the ``max_per_user`` newest finished jobs of their user: memory stays bounded however
    many jobs a user creates (the ledger keeps them all)."""
    written = [
        (job_id, job) for job_id, job in jobs.items() if job.ended_at is not None and not job.dirty
    ]
    gone = {job_id for job_id, job in written if now - (job.ended_at or now) > keep_finished_s}
    by_user: dict[int | None, list[tuple[float, str]]] = {}
    for job_id, job in written:
        if job_id not in gone:
            by_user.setdefault(job.base.uid, []).append((job.ended_at or now, job_id))
    for finished in by_user.values():
        finished.sort(reverse=True)  # newest first
        gone.update(job_id for _ended, job_id in finished[max_per_user:])
    return sorted(gone)


def attribution_view(
    jobs: Iterable[LiveJob],
    buckets: Mapping[tuple[Component, Bucket], int],
    now: float,
    keep_finished_s: float,
    max_exported: int,
    promoted_tags: tuple[str, ...],
) -> AttributionView:
    """Running jobs first (oldest first), then finished ones within retention by energy,
    at most ``max_exported``; each with its promoted tags as ``tag_<key>`` label values."""
    jobs = list(jobs)
    running = sorted((job for job in jobs if job.running), key=lambda job: job.seq)
    finished = sorted(
        (job for job in jobs if job.ended_at is not None and now - job.ended_at <= keep_finished_s),
        key=lambda job: -job.totals.energy_total_uj,
    )
    views = []
    for job in (running + finished)[:max_exported]:
        tags = dict(job.base.tags)
        views.append(
            JobView(
                job_id=job.base.job_id,
                name=job.base.name,
                user=job.base.user,
                running=job.running,
                info_values=tuple(tags.get(key, "") for key in promoted_tags),
                totals=job.totals,
            )
        )
    exported_buckets = tuple(
        BucketEnergy(component, bucket, uj) for (component, bucket), uj in sorted(buckets.items())
    )
    return AttributionView(exported_buckets, tuple(views), tuple(map(tag_label, promoted_tags)))
