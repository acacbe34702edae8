"""Durable SQLite stores: the agent's spool, the relay's journal, the collector's record store.

Each store is one SQLite file behind a :class:`~logferry.store.sqlite.Database`: WAL mode, one writer thread
fed by a bounded queue with group commit, reads on other connections, numbered migrations. Nothing in this
package runs SQL on the event loop thread or acknowledges anything before its transaction committed.
"""

from logferry.store.journal import Decision, HeldFilter, HeldRecord, Journal, JournalStats, OutboxBatch
from logferry.store.records import CommitResult, RecordStats, RecordStore, SearchQueryError, StoredRecord
from logferry.store.spool import Spool, SpooledBatch, SpoolStats
from logferry.store.sqlite import Database, Durability

__all__ = [
    "CommitResult",
    "Database",
    "Decision",
    "Durability",
    "HeldFilter",
    "HeldRecord",
    "Journal",
    "JournalStats",
    "OutboxBatch",
    "RecordStats",
    "RecordStore",
    "SearchQueryError",
    "Spool",
    "SpoolStats",
    "SpooledBatch",
    "StoredRecord",
]
