"""The ASGI application: wires store, services, protocol routers and error envelopes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from shopfloor import __version__
from shopfloor.api import jsonrpc
from shopfloor.api.a2a.card import router as a2a_card_router
from shopfloor.api.a2a.registry_routes import router as a2a_registry_router
from shopfloor.api.a2a.routes import router as a2a_router
from shopfloor.api.agentfactory.channel_routes import router as channel_router
from shopfloor.api.agentfactory.issue_proxy import router as issue_proxy_router
from shopfloor.api.agentfactory.routes import router as agentfactory_router
from shopfloor.api.agentfactory.routing_routes import router as routing_router
from shopfloor.api.agentfactory.token_routes import router as token_router
from shopfloor.api.docs import install_docs
from shopfloor.api.envelope import ApiError, domain_status, error_response
from shopfloor.api.environments import errors as env_errors
from shopfloor.api.environments.routes import ANTHROPIC, QODER, environments_router
from shopfloor.api.fastlane import FastLane, lanes
from shopfloor.api.limits import BodyLimit, BodyLimits
from shopfloor.api.managed.routes import managed_router
from shopfloor.api.mcp.fleet_routes import router as fleet_router
from shopfloor.api.mcp.routes import router as mcp_router
from shopfloor.api.mcp.token_routes import router as mcp_token_router
from shopfloor.api.metrics.process import ProcessMetrics
from shopfloor.api.metrics.routes import router as metrics_router
from shopfloor.api.openapi import install_openapi
from shopfloor.api.operator.channel_routes import router as operator_channel_router
from shopfloor.api.operator.git_routes import router as operator_git_router
from shopfloor.api.operator.project_routes import router as operator_project_router
from shopfloor.api.operator.routes import router as operator_router
from shopfloor.api.operator.schemas import validation_message
from shopfloor.api.platform.audit_routes import router as audit_router
from shopfloor.api.platform.credentials import router as credentials_router
from shopfloor.api.platform.oauth import router as oauth_router
from shopfloor.api.platform.routes import router as platform_router
from shopfloor.api.platform.trigger_routes import router as trigger_router
from shopfloor.api.platform.webhook_routes import router as webhook_router
from shopfloor.api.public.daemon_credentials import router as daemon_credentials_router
from shopfloor.api.public.daemon_routes import router as daemon_router
from shopfloor.api.public.errors import (
    is_platform_path,
    platform_domain_error,
    platform_error,
)
from shopfloor.api.public.metrics import router as public_metrics_router
from shopfloor.api.public.routes import router as public_router
from shopfloor.api.public.token_stream import router as token_stream_router
from shopfloor.api.public.whoami import router as whoami_router
from shopfloor.api.state import Services
from shopfloor.api.veryfront.conversation_routes import router as conversation_router
from shopfloor.api.veryfront.errors import (
    is_veryfront_path,
    veryfront_domain_error,
    veryfront_error,
)
from shopfloor.api.veryfront.routes import router as veryfront_router
from shopfloor.api.veryfront.run_routes import router as run_router
from shopfloor.clock import Clock, SystemClock
from shopfloor.config import Settings
from shopfloor.console.routes import install_console
from shopfloor.outbound.a2a_peers import A2aPeers
from shopfloor.outbound.messages import MessagesClient
from shopfloor.service.a2a_registry import A2aRegistry
from shopfloor.service.audit import AuditLog
from shopfloor.service.audit_appender import Appender, Pace
from shopfloor.service.audit_keys import AuditKeys
from shopfloor.service.audit_signer import Signer
from shopfloor.service.auth import Credentials
from shopfloor.service.batch import BatchWork
from shopfloor.service.daemon_mutations import PendingHosts
from shopfloor.service.dispatch import Dispatcher
from shopfloor.service.errors import DomainError
from shopfloor.service.git_credentials import GitCredentials
from shopfloor.service.linear_events import LinearEvents
from shopfloor.service.managed.sessions import ManagedSessions
from shopfloor.service.managed.turns import TurnRunner
from shopfloor.service.memory import Memory
from shopfloor.service.notifier import (
    BroadcastNotifier,
    LocalNotifier,
    Notifier,
    cancel_wait,
)
from shopfloor.service.orgs import Orgs
from shopfloor.service.reaper import run_reaper
from shopfloor.service.secret_box import SecretBox
from shopfloor.service.triggers import Triggers
from shopfloor.service.vault import Vault
from shopfloor.service.webhooks import Webhooks, WebhookSettings
from shopfloor.service.work import WorkQueue
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
        secrets = SecretBox(settings.secret_key_path)
        secrets.load_or_create(clock.now_ms())
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
        credentials.watch_revocations(notifier)
        pending_mutations = PendingHosts(store)
        pending_mutations.watch(notifier)
        await notifier.start()
        await pending_mutations.reload()
        dispatcher = Dispatcher(
            store,
            clock,
            worker_ttl_seconds=settings.worker_ttl,
            claim_ttl_seconds=settings.claim_ttl_seconds,
            issue_lock_ttl_seconds=settings.issue_lock_ttl_seconds,
            file_lock_ttl_seconds=settings.file_lock_ttl_seconds,
            notifier=notifier,
            poll_hold_ms=settings.poll_hold_ms,
        )
        model = MessagesClient(
            base_url=settings.model_base_url,
            api_key=settings.resolved_model_api_key(),
            timeout_seconds=settings.model_timeout_seconds,
        )
        peers = A2aPeers(
            timeout_seconds=settings.a2a_timeout_seconds, allowed_hosts=settings.a2a_hosts()
        )
        vault = Vault(
            store,
            clock,
            notifier,
            secrets,
            own_secrets=(settings.admin_api_key, settings.worker_api_key),
        )
        turns = TurnRunner(
            store,
            clock,
            notifier,
            model,
            lease_seconds=settings.turn_lease_seconds,
            max_tokens=settings.model_max_tokens,
        )
        if isinstance(app, ShopfloorApp) and app.metrics is not None:
            app.metrics.watch(dispatcher.counters)
            app.metrics.watch_database(store.observers)
        audit, webhooks = make_integrations(settings, store, clock, dispatcher, secrets)
        await store.set_session_audit(settings.audit_sessions)
        credentials.audit = audit
        work = WorkQueue(dispatcher, settings.work_lease_ttl_seconds)
        app.state.services = Services(
            settings,
            clock,
            dispatcher,
            credentials,
            work,
            ManagedSessions(
                store,
                clock,
                notifier,
                turns,
                keepalive_seconds=settings.stream_keepalive_seconds,
                live=dispatcher.live,
            ),
            turns,
            Orgs(store, clock),
            secrets,
            GitCredentials(store, clock, secrets, settings.github_api_url),
            BatchWork(store, clock, settings.batch_lease_seconds),
            audit,
            webhooks,
            Memory(store, clock),
            A2aRegistry(store, clock, peers),
            vault,
            pending_mutations,
        )
        # Every process stores its queues' claim counts (the console's charts).
        upkeep: list[asyncio.Task[None]] = [asyncio.create_task(dispatcher.queue_history.run())]
        if isinstance(app, ShopfloorApp) and app.metrics is not None:
            upkeep.append(asyncio.create_task(app.metrics.db_tally.run()))
        if run_upkeep and settings.reap_interval_seconds > 0:
            upkeep.append(
                asyncio.create_task(
                    run_reaper(dispatcher, settings.reap_interval_seconds, [credentials.upkeep])
                )
            )
            # Model calls of managed sessions whose process died, taken over once their
            # lease runs out (and the ones due when this process started).
            upkeep.append(asyncio.create_task(turns.run_upkeep(settings.reap_interval_seconds)))
            # Webhook deliveries stored but never processed (their process died after the
            # 200), and those stored before this process started.
            upkeep.append(asyncio.create_task(webhooks.run_upkeep(settings.reap_interval_seconds)))
            # Sessions created, claimed and ended, from the audit outbox into the
            # organisations' chains, yielding to the requests while the process is busy.
            upkeep.append(asyncio.create_task(_audit_appender(app, settings, audit).run()))
        try:
            yield
        finally:
            for task in upkeep:
                await cancel_wait(task)
            await webhooks.close()
            await work.close()
            if audit.signer is not None:
                await audit.signer.close()
            await turns.close()
            await model.close()
            await peers.close()
            await notifier.close()
            await store.close()
            print("shopfloor: stopped cleanly", flush=True)

    app = ShopfloorApp(
        title="shopfloor",
        version=__version__,
        description="Self-hosted dispatch server for fleets of AI-agent workers.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their assets from a CDN: see api/docs.py
        redoc_url=None,
    )
    routers = [
        agentfactory_router,
        # Before the operator router: /api/v1/cloud/… is the environment API, not the operator's.
        environments_router(QODER),
        environments_router(ANTHROPIC),
        channel_router,
        issue_proxy_router,
        operator_router,
        operator_git_router,
        operator_project_router,
        operator_channel_router,
        platform_router,
        oauth_router,
        webhook_router,
        trigger_router,
        audit_router,
        public_router,
        public_metrics_router,
        whoami_router,
        routing_router,
        token_router,
        token_stream_router,
        daemon_router,
        credentials_router,
        daemon_credentials_router,
        veryfront_router,
        run_router,
        conversation_router,
        managed_router(QODER),
        managed_router(ANTHROPIC),
        fleet_router,  # before /api/mcp/{sessionId}
        mcp_router,
        mcp_token_router,
        a2a_card_router,
        a2a_router,
        a2a_registry_router,
    ]
    for router in routers:
        app.include_router(router)
    _install_error_handlers(app)
    install_docs(app)
    install_openapi(app)
    app.fast_lane = FastLane(lanes(routers), app.exception_handlers)
    app.body_limits = BodyLimits(routers, settings.max_body_bytes)
    app.metrics = ProcessMetrics()
    app.include_router(metrics_router)
    install_console(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# The collector's youngest generation is collected after this many new container objects
# (CPython's default: 700). A server with many long polls open keeps each poll's objects alive
# for up to a second: collected every 700 allocations, they survive into the oldest generation,
# whose full passes over every open connection's objects then pause the event loop for tens of
# milliseconds. Collected ten times less often, most of them are gone by refcount first.
# Measured side by side, 1,000 long-polling workers on SQLite (benchmark idle-envapi-sqlite):
# claim p99 30-67 ms in six runs with the default threshold, 8.7-13.4 ms in eight with 7,000.
GC_THRESHOLDS = (7_000, 10, 100)
# Telemetry switched on while the server runs reaches the fast lane's routes within this.
TELEMETRY_LOOK_EVERY_S = 1.0


def served_app(settings: Settings | None = None) -> FastAPI:
    """The app as `shopfloor serve` runs it: `create_app`, in a process whose garbage collector
    is tuned for a long-running server (a process-wide setting, so not made by create_app)."""
    gc.set_threshold(*GC_THRESHOLDS)
    return create_app(settings)


def make_integrations(
    settings: Settings, store: Store, clock: Clock, dispatcher: Dispatcher, box: SecretBox
) -> tuple[AuditLog, Webhooks]:
    """The audit log (recording what the dispatcher does) and the webhook intake, with their
    keys read from (or created in) their files outside the database."""
    keys = AuditKeys(settings.audit_key_path)
    keys.load_or_create(clock.now_ms())
    audit = AuditLog(store, clock, keys, Signer() if settings.audit_signer_process else None)
    dispatcher.audit = audit
    dispatcher.channel.audit = audit
    webhook_settings = WebhookSettings(
        secrets=settings.webhook_secrets(),
        skip_verification=settings.webhook_skip_verification,
        timestamp_tolerance_ms=int(settings.webhook_timestamp_tolerance_seconds * 1000),
        lease_ms=int(settings.turn_lease_seconds * 1000),
        allowed_projects=settings.allowed_linear_projects(),
    )
    linear = LinearEvents(
        dispatcher, webhook_settings.allowed_projects, settings.linear_session_cap
    )
    triggers = Triggers(dispatcher, clock, audit)
    return audit, Webhooks(store, clock, audit, linear, triggers, box, webhook_settings)


def make_notifier(store: Store, settings: Settings) -> Notifier:
    """LISTEN/NOTIFY on PostgreSQL, so an enqueue on one server process wakes long polls
    waiting on every other; in-process wake-ups on SQLite (one server process)."""
    if store.dialect == "postgresql":
        channel = PgNotifyChannel(settings.resolved_database_url(), schema=settings.database_schema)
        return BroadcastNotifier(channel)
    return LocalNotifier()


@dataclass(frozen=True)
class Envelope:
    """How one protocol writes its errors, and the paths it owns."""

    owns: Callable[[str], bool]
    error: Callable[[Request, int, str, dict[str, str] | None], JSONResponse]
    domain_error: Callable[[Request, DomainError], JSONResponse]


AGENTFACTORY = Envelope(  # also shopfloor's own operator API: the default
    owns=lambda _path: True,
    error=lambda _req, status, message, headers: error_response(status, message, headers),
    domain_error=lambda _req, exc: error_response(domain_status(exc), exc.message),
)
ENVIRONMENTS = Envelope(
    owns=env_errors.is_environment_path,
    error=lambda req, status, message, headers: env_errors.error_response(
        req, status, message, headers=headers
    ),
    domain_error=env_errors.domain_error_response,
)
VERYFRONT = Envelope(
    owns=is_veryfront_path,
    error=lambda _req, status, message, headers: veryfront_error(status, message, headers),
    domain_error=lambda _req, exc: veryfront_domain_error(exc),
)
# The A2A endpoint answers even HTTP-level refusals (401, 405, 413) in the JSON-RPC envelope.
_A2A_CODES = {401: -32000, 403: -32000, 404: -32601, 405: -32601, 500: -32603}
A2A = Envelope(
    owns=lambda path: path == "/api/a2a",
    error=lambda _req, status, message, headers: jsonrpc.error_reply(
        status, _A2A_CODES.get(status, jsonrpc.INVALID_REQUEST), message, headers
    ),
    domain_error=lambda _req, exc: jsonrpc.error_reply(
        domain_status(exc), jsonrpc.INVALID_PARAMS, exc.message
    ),
)
PLATFORM = Envelope(  # the public Sessions API and the daemon routes: {"error": "…"}
    owns=is_platform_path,
    error=lambda _req, status, message, headers: platform_error(status, message, headers),
    domain_error=lambda _req, exc: platform_domain_error(exc),
)
# First owner wins: the platform's /v1/daemon/ before the environments' /v1/.
ENVELOPES = (PLATFORM, ENVIRONMENTS, VERYFRONT, A2A, AGENTFACTORY)


def envelope_for(request: Request) -> Envelope:
    path = request.url.path
    return next(e for e in ENVELOPES if e.owns(path))


class ShopfloorApp(FastAPI):
    """FastAPI, with three things done before its middleware stack sees an HTTP request.

    - A path or query string carrying NUL is answered 400, in the owning protocol's
      envelope: PostgreSQL can store NUL in no text column.
    - The body is bounded (api/limits.py): a declared length over the route's limit is
      refused unread, and reading past the limit fails.
    - A request for a hot route is served by the fast lane (api/fastlane.py), unless
      FastAPI's own telemetry is on (then FastAPI serves it, traced) or the app is mounted
      under a root path (FastAPI's own matching deals with the prefix)."""

    fast_lane: FastLane | None = None
    body_limits: BodyLimits | None = None
    metrics: ProcessMetrics | None = None
    requests_started = 0  # HTTP requests, for the audit appender's idea of busy
    _telemetry_seen: tuple[float, bool] = (float("-inf"), False)  # (when looked, on)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests_started += 1
        if scope["type"] == "http" and self.metrics is not None:
            await self.metrics.measure(self._serve_http, scope, receive, send)
            return
        if scope["type"] == "http":
            await self._serve_http(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _telemetry_on(self) -> bool:
        """Whether FastAPI's telemetry is on, looked up at most every TELEMETRY_LOOK_EVERY_S:
        the look reads the OpenTelemetry providers from the environment, which cost about
        4 % of an idle long poll's CPU when done for every request."""
        now = time.monotonic()
        looked, on = self._telemetry_seen
        if not 0 <= now - looked < TELEMETRY_LOOK_EVERY_S:
            on = _telemetry_on(self)
            self._telemetry_seen = (now, on)
        return on

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _refuse_nul(scope, receive, send)
            return
        if self.body_limits is not None:
            over, receive = self.body_limits.guard(scope, receive)
            if over is not None:
                await _refuse_body(over, scope, receive, send)
                return
        lane = self.fast_lane
        unprefixed = not (self.root_path or scope.get("root_path"))
        found = lane.find(scope) if lane is not None and unprefixed else None
        if lane is not None and found is not None and not self._telemetry_on():
            scope["app"] = self
            scope["route"] = found[0].route
            await lane.serve(*found, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _refuse_nul(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope)
    message = "The URL must not contain the NUL character (%00)"
    response = envelope_for(request).error(request, 400, message, None)
    await response(scope, receive, send)


async def _refuse_body(limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a request whose declared length is over its limit, without reading its body;
    the connection is closed after the answer, so the unread body is never parsed."""
    request = Request(scope)
    headers = {"connection": "close"}
    response = envelope_for(request).error(request, limit.status, limit.refusal, headers)
    await response(scope, receive, send)


def _audit_appender(app: FastAPI, settings: Settings, audit: AuditLog) -> Appender:
    pace = Pace(
        interval_s=settings.audit_append_interval_ms / 1000,
        max_lag_s=settings.audit_append_max_lag_ms / 1000,
        max_backlog=settings.audit_append_max_backlog,
        busy_requests_per_s=settings.audit_busy_requests_per_s,
    )
    if not isinstance(app, ShopfloorApp):  # a plain FastAPI counts no requests: never busy
        return Appender(audit, pace, lambda: 0)
    return Appender(audit, pace, lambda: app.requests_started)


def _telemetry_on(app: FastAPI) -> bool:
    """Whether FastAPI traces or meters requests (its native OpenTelemetry support, on when a
    provider is configured; a private attribute, absent from FastAPI versions without it)."""
    telemetry = getattr(app, "_native_telemetry", None)
    return telemetry is not None and bool(telemetry.enabled())


def _install_error_handlers(app: FastAPI) -> None:
    """Each protocol's errors in its own envelope, chosen by the request path."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return envelope_for(request).error(request, exc.status, exc.message, None)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return envelope_for(request).domain_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = validation_message(list(exc.errors()))
        return envelope_for(request).error(request, 400, message, None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        return envelope_for(request).error(request, exc.status_code, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope_for(request).error(request, 500, "Internal server error", None)
