"""What the store tells as it happens, for metrics: the sessions that ended (by queue and
status), and the time spent in the database (by kind of unit). The store calls these in the
process that did the work; nothing here reads or writes the database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Kinds of database time (the `kind` label of the histogram).
DB_READ = "read"  # a read-only connection's statements (Database.connect)
DB_WRITE = "write"  # a transaction's statements (begin / autocommit); on PostgreSQL with its COMMIT
DB_COMMIT = "commit"  # SQLite: a group COMMIT shared by the transactions of one loop turn


@dataclass
class StoreObservers:
    # (queue, terminal status) of each session that ended, once its transaction committed
    session_ended: list[Callable[[str, str], None]] = field(default_factory=list)
    # the session whose timeline got an entry, once its transaction committed (its live
    # followers are woken; a cheap no-op when nobody follows it)
    timeline_written: list[Callable[[str], None]] = field(default_factory=list)
    # (kind, seconds): one call per transaction, read or commit; None: nothing measured
    db_time: Callable[[str, float], None] | None = None

    def ended(self, queue: str, status: str) -> None:
        for tell in self.session_ended:
            tell(queue, status)

    def wrote_timeline(self, session_id: str) -> None:
        for tell in self.timeline_written:
            tell(session_id)
