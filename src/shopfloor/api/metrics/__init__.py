"""Prometheus metrics: GET /metrics, and the timing of every HTTP request."""
