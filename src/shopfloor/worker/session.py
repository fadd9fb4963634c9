"""One session on this worker, from the poll that handed it over to its final status, in the
order the af-worker reports it (agentfactory-rensei.md §2.1):

    status running → progress claimed|resumed → (worktree) → status running {worktreePath}
    → progress started → agent runs: activity…, status running {providerSessionId}
    → completion {summary} → files/release-all → status finalizing
    → progress completed|failed|stopped → status completed|failed|stopped {cost, tokens}

While the agent runs, the session's status is read every few seconds (an operator stop, or
the lease gone elsewhere), its issue lock is refreshed every 60 s, and inbox messages are
handled as they arrive: `stop` ends the agent, `nudge` is acknowledged, a `directive` goes to
the agent's stdin if it takes follow-up input, else it waits for the run to end and then runs
as a follow-up (acknowledged when handed to the agent, as the af-worker does).

A session whose lease is gone (403, 404, or another worker on its status) or that the worker
hands back while shutting down gets no final report: it is someone else's now."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from shopfloor.client import (
    ApiError,
    InboxMessage,
    NotOwner,
    Unreachable,
    WorkerProtocolClient,
    WorkItem,
)
from shopfloor.worker import prompts
from shopfloor.worker.activities import ActivityStream
from shopfloor.worker.agents import AgentCommand, RunContext, launch
from shopfloor.worker.output import Activity, OutputParser, RunReport
from shopfloor.worker.process import AgentProcess
from shopfloor.worker.settings import LOCK_REFRESH_SECONDS, WorkerSettings
from shopfloor.worker.worktrees import GitError, Worktrees

log = logging.getLogger("shopfloor.worker")

# How a session ends, and whether it is reported.
COMPLETED, FAILED, STOPPED = "completed", "failed", "stopped"
LOST = "lost"  # the lease is gone: nothing more is reported
HANDED_BACK = "handed back"  # the worker is shutting down: the server requeues it
# What the session reports waits out a server restart or outage (retries back off to 30 s:
# 20 attempts span about 7 minutes); activities and acknowledgements wait less.
PATIENT = 20
SHORT = 5
RESERVE_BATCH = 500  # paths per files/reserve call (the server takes up to 1,000)


class SessionRun:
    def __init__(
        self,
        item: WorkItem,
        client: WorkerProtocolClient,
        worktrees: Worktrees,
        settings: WorkerSettings,
        *,
        status_check_interval: float,
        is_me: Callable[[str], bool],
        on_settled: Callable[[], None] = lambda: None,
    ) -> None:
        self.item = item
        self.sid = item.session_id
        self.client = client
        self.worktrees = worktrees
        self.settings = settings
        self.agent_command: AgentCommand = settings.agents.for_work(item.work_type)
        self.status_check_interval = status_check_interval
        self.is_me = is_me
        self._on_settled = on_settled
        # Settled: no longer live on the server as this worker's (ended, lost or handed
        # back); it no longer counts against the worker's capacity.
        self.settled = False
        self.stream = ActivityStream(self._post_activity, settings.activity_interval)
        # How it ends early, if it does: the first reason given wins.
        self.end_status: str | None = None
        self.end_reason: str | None = None
        self._stop = asyncio.Event()
        self.directives: list[InboxMessage] = []  # waiting for the next run
        self._seen: set[str] = set()  # inbox message ids already handled
        self._reserved: set[str] = set()  # files reserved for the session
        self._background: set[asyncio.Task[Any]] = set()
        self._stream_task: asyncio.Task[None] | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self.agent: AgentProcess | None = None
        self._stdin_json = False
        self._sent = 0  # stream-json user messages written to the running agent
        self.worktree: Path | None = None
        self.provider_session_id: str | None = None
        self._reported_psid: str | None = None
        self.cost_usd: float | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.summary: str | None = None
        self.final_status: str | None = None  # what it ended as, for logs and tests

    # -- control, from the daemon --

    def request_stop(self, status: str, reason: str) -> None:
        if self.end_status is None:
            self.end_status, self.end_reason = status, reason
        self._stop.set()

    def hand_back(self) -> None:
        self.request_stop(HANDED_BACK, "the worker is shutting down")

    def on_message(self, message: InboxMessage) -> None:
        if message.id in self._seen:
            return
        self._seen.add(message.id)
        if message.type == "stop":
            self.request_stop(STOPPED, message.payload or "stopped by the operator")
            self._spawn(self._ack(message))
        elif message.type in ("directive", "hook-result"):
            if not self._stop.is_set() and self._stdin_open():
                self._spawn(self._forward(message))
            else:
                self.directives.append(message)
                log.info("session %s: directive queued for the next run", self.sid)
        else:  # nudge, or a type this worker does not know: nothing to do but acknowledge
            self._spawn(self._ack(message))

    # -- the lifecycle --

    async def run(self) -> None:
        try:
            status, reason = await self._run()
        except NotOwner:
            status, reason = LOST, "the session is owned by another worker"
        except Exception as exc:  # a bug here must not take the worker down
            log.exception("session %s: worker error", self.sid)
            status, reason = FAILED, f"worker error: {type(exc).__name__}: {exc}"
        self.final_status = status
        try:
            await self._finish(status, reason)
        except NotOwner:
            self.final_status = LOST
        except (ApiError, Unreachable) as exc:
            log.warning("session %s: final report failed: %s", self.sid, exc)
        finally:
            self._settle()
            await self._shutdown_background()
        log.info("session %s %s%s", self.sid, self.final_status, f": {reason}" if reason else "")

    async def _run(self) -> tuple[str, str | None]:
        item, client = self.item, self.client
        resumed = item.recovery_packet_id is not None
        await client.report_status(self.sid, "running", attempts=PATIENT)
        packet = await self._recovery_packet() if resumed else None
        await self._progress(
            "resumed" if resumed else "claimed",
            "taken over after a crash" if resumed else f"claimed by {client.worker_id}",
        )
        previous = packet.get("worktreePath") if packet else None
        try:
            worktree, existed = await self.worktrees.prepare(
                self.sid, previous if isinstance(previous, str) else None
            )
        except GitError as exc:
            return FAILED, f"no worktree for the session: {exc}"
        self.worktree = worktree
        await client.report_status(
            self.sid, "running", attempts=PATIENT, worktreePath=str(worktree)
        )
        await self._progress("started", f"{self.agent_command.program} in {worktree}")
        self._stream_task = asyncio.create_task(self.stream.run())
        self._watchers = [asyncio.create_task(self._watch_status())]
        if item.issue_id:
            self._watchers.append(asyncio.create_task(self._refresh_lock(item.issue_id)))
        prompt = prompts.first_prompt(item, packet, existed)
        return await self._run_agent(worktree, prompt)

    async def _run_agent(self, worktree: Path, prompt: str) -> tuple[str, str | None]:
        limit = self.settings.time_limit
        if self.item.max_duration_seconds is not None:
            limit = min(limit, self.item.max_duration_seconds)
        deadline = asyncio.get_running_loop().time() + limit
        mcp_url, mcp_token = await self._mcp()
        ctx = RunContext(
            self.sid, worktree, self.item.work_type, self.item.issue_identifier, mcp_url, mcp_token
        )
        # The server hands a providerSessionId only for work it wants resumed (never after a
        # crash): continue that provider session.
        resume_id = self.item.provider_session_id
        while True:
            ended = await self._run_once(ctx, prompt, resume_id, deadline, limit)
            if ended is not None:
                return ended
            if not self.directives or self._stop.is_set():
                return COMPLETED, None
            batch, self.directives = self.directives, []
            prompt = "\n\n".join(m.payload for m in batch)
            resume_id = self.provider_session_id
            self.stream.add(Activity("thought", f"follow-up run for: {prompt}"))
            for message in batch:
                self._spawn(self._ack(message))

    async def _run_once(
        self,
        ctx: RunContext,
        prompt: str,
        resume_id: str | None,
        deadline: float,
        limit: float,
    ) -> tuple[str, str | None] | None:
        """One agent process. None if it ended well; else how the session ends."""
        if self.end_status is not None:  # stopped (or lost) before the agent started
            return self.end_status, self.end_reason
        spec = launch(self.agent_command, ctx, prompt, resume_id)
        try:
            agent = await AgentProcess.start(spec, ctx.worktree, self.settings.max_output_bytes)
        except FileNotFoundError:
            return FAILED, f"agent command not found: {spec.argv[0]}"
        except OSError as exc:
            return FAILED, f"agent could not start: {spec.argv[0]}: {exc.strerror or exc}"
        self.agent, self._stdin_json, self._sent = agent, spec.stdin_json, 0
        parser = OutputParser()
        if spec.stdin_json:
            await self._send_user_message(prompt)
        consume = asyncio.create_task(self._consume(agent, parser))
        stopped = asyncio.create_task(self._stop.wait())
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        done, _ = await asyncio.wait(
            {consume, stopped}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
        if consume not in done:
            if not self._stop.is_set():
                self.request_stop(FAILED, f"the agent ran past its time limit of {limit:g}s")
            await agent.terminate(self.settings.stop_grace)
            await consume
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped
        self.agent, self._stdin_json = None, False
        self._absorb(parser.report)
        code = agent.proc.returncode
        if self.end_status is not None:
            return self.end_status, self.end_reason
        if code != 0:
            return FAILED, _exit_reason(code, parser.report)
        if parser.report.failure:
            return FAILED, parser.report.failure
        return None

    async def _consume(self, agent: AgentProcess, parser: OutputParser) -> None:
        """Every line of the agent's output, until both streams end and the process exits."""
        reaper = asyncio.create_task(agent.close())  # ends reading once the process is gone
        ended = 0
        try:
            while ended < 2:
                name, text = await agent.lines.get()
                if text is None:
                    ended += 1
                    if agent.flooded:
                        limit = self.settings.max_output_bytes
                        self.request_stop(FAILED, f"the agent wrote more than {limit} bytes")
                    continue
                try:
                    for activity in parser.line(name, text):
                        self.stream.add(activity)
                        self._reserve_edited(activity)
                    await self._after_line(agent, parser.report)
                except Exception:  # one odd line must not stop the reading
                    log.exception("session %s: output line not understood", self.sid)
            await agent.exited()
        finally:
            await reaper

    async def _after_line(self, agent: AgentProcess, report: RunReport) -> None:
        psid = report.provider_session_id
        if psid and psid != self._reported_psid:
            self._reported_psid = self.provider_session_id = psid
            self._spawn(self._report_quietly("running", providerSessionId=psid))
        if self._stdin_json and report.turns_done >= self._sent:
            # The agent has answered every message: hand it what waits, or let it end.
            waiting, self.directives = self.directives, []
            if waiting and not self._stop.is_set():
                for message in waiting:
                    await self._forward(message)
            else:
                self.directives = waiting
                await agent.close_stdin()

    def _absorb(self, report: RunReport) -> None:
        if report.provider_session_id:
            self.provider_session_id = report.provider_session_id
        if report.cost_usd is not None:  # cumulative per process, so runs add up
            self.cost_usd = (self.cost_usd or 0.0) + report.cost_usd
        self.input_tokens += report.input_tokens
        self.output_tokens += report.output_tokens
        self.summary = report.final_summary() or self.summary

    # -- input to the agent --

    def _stdin_open(self) -> bool:
        agent = self.agent
        return (
            agent is not None
            and self._stdin_json
            and agent.proc.stdin is not None
            and not agent.proc.stdin.is_closing()
        )

    async def _send_user_message(self, text: str) -> bool:
        """A stream-json user message, as Claude Code's `--input-format stream-json` reads."""
        agent = self.agent
        if agent is None:
            return False
        frame = {
            "type": "user",
            "message": {"role": "user", "content": text},
            "parent_tool_use_id": None,
            "session_id": self.provider_session_id or "",
        }
        if not await agent.write((json.dumps(frame, ensure_ascii=False) + "\n").encode()):
            return False
        self._sent += 1
        return True

    async def _forward(self, message: InboxMessage) -> None:
        if await self._send_user_message(message.payload):
            self.stream.add(
                Activity("thought", f"directive passed to the agent: {message.payload}")
            )
            await self._ack(message)
        else:
            self.directives.append(message)

    # -- file reservations --

    def _reserve_edited(self, activity: Activity) -> None:
        """Reserve (for the session, on the server) each file the agent edits, so sessions
        on the same repository see each other's work in progress; a file another session
        holds is reported as an error activity (the agent is not stopped)."""
        fresh = [p for p in edited_paths(activity, self.worktree) if p not in self._reserved]
        self._reserved.update(fresh)
        for at in range(0, len(fresh), RESERVE_BATCH):
            self._spawn(self._reserve(fresh[at : at + RESERVE_BATCH]))

    async def _reserve(self, paths: list[str]) -> None:
        try:
            reply = await self.client.reserve_files(self.sid, paths, "edited by the agent")
        except (ApiError, Unreachable) as exc:
            log.warning("session %s: file reservation failed: %s", self.sid, exc)
            return
        for conflict in reply.get("conflicts") or []:
            held = conflict.get("heldBy") or {}
            self.stream.add(
                Activity(
                    "error",
                    f"{conflict.get('filePath')} is reserved by session {held.get('sessionId')}",
                )
            )

    # -- watching the session on the server --

    async def _watch_status(self) -> None:
        """The af-worker's 5-second stop and ownership check."""
        while True:
            await asyncio.sleep(self.status_check_interval)
            try:
                state = await self.client.session_status(self.sid)
            except ApiError as exc:
                if exc.status in (403, 404):
                    self.request_stop(LOST, f"the session is gone from the server ({exc})")
                    return
                continue
            except Unreachable:
                continue
            if state.status == STOPPED:
                self.request_stop(STOPPED, "stopped on the server")
                return
            if state.worker_id and not self.is_me(state.worker_id):
                self.request_stop(LOST, f"the session moved to {state.worker_id}")
                return
            if state.status in ("pending", COMPLETED, FAILED):
                self.request_stop(LOST, f"the session is {state.status} on the server")
                return

    async def _refresh_lock(self, issue_id: str) -> None:
        while True:
            await asyncio.sleep(LOCK_REFRESH_SECONDS)
            try:
                reply = await self.client.lock_refresh(self.sid, issue_id)
            except NotOwner:
                self.request_stop(LOST, "the session is owned by another worker")
                return
            except (ApiError, Unreachable) as exc:  # non-fatal, as for the af-worker
                log.warning("session %s: lock refresh failed: %s", self.sid, exc)
                continue
            if reply.get("stop"):
                self.request_stop(STOPPED, "stopped on the server")
                return

    # -- the end --

    async def _finish(self, status: str, reason: str | None) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        self.stream.close()
        await self._drain_stream()
        if status in (LOST, HANDED_BACK) or self.stream.lost:
            if self.stream.lost:
                self.final_status = LOST
            return
        client = self.client
        with contextlib.suppress(ApiError, Unreachable):
            if self.summary:
                await client.completion(self.sid, self.summary[:100_000], attempts=PATIENT)
            await client.release_all_files(self.sid, attempts=PATIENT)
        await client.report_status(self.sid, "finalizing", attempts=PATIENT)
        with contextlib.suppress(ApiError, Unreachable):
            await self._progress(status, reason or f"the session {status}")
        extras: dict[str, Any] = {
            "providerSessionId": self.provider_session_id,
            "worktreePath": str(self.worktree) if self.worktree else None,
            "totalCostUsd": self.cost_usd,
            "inputTokens": self.input_tokens if self.input_tokens or self.cost_usd else None,
            "outputTokens": self.output_tokens if self.output_tokens or self.cost_usd else None,
        }
        if status == FAILED:
            extras["error"] = {"message": (reason or "failed")[:4000]}
        await client.report_status(self.sid, status, attempts=PATIENT, **extras)
        self._settle()
        if self.worktree is not None:
            await self.worktrees.finish(
                self.worktree, status == COMPLETED, self.settings.keep_worktrees
            )

    async def _drain_stream(self) -> None:
        if self._stream_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stream_task), 30)

    async def _shutdown_background(self) -> None:
        """Stop watching; let the last acknowledgements and reports land (briefly)."""
        loops = [*self._watchers, *([self._stream_task] if self._stream_task else [])]
        for task in loops:
            task.cancel()
        if self._background:
            await asyncio.wait(list(self._background), timeout=10)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*loops, *self._background, return_exceptions=True)

    # -- helpers --

    def _settle(self) -> None:
        if not self.settled:
            self.settled = True
            self._on_settled()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post_activity(self, activity: dict[str, Any]) -> None:
        await self.client.activity(self.sid, activity, attempts=SHORT)

    async def _progress(self, milestone: str, message: str) -> None:
        await self.client.progress(self.sid, milestone, message, attempts=PATIENT)

    async def _mcp(self) -> tuple[str | None, str | None]:
        """The session's MCP endpoint and token for the agent; none if the server has none."""
        try:
            reply = await self.client.mcp_token(self.sid, attempts=SHORT)
        except (ApiError, Unreachable) as exc:
            log.warning("session %s: no MCP endpoint for the agent: %s", self.sid, exc)
            return None, None
        url, token = reply.get("url"), reply.get("token")
        return (url, token) if isinstance(url, str) and isinstance(token, str) else (None, None)

    async def _recovery_packet(self) -> dict[str, Any] | None:
        try:
            return await self.client.recovery_packet(self.sid, attempts=PATIENT)
        except (ApiError, Unreachable) as exc:
            log.warning("session %s: no recovery packet: %s", self.sid, exc)
            return None

    async def _report_quietly(self, status: str, **extra: Any) -> None:
        try:
            await self.client.report_status(self.sid, status, attempts=PATIENT, **extra)
        except NotOwner:
            self.request_stop(LOST, "the session is owned by another worker")
        except (ApiError, Unreachable) as exc:
            log.warning("session %s: status report failed: %s", self.sid, exc)

    async def _ack(self, message: InboxMessage) -> None:
        try:
            await self.client.inbox_ack(self.sid, message.id, message.lane, attempts=SHORT)
        except (ApiError, Unreachable) as exc:
            log.warning("session %s: inbox ack of %s failed: %s", self.sid, message.id, exc)


