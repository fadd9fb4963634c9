"""Who makes a worker-side call, as the domain sees it: the bounds of the credential behind
the call, whatever the protocol it came in by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """`worker_id`: the one worker the credential acts for (a runtime JWT's subject); None
    for a credential that may act for any worker (the static worker key). `project`: the one
    project it may touch (a project-scoped registration token's); None for any.
    `registration_id`: the registration token it was minted from, if any."""

    worker_id: str | None = None
    project: str | None = None
    registration_id: str | None = None

    def may_act_as(self, worker_id: str | None) -> bool:
        return self.worker_id is None or self.worker_id == worker_id

    def may_touch(self, project: str | None) -> bool:
        return self.project is None or self.project == project


ANYONE = Actor()  # the static worker key: the whole fleet's shared credential
