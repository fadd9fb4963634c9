"""The database triggers that write a session's claim and end into the audit outbox
(table audit_outbox), in the transaction of the status change itself, whatever path made it:
the AgentFactory poll and legacy claim, the Veryfront run claim, the environment work
acknowledgement, and every ending. The audit appender (service/audit_appender.py) moves the
outbox into the organisation's hash chain later, off the request path. (A session's creation,
stop and transfer go to the outbox too, each written by the store in its transaction:
action_row.)

A claim is a change of status to `claimed` from another status; an end, a change from a
non-terminal status to a terminal one. Used by migration 0009au2 and by
SqlStore.set_session_audit (SHOPFLOOR_AUDIT_SESSIONS)."""

from __future__ import annotations

from shopfloor.store.records import CLAIMED, TERMINAL_STATUSES, SessionRecord

NAME = "audit_session_transition"
CREATED_EVENT = "session.created"  # written by the session's insert (store/sql_channel.py)
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


def action_row(
    session: SessionRecord,
    event_type: str,
    actor: tuple[str, str],
    *,
    payload: str | None = None,
) -> dict[str, object]:
    """The outbox row of an action on `session` (as it is written) by `actor` (id, type):
    a creation (its payload is made from the issue, queue and status), or a stop or
    transfer with its `payload` (canonical JSON)."""
    return {
        "org_id": session.org_id,
        "session_id": session.id,
        "event_type": event_type,
        "worker_id": session.worker_id,
        "status": session.status,
        "queue": session.queue,
        "lease_epoch": session.lease_epoch,
        "at": session.updated_at,
        "actor_id": actor[0],
        "actor_type": actor[1],
        "issue_id": session.issue_id,
        "payload": payload,
    }


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
