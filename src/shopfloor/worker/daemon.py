"""The worker daemon: register, heartbeat, poll, run what the polls hand over, and leave.

- Intervals come from the registration reply (`heartbeatInterval`, `pollInterval`, in ms):
  a heartbeat at once and then every interval; a poll, then `pollInterval` plus up to 40 %
  jitter (or sooner, when a session ends and frees a slot).
- `404 Worker not found` on a heartbeat or poll (the server declared this worker dead, or it
  was deregistered) registers again and asks for each running session to be transferred to
  the new id; a session the server will not transfer is stopped here (its lease is
  elsewhere). Session calls wait while that happens.
- A server that does not answer is retried with growing, jittered delays (never a busy
  loop); running sessions go on meanwhile and report when it is back.
- SIGTERM or SIGINT: drain. No more polls (so no new work); running sessions get
  `drain_timeout` seconds to finish, then their agents are stopped and the sessions handed
  back by deregistering (the server requeues them, each with a recovery packet). A second
  signal hands back at once. A revoked credential stops everything (exit status 1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
from collections.abc import Callable
from pathlib import Path

from shopfloor.client import (
    ApiError,
    PollReply,
    Registration,
    Transfer,
    Unreachable,
    WorkerNotFound,
    WorkerProtocolClient,
    WorkItem,
)
from shopfloor.client.backoff import backoff_delay
from shopfloor.worker.session import LOST, SessionRun
from shopfloor.worker.settings import STATUS_CHECK_MAX, WorkerSettings
from shopfloor.worker.worktrees import GitError, Worktrees

log = logging.getLogger("shopfloor.worker")

POLL_JITTER = 0.4  # the af-worker sleeps pollInterval + up to 40 %
HEARTBEAT_FAILURES_BEFORE_REREGISTER = 3  # as the af-worker (MAX_HEARTBEAT_FAILURES)
HAND_BACK_SECONDS = 10.0  # beyond the stop grace, for a handed-back session to wind down


class Fatal(Exception):
    """The worker cannot go on (its credential was refused or revoked)."""


class Stopped(Exception):
    """Asked to stop before it ever registered."""


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        client: WorkerProtocolClient,
        renew_key: Callable[[], str] | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.renew_key = renew_key  # a fresh key when the one we have is refused (zero-config)
        self.worktrees = Worktrees(settings.work_dir, settings.repo)
        self.sessions: dict[str, SessionRun] = {}
        self.registration: Registration | None = None
        self.my_ids: set[str] = set()
        self.stopping = asyncio.Event()  # first signal: drain
        self.hurry = asyncio.Event()  # second signal: hand back now
        self._slot_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reregistering = asyncio.Lock()
        self.fatal: str | None = None

    # -- the whole life --

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            try:
                repo = await self.worktrees.setup()
            except (GitError, OSError) as exc:
                raise Fatal(f"no repository for the worktrees: {exc}") from None
            log.info("worktrees of %s under %s", repo, self.worktrees.root)
            await self._register()
            heartbeat = asyncio.create_task(self._heartbeat_loop())
            refresher = asyncio.create_task(self._token_loop())
            try:
                await self._poll_loop()
            finally:
                await self._drain()
                heartbeat.cancel()
                refresher.cancel()
                await asyncio.gather(heartbeat, refresher, return_exceptions=True)
            await self._deregister()
        except Fatal as exc:
            self.fatal = str(exc)
        except Stopped:
            pass
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.client.aclose()
        if self.fatal:
            log.error("worker stopped: %s", self.fatal)
            return 1
        log.info("worker stopped")
        return 0

    def _on_signal(self) -> None:
        if self.stopping.is_set():
            log.info("second signal: handing running sessions back now")
            self.hurry.set()
        else:
            log.info("draining: no new work; %d session(s) running", len(self.sessions))
        self.stopping.set()

    def _give_up(self, why: str) -> None:
        self.fatal = why
        self.stopping.set()
        self.hurry.set()
        for run in self.sessions.values():
            run.request_stop(LOST, why)

    # -- registration --

    async def _register(self) -> Registration:
        s = self.settings
        attempt = 0
        renewed = False
        while True:
            try:
                reg = await self.client.register(s.hostname, s.capacity, list(s.projects))
                break
            except Unreachable as exc:
                if self.stopping.is_set() and not self.sessions:
                    raise Stopped from None
                delay = backoff_delay(attempt)
                log.warning("cannot register (%s); again in %.1fs", exc, delay)
                attempt += 1
                await self._sleep(delay)
            except ApiError as exc:
                if exc.status == 401 and self.renew_key is not None and not renewed:
                    renewed = True
                    self.client.set_key(self.renew_key())
                    continue
                raise Fatal(f"registration refused: {exc}") from None
        self.registration = reg
        self.my_ids.add(reg.worker_id)
        log.info(
            "registered %s (heartbeat %d ms, poll %d ms%s)",
            reg.worker_id,
            reg.heartbeat_interval_ms,
            reg.poll_interval_ms,
            ", runtime token" if reg.runtime_token else "",
        )
        return reg

    async def _reregister(self, stale_id: str | None) -> None:
        """Register again and keep the running sessions (transfer-ownership), once, however
        many loops noticed that the server forgot this worker."""
        async with self._reregistering:
            old = self.client.worker_id
            if old != stale_id or old is None:
                return  # done meanwhile
            self.client.hold()
            try:
                log.warning("the server does not know %s any more: registering again", old)
                new = (await self._register()).worker_id
                for sid, run in list(self.sessions.items()):
                    try:
                        moved = await self.client.transfer_ownership(sid, old, new)
                    except (ApiError, Unreachable) as exc:
                        moved = Transfer(False, str(exc))
                    if moved.transferred:
                        log.info("session %s transferred to %s", sid, new)
                    else:
                        log.warning("session %s not transferred to %s: %s", sid, new, moved.reason)
                        run.request_stop(LOST, f"not transferred: {moved.reason}")
            finally:
                self.client.release()

    def is_me(self, worker_id: str) -> bool:
        return worker_id in self.my_ids

    def active_count(self) -> int:
        """Sessions live on the server as this worker's: what capacity and heartbeats count
        (a session that reported its end is free there while it tidies up here)."""
        return sum(1 for run in self.sessions.values() if not run.settled)

    # -- loops --

    async def _heartbeat_loop(self) -> None:
        try:
            await self._heartbeats()
        except Fatal as exc:
            self._give_up(str(exc))
        except Stopped:
            pass

    async def _heartbeats(self) -> None:
        failures = 0
        while True:
            me = self.client.worker_id
            try:
                await self.client.heartbeat(self.active_count(), _load())
                failures = 0
            except WorkerNotFound:
                await self._reregister(me)
            except Unreachable as exc:
                log.warning("heartbeat: %s", exc)
            except ApiError as exc:
                if exc.status == 401:
                    self._give_up(f"credential refused: {exc.message}")
                    return
                failures += 1
                log.warning("heartbeat: %s", exc)
                if failures >= HEARTBEAT_FAILURES_BEFORE_REREGISTER:
                    failures = 0
                    await self._reregister(me)
            await asyncio.sleep(self._intervals()[0])

    async def _token_loop(self) -> None:
        """Refresh the runtime JWT before it expires (a call that finds it expired refreshes
        it too)."""
        try:
            await self._refreshes()
        except Fatal as exc:
            self._give_up(str(exc))
        except Stopped:
            pass

    async def _refreshes(self) -> None:
        while True:
            left = self.client.token_expires_in()
            if left is None:
                await asyncio.sleep(60)
                continue
            await asyncio.sleep(max(1.0, left - max(1.0, min(60.0, left / 10))))
            try:
                await self.client.refresh_token()
                log.info("runtime token refreshed")
            except Unreachable as exc:
                log.warning("token refresh: %s", exc)
            except WorkerNotFound:
                await self._reregister(self.client.worker_id)
            except ApiError as exc:
                self._give_up(f"runtime token not refreshed: {exc.message}")
                return

    async def _poll_loop(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            me = self.client.worker_id
            self._slot_freed.clear()  # a session ending from now on wakes the next poll
            try:
                reply = await self.client.poll()
                failures = 0
            except WorkerNotFound:
                await self._reregister(me)
                continue
            except Unreachable as exc:
                delay = backoff_delay(failures)
                failures += 1
                log.warning("poll: %s; again in %.1fs", exc, delay)
                await self._sleep(delay)
                continue
            except ApiError as exc:
                if exc.status == 401:
                    self._give_up(f"credential refused: {exc.message}")
                    return
                delay = backoff_delay(failures)
                failures += 1
                log.warning("poll: %s; again in %.1fs", exc, delay)
                await self._sleep(delay)
                continue
            await self._take(reply)
            poll_s = self._intervals()[1]
            await self._sleep(poll_s + random.uniform(0, POLL_JITTER * poll_s), wake_on_slot=True)

    async def _take(self, reply: PollReply) -> None:
        for sid, messages in reply.inbox.items():
            run = self.sessions.get(sid)
            for message in messages:
                if run is not None:
                    run.on_message(message)
                elif message.type != "directive":  # a stop or nudge for a session gone by
                    with contextlib.suppress(ApiError, Unreachable):
                        await self.client.inbox_ack(sid, message.id, message.lane)
        for item in reply.work:
            if item.session_id in self.sessions:  # an earlier run of it is still finishing
                await self._nack(item, "still finishing an earlier run of this session")
                continue
            if self.stopping.is_set() or self.active_count() >= self.settings.capacity:
                await self._nack(item, "worker draining" if self.stopping.is_set() else "full")
                continue
            if not reply.pre_claimed:
                try:
                    if not await self.client.claim(item.session_id):
                        continue
                except (ApiError, Unreachable) as exc:
                    log.warning("claim of %s failed: %s", item.session_id, exc)
                    continue
            self._start(item)

    async def _nack(self, item: WorkItem, reason: str) -> None:
        try:
            await self.client.nack(item, reason)
        except (ApiError, Unreachable) as exc:
            log.warning("nack of %s failed: %s", item.session_id, exc)

    def _start(self, item: WorkItem) -> None:
        poll_s = self._intervals()[1]
        run = SessionRun(
            item,
            self.client,
            self.worktrees,
            self.settings,
            status_check_interval=min(STATUS_CHECK_MAX, poll_s),
            is_me=self.is_me,
            on_settled=self._slot_freed.set,
        )
        self.sessions[item.session_id] = run
        log.info("session %s started (%s)", item.session_id, item.work_type or "no work type")
        task = asyncio.create_task(run.run())
        self._tasks.add(task)

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self.sessions.pop(item.session_id, None)
            self._slot_freed.set()

        task.add_done_callback(done)

    # -- leaving --

    async def _drain(self) -> None:
        if self._tasks:
            log.info(
                "waiting up to %gs for %d session(s)", self.settings.drain_timeout, len(self._tasks)
            )
            hurry = asyncio.create_task(self.hurry.wait())
            try:
                await self._wait_sessions_or(hurry)
            finally:
                hurry.cancel()
        for run in list(self.sessions.values()):
            run.hand_back()
        if self._tasks:
            # Handed-back sessions report nothing: they end as soon as their agents have
            # (a session still waiting on an unreachable server is cut short).
            grace = self.settings.stop_grace + HAND_BACK_SECONDS
            _, stuck = await asyncio.wait(self._tasks, timeout=grace)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait_sessions_or(self, hurry: asyncio.Task[bool]) -> None:
        deadline = asyncio.get_running_loop().time() + self.settings.drain_timeout
        while self._tasks and not hurry.done():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            await asyncio.wait(
                [*self._tasks, hurry], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )

    async def _deregister(self) -> None:
        if self.client.worker_id is None:
            return
        try:
            handed = await self.client.deregister()
            log.info("deregistered; handed back: %s", ", ".join(handed) or "nothing")
        except (ApiError, Unreachable) as exc:
            log.warning("deregister failed: %s", exc)

    # -- helpers --

    def _intervals(self) -> tuple[float, float]:
        reg = self.registration
        if reg is None:
            return 30.0, 5.0
        return reg.heartbeat_interval_ms / 1000, reg.poll_interval_ms / 1000

    async def _sleep(self, seconds: float, wake_on_slot: bool = False) -> None:
        """Sleep, but not past a stop request (or, if asked, a session's end)."""
        waits = [asyncio.create_task(self.stopping.wait())]
        if wake_on_slot:
            waits.append(asyncio.create_task(self._slot_freed.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)


def _load() -> dict[str, float]:
    """What the af-worker reports: the 1-minute load average and the share of memory used."""
    cpu = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    memory = 0.0
    with contextlib.suppress(OSError, ValueError, ZeroDivisionError):
        lines = Path("/proc/meminfo").read_text().splitlines()
        info = dict(line.split(":", 1) for line in lines if ":" in line)
        total = int(info["MemTotal"].split()[0])
        available = int(info["MemAvailable"].split()[0])
        memory = 1 - available / total
    return {"cpu": round(cpu, 2), "memory": round(memory, 3)}
