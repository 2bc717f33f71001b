"""Where job records persist: the registry's view of the ledger (carbonscope.ledger implements
it), so the jobs package never imports the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from carbonscope.jobs.model import JobRecord


class JobStore(Protocol):
    def running(self) -> list[JobRecord]:
        """Jobs that were running when the agent last wrote them (resumed at start-up)."""
        ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def recent(self, limit: int, uid: int | None = None) -> list[JobRecord]:
        """The newest jobs by start time (of one uid, when given)."""
        ...

    def write(self, records: Iterable[JobRecord]) -> None:
        """Insert or replace these records, in one transaction; raises on failure."""
        ...
