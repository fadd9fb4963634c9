"""Typed Python clients for a shopfloor server, over its public HTTP APIs only:

- `OperatorClient` (synchronous): the operator API, `/api/v1`, with the admin key. The
  `shopfloor` CLI is built on it.
- `WorkerProtocolClient` (asyncio): the AgentFactory worker protocol, as the `shopfloor
  worker` daemon speaks it.
"""

from shopfloor.client.errors import ApiError, NotOwner, Unreachable, WorkerNotFound
from shopfloor.client.operator_api import OperatorClient, OperatorError, find_admin_key
from shopfloor.client.worker_protocol import WorkerProtocolClient, is_registration_token
from shopfloor.client.worker_types import (
    InboxMessage,
    PollReply,
    Registration,
    SessionState,
    Transfer,
    WorkItem,
)

__all__ = [
    "ApiError",
    "InboxMessage",
    "NotOwner",
    "OperatorClient",
    "OperatorError",
    "PollReply",
    "Registration",
    "SessionState",
    "Transfer",
    "Unreachable",
    "WorkItem",
    "WorkerNotFound",
    "WorkerProtocolClient",
    "find_admin_key",
    "is_registration_token",
]