EDIT_TOOLS = {
    "Edit": "file_path",
    "Write": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}


def edited_paths(activity: Activity, worktree: Path | None) -> list[str]:
    """The files an action edits, relative to the worktree: Claude Code's Edit, Write,
    MultiEdit and NotebookEdit, Codex's file_change."""
    if activity.type != "action" or activity.tool_input is None:
        return []
    raw: list[object] = []
    key = EDIT_TOOLS.get(activity.tool_name or "")
    if key is not None:
        raw.append(activity.tool_input.get(key))
    elif activity.tool_name == "file_change":
        changes = activity.tool_input.get("changes")
        if isinstance(changes, list):
            raw.extend(c.get("path") for c in changes if isinstance(c, dict))
    paths = []
    for value in raw:
        if not isinstance(value, str) or not value.strip():
            continue
        path = Path(value)
        if path.is_absolute() and worktree is not None:
            if not path.is_relative_to(worktree):
                continue  # outside the worktree: not the repository's file
            path = path.relative_to(worktree)
        paths.append(path.as_posix()[:1000])
    return paths


def _exit_reason(code: int | None, report: RunReport) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = f"the agent was killed by {name}"
    else:
        why = f"the agent exited with code {code}"
    detail = report.failure or (report.stderr_tail[-1] if report.stderr_tail else None)
    return f"{why}: {detail[:2000]}" if detail else why
