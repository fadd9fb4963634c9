"""shopfloor: a self-hosted dispatch server for fleets of AI-agent workers."""

__version__ = "0.1.0"
