"""The prompt a session's agent starts with: the work item's prompt (else its issue), and,
for a session taken over after a crash, what its recovery packet says happened before."""

from __future__ import annotations

from typing import Any

from shopfloor.client import WorkItem

MAX_RECOVERY_CHARS = 6000
MAX_ACTIVITY_CHARS = 300


def task_prompt(item: WorkItem) -> str:
    if item.prompt:
        return item.prompt
    heading = ": ".join(p for p in (item.issue_identifier, item.title) if p)
    parts = [p for p in (heading, item.body) if p]
    return "\n\n".join(parts) or f"Work on session {item.session_id}."


def recovery_preamble(packet: dict[str, Any], resumed_worktree: bool) -> str:
    """A short account of the interrupted attempt, for the agent that continues it."""
    lines = [
        f"This session was interrupted and is being resumed (attempt {packet.get('attempt')}).",
        f"Why it stopped: {packet.get('reason') or 'unknown'}; "
        f"its last status was {packet.get('lastStatus') or 'unknown'}.",
    ]
    if resumed_worktree:
        lines.append(
            "You are in the same worktree as the earlier attempt: its changes, committed or "
            "not, are still here. Check them before continuing."
        )
    else:
        lines.append(
            "The earlier attempt's uncommitted changes are not here; its commits are on "
            "this branch."
        )
    milestones = [
        str(m.get("milestone")) for m in packet.get("milestones") or [] if isinstance(m, dict)
    ]
    if milestones:
        lines.append("Milestones reached: " + ", ".join(milestones) + ".")
    activities = [a for a in packet.get("lastActivities") or [] if isinstance(a, dict)]
    if activities:
        lines.append("Its last steps:")
        for a in activities:
            text = str(a.get("content") or a.get("message") or a.get("milestone") or "")
            tool = f" {a['toolName']}" if a.get("toolName") else ""
            lines.append(f"- {a.get('type')}{tool}: {text[:MAX_ACTIVITY_CHARS]}")
    text = "\n".join(lines)
    return text[:MAX_RECOVERY_CHARS]


def first_prompt(item: WorkItem, packet: dict[str, Any] | None, resumed_worktree: bool) -> str:
    task = task_prompt(item)
    if packet is None:
        return task
    return recovery_preamble(packet, resumed_worktree) + "\n\nThe task:\n\n" + task
