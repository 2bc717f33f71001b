"""The job ledger: durable job records in SQLite under the state directory."""

from carbonscope.ledger.store import LEDGER_FILE_NAME, JobLedger, LedgerError

__all__ = ["LEDGER_FILE_NAME", "JobLedger", "LedgerError"]
