"""The managed-agents API (`/v1/agents`, `/v1/sessions`) of the `anthropic` SDK."""
