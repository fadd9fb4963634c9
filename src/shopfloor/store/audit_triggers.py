"""The database triggers that write a session's claim and end into the audit outbox
(table audit_outbox), in the transaction of the status change itself, whatever path made it:
the AgentFactory poll and legacy claim, the Veryfront run claim, the environment work
acknowledgement, and every ending. The audit appender (service/audit_appender.py) moves the
outbox into the organisation's hash chain later, off the request path.

A claim is a change of status to `claimed` from another status; an end, a change from a
non-terminal status to a terminal one. Used by migration 0009au2 and by
SqlStore.set_session_audit (SHOPFLOOR_AUDIT_SESSIONS)."""

from __future__ import annotations

from shopfloor.store.records import CLAIMED, TERMINAL_STATUSES

NAME = "audit_session_transition"
CLAIMED_EVENT = "session.claimed"
ENDED_EVENT = "session.ended"

_TERMINAL = ", ".join(f"'{s}'" for s in TERMINAL_STATUSES)
_WHEN = (
    f"(NEW.status = '{CLAIMED}' AND OLD.status <> '{CLAIMED}') OR "
    f"(NEW.status IN ({_TERMINAL}) AND OLD.status NOT IN ({_TERMINAL}))"
)
_INSERT = f"""INSERT INTO audit_outbox
    (org_id, session_id, event_type, worker_id, status, queue, lease_epoch, at)
  VALUES (NEW.org_id, NEW.id,
    CASE WHEN NEW.status = '{CLAIMED}' THEN '{CLAIMED_EVENT}' ELSE '{ENDED_EVENT}' END,
    COALESCE(NEW.worker_id, NEW.delivered_to), NEW.status, NEW.queue, NEW.lease_epoch,
    NEW.updated_at)"""


def create_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [
            f"""CREATE OR REPLACE FUNCTION {NAME}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {_INSERT};
  RETURN NULL;
END $$""",
            f"""CREATE TRIGGER {NAME} AFTER UPDATE OF status ON sessions FOR EACH ROW
WHEN ({_WHEN}) EXECUTE FUNCTION {NAME}()""",
        ]
    return [
        f"""CREATE TRIGGER IF NOT EXISTS {NAME} AFTER UPDATE OF status ON sessions
FOR EACH ROW WHEN {_WHEN}
BEGIN
  {_INSERT};
END"""
    ]


def drop_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {NAME} ON sessions", f"DROP FUNCTION IF EXISTS {NAME}()"]
    return [f"DROP TRIGGER IF EXISTS {NAME}"]


def exists_query(dialect: str) -> str:
    """One row if the trigger exists (on PostgreSQL, on the sessions table the search path
    finds)."""
    if dialect == "postgresql":
        return (
            f"SELECT 1 FROM pg_trigger WHERE tgrelid = 'sessions'::regclass AND tgname = '{NAME}'"
        )
    return f"SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = '{NAME}'"
