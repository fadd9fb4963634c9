"""The ASGI application: wires store, services, protocol routers and error envelopes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shopfloor import __version__
from shopfloor.api.agentfactory.routes import router as agentfactory_router
from shopfloor.api.envelope import ApiError, domain_status, error_response
from shopfloor.api.operator.routes import router as operator_router
from shopfloor.api.operator.schemas import validation_message
from shopfloor.api.state import Services
from shopfloor.clock import Clock, SystemClock
from shopfloor.config import Settings
from shopfloor.service.auth import Credentials
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.errors import DomainError
from shopfloor.service.notifier import BroadcastNotifier, LocalNotifier, Notifier
from shopfloor.service.reaper import run_reaper
from shopfloor.store import Store, open_store
from shopfloor.store.pg_notify import PgNotifyChannel

log = logging.getLogger("shopfloor")


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, *, run_upkeep: bool = True
) -> FastAPI:
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await open_store(settings.resolved_database_url(), schema=settings.database_schema)
        credentials = Credentials(settings, store, clock)
        new_admin_key = await credentials.load()
        if new_admin_key:
            print(
                f"shopfloor: generated admin API key (shown once): {new_admin_key}\n"
                f"shopfloor: also saved to {settings.admin_key_file}",
                flush=True,
            )
        if not settings.worker_api_key:
            log.warning(
                "SHOPFLOOR_WORKER_API_KEY is not set: static-key workers are refused; "
                "registration tokens still work"
            )
        notifier = make_notifier(store, settings)
        await notifier.start()
        dispatcher = Dispatcher(
            store,
            clock,
            worker_ttl_seconds=settings.worker_ttl_seconds,
            claim_ttl_seconds=settings.claim_ttl_seconds,
            notifier=notifier,
        )
        app.state.services = Services(settings, clock, dispatcher, credentials)
        reaper = None
        if run_upkeep and settings.reap_interval_seconds > 0:
            reaper = asyncio.create_task(run_reaper(dispatcher, settings.reap_interval_seconds))
        try:
            yield
        finally:
            if reaper is not None:
                reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reaper
            await notifier.close()
            await store.close()

    app = FastAPI(
        title="shopfloor",
        version=__version__,
        description="Self-hosted dispatch server for fleets of AI-agent workers.",
        lifespan=lifespan,
    )
    app.include_router(agentfactory_router)
    app.include_router(operator_router)
    _install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def make_notifier(store: Store, settings: Settings) -> Notifier:
    """LISTEN/NOTIFY on PostgreSQL, so an enqueue on one server process wakes long polls
    waiting on every other; in-process wake-ups on SQLite (one server process)."""
    if store.dialect == "postgresql":
        channel = PgNotifyChannel(settings.resolved_database_url(), schema=settings.database_schema)
        return BroadcastNotifier(channel)
    return LocalNotifier()


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return error_response(domain_status(exc), exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, validation_message(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error")
