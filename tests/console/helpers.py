"""Signing in to the console in-process, as a browser would: a form post, then the cookie."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

COOKIE = "shopfloor_console"


@asynccontextmanager
async def browser(api: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app with a cookie jar of its own."""
    transport = api._transport  # the app's ASGI transport
    async with httpx.AsyncClient(transport=transport, base_url="http://shopfloor") as client:
        yield client


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/console/login", data={"key": key})


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found.group(1)
