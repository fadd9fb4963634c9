"""SQL for Veryfront conversations, their messages and input requests. Mixed into SqlStore."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from shopfloor.store import schema as t
from shopfloor.store.db import Database
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.records import Expect
from shopfloor.store.run_records import (
    ConversationRecord,
    InputRequestRecord,
    MessageRecord,
    RunRecord,
)
from shopfloor.store.sql_common import fence
from shopfloor.store.sql_runs import server_event


class ConversationsSql:
    db: Database

    # -- conversations --

    async def insert_conversation(self, conversation: ConversationRecord) -> bool:
        """False (nothing written) if the id is taken."""
        async with self.db.begin() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        t.conversations.insert().values(dataclasses.asdict(conversation))
                    )
            except sa.exc.IntegrityError:
                return False
        return True

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        c = t.conversations
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(c).where(c.c.id == conversation_id))).first()
        return None if row is None else ConversationRecord(**row._mapping)

    async def update_conversation(
        self, conversation_id: str, changes: Mapping[str, Any], *, unlinked_only: bool = False
    ) -> ConversationRecord | None:
        """Change a conversation that is not deleted (and, with `unlinked_only`, has no
        project yet); None if it does not match."""
        c = t.conversations
        where = [c.c.id == conversation_id, c.c.deleted_at.is_(None)]
        if unlinked_only:
            where.append(c.c.project_id.is_(None))
        async with self.db.begin() as conn:
            row = (
                await conn.execute(c.update().where(*where).values(dict(changes)).returning(*c.c))
            ).first()
        return None if row is None else ConversationRecord(**row._mapping)

    # -- messages --

    async def add_message(self, message: MessageRecord) -> tuple[MessageRecord, bool] | None:
        """Append a message as the conversation's next seq (message.seq is ignored). A message
        whose idempotency key the conversation already has is not added: that one is returned
        with False. None if the conversation does not exist or is deleted."""
        c, m = t.conversations, t.conversation_messages
        for _attempt in range(3):
            if message.idempotency_key is not None:
                found = await self._message_by_key(message.conversation_id, message.idempotency_key)
                if found is not None:
                    return found, False
            async with self.db.begin() as conn:
                seq = (
                    await conn.execute(
                        c.update()
                        .where(c.c.id == message.conversation_id, c.c.deleted_at.is_(None))
                        .values(message_count=c.c.message_count + 1, updated_at=message.created_at)
                        .returning(c.c.message_count)
                    )
                ).scalar()
                if seq is None:
                    return None
                added = dataclasses.replace(message, seq=int(seq))
                try:
                    async with conn.begin_nested():
                        await conn.execute(m.insert().values(dataclasses.asdict(added)))
                except sa.exc.IntegrityError:
                    # The same idempotency key was added concurrently: undo the seq, then
                    # return that message.
                    await conn.execute(
                        c.update()
                        .where(c.c.id == message.conversation_id)
                        .values(message_count=c.c.message_count - 1)
                    )
                    continue
            return added, True
        raise RuntimeError("message insert kept conflicting")

    async def _message_by_key(self, conversation_id: str, key: str) -> MessageRecord | None:
        m = t.conversation_messages
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(m).where(
                        m.c.conversation_id == conversation_id, m.c.idempotency_key == key
                    )
                )
            ).first()
        return None if row is None else MessageRecord(**row._mapping)

    async def get_message(self, conversation_id: str, message_id: str) -> MessageRecord | None:
        m = t.conversation_messages
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(m).where(m.c.conversation_id == conversation_id, m.c.id == message_id)
                )
            ).first()
        return None if row is None else MessageRecord(**row._mapping)

    async def list_messages(
        self,
        conversation_id: str,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int,
        newest: bool = False,
        role: str | None = None,
    ) -> list[MessageRecord]:
        """Messages with after_seq < seq < before_seq, oldest first: the first `limit` of
        them, or with `newest` the last `limit`."""
        m = t.conversation_messages
        where: list[sa.ColumnElement[bool]] = [m.c.conversation_id == conversation_id]
        if after_seq is not None:
            where.append(m.c.seq > after_seq)
        if before_seq is not None:
            where.append(m.c.seq < before_seq)
        if role is not None:
            where.append(m.c.role == role)
        order = m.c.seq.desc() if newest else m.c.seq.asc()
        query = sa.select(m).where(*where).order_by(order).limit(limit)
        async with self.db.connect() as conn:
            found = [MessageRecord(**row._mapping) for row in await conn.execute(query)]
        return found[::-1] if newest else found

    # -- input requests --

    async def open_input_request(
        self,
        request: InputRequestRecord,
        session_id: str,
        expect: Expect,
        tool_name: str,
        event: Mapping[str, Any],
    ) -> InputRequestRecord | None:
        """Insert an input request and put its run into waiting for that tool call, together,
        only if the run's session still matches `expect` and the run waits for no other
        tool call; `event` is appended to the run with it. None (nothing written) otherwise;
        DuplicateKey if the run already has a request for that tool call."""
        r, s = t.runs, t.sessions
        terms, params = fence(expect)
        held = sa.exists().where(s.c.id == session_id, *terms)
        not_waiting = sa.or_(
            r.c.waiting_tool_call_id.is_(None), r.c.waiting_tool_call_id == request.tool_call_id
        )
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    r.update()
                    .where(r.c.run_id == request.run_id, not_waiting, held)
                    .values(
                        waiting_tool_call_id=request.tool_call_id,
                        waiting_tool_name=tool_name,
                        updated_at=request.created_at,
                    )
                    .returning(r.c.run_id),
                    params,
                )
            ).first()
            if row is None:
                return None
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        t.input_requests.insert().values(dataclasses.asdict(request))
                    )
            except sa.exc.IntegrityError:
                raise DuplicateKey(f"input request for {request.tool_call_id}") from None
            await server_event(conn, request.run_id, event, request.created_at)
        return request

    async def get_input_request(self, request_id: str) -> InputRequestRecord | None:
        ir = t.input_requests
        return await self._one_request(ir.c.id == request_id)

    async def find_input_request(self, run_id: str, tool_call_id: str) -> InputRequestRecord | None:
        ir = t.input_requests
        return await self._one_request(
            sa.and_(ir.c.run_id == run_id, ir.c.tool_call_id == tool_call_id)
        )

    async def _one_request(self, where: sa.ColumnElement[bool]) -> InputRequestRecord | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(t.input_requests).where(where))).first()
        return None if row is None else InputRequestRecord(**row._mapping)

    async def list_input_requests(
        self, conversation_id: str, status: str | None, limit: int
    ) -> list[InputRequestRecord]:
        """A conversation's input requests, oldest first."""
        ir = t.input_requests
        where: list[sa.ColumnElement[bool]] = [ir.c.conversation_id == conversation_id]
        if status is not None:
            where.append(ir.c.status == status)
        query = sa.select(ir).where(*where).order_by(ir.c.created_at, ir.c.id).limit(limit)
        async with self.db.connect() as conn:
            return [InputRequestRecord(**row._mapping) for row in await conn.execute(query)]

    async def settle_input_request(
        self, request_id: str, changes: Mapping[str, Any], result_event: Mapping[str, Any]
    ) -> tuple[InputRequestRecord, RunRecord | None] | None:
        """Move an open input request to `changes` (submitted, cancelled or expired). If its
        run still waits for that tool call, the wait ends and `result_event` is appended to
        the run, in the same transaction. None if the request is not open."""
        ir = t.input_requests
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    ir.update()
                    .where(ir.c.id == request_id, ir.c.status == "open")
                    .values(dict(changes))
                    .returning(*ir.c)
                )
            ).first()
            if row is None:
                return None
            settled = InputRequestRecord(**row._mapping)
            run = await server_event(
                conn,
                settled.run_id,
                result_event,
                settled.updated_at,
                waiting_for=settled.tool_call_id,
            )
        return settled, run
