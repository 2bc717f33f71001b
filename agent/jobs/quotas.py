"""Per-user quotas of the job API that are not a plain count of live jobs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from carbonscope.jobs.validation import JobRequestError

WINDOW_S = 60.0


class CreationQuota:
    """At most ``limit`` jobs created per uid in any minute, on the monotonic clock (a wall
    clock step neither frees nor blocks anyone). Memory: ``limit`` timestamps per active uid."""

    def __init__(self, limit: int, monotonic_s: Callable[[], float]) -> None:
        self._limit = limit
        self._monotonic_s = monotonic_s
        self._created: dict[int, deque[float]] = {}

    def charge(self, uid: int) -> None:
        """Count one creation for ``uid``, or refuse it with a 429 saying when to retry."""
        now = self._monotonic_s()
        created = self._created.setdefault(uid, deque(maxlen=self._limit))
        while created and now - created[0] >= WINDOW_S:
            created.popleft()
        if len(created) >= self._limit:
            raise JobRequestError(
                f"uid {uid} created {len(created)} jobs in the last minute (at most "
                f"{self._limit}); retry in {WINDOW_S - (now - created[0]):.0f}s",
                status=429,
            )
        created.append(now)
