"""The job ledger: durable job records in SQLite under the state directory."""

from agent.ledger.store import JobLedger, LedgerError

__all__ = ["JobLedger", "LedgerError"]
