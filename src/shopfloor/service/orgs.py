"""Organisations: the tenant boundary above projects. Every key, session, worker and
environment belongs to one; the operator's admin key acts in all of them."""

from __future__ import annotations

import re
import uuid

from shopfloor.clock import Clock
from shopfloor.service.errors import Conflict, InvalidInput, OrgNotFound
from shopfloor.store import Store
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.tenancy_records import OrgRecord

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


class Orgs:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def create(self, slug: str, name: str | None = None) -> OrgRecord:
        if not SLUG.match(slug):
            raise InvalidInput(
                "slug", "slug: 1-100 of a-z, 0-9 and -, starting with a letter or digit"
            )
        org = OrgRecord(
            id="org_" + uuid.uuid4().hex,
            slug=slug,
            name=name or slug,
            created_at=self.clock.now_ms(),
        )
        try:
            await self.store.insert_org(org)
        except DuplicateKey:
            raise Conflict(f"An organisation with slug {slug} exists") from None
        return org

    async def get(self, id_or_slug: str) -> OrgRecord:
        org = await self.store.get_org(id_or_slug)
        if org is None:
            raise OrgNotFound(id_or_slug)
        return org

    async def list(self) -> list[OrgRecord]:
        return await self.store.list_orgs()
