"""Clients of services outside shopfloor (each one module, with timeouts and size limits)."""
