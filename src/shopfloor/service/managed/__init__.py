"""Managed-agent sessions: agents, a session's event log and the agent loop that drives it."""
