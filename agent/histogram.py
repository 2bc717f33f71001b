"""An immutable histogram: a snapshot can carry it and a scrape can render it without locks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Histogram:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket (not cumulative), one more than bounds: the +Inf bucket
    total: float

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(bounds, (0,) * (len(bounds) + 1), 0.0)

    def observe(self, value: float) -> Histogram:
        index = next((i for i, bound in enumerate(self.bounds) if value <= bound), len(self.bounds))
        counts = list(self.counts)
        counts[index] += 1
        return Histogram(self.bounds, tuple(counts), self.total + value)
