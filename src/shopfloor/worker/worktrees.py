"""One git worktree per session, on the branch `shopfloor/<session>`, under
`<work dir>/worktrees/<session>`.

A session that comes back after a crash gets its old worktree again when it is still on this
machine (uncommitted changes included), else a new worktree of its branch (its commits).
A completed session's worktree is removed when it holds no uncommitted changes (its branch
stays); any other session's is kept for a person or the next attempt to look at.

The repository is `--repo`, else the one the worker was started in; outside any repository
the worker makes a scratch one in the work dir (one empty commit), so every session still
gets a worktree of its own."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

BRANCH_PREFIX = "shopfloor/"
GIT_TIMEOUT = 120.0
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class GitError(Exception):
    pass


async def git(*args: str, cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:2])}: {message}")
    return out.decode(errors="replace").strip()


def folder_name(session_id: str) -> str:
    """A file-system-safe name for a session id (ids may be chosen by the caller)."""
    safe = _SAFE.sub("-", session_id)[:80]
    if safe == session_id and safe not in (".", ".."):
        return safe
    return f"{safe}-{hashlib.sha256(session_id.encode()).hexdigest()[:8]}"


class Worktrees:
    def __init__(self, work_dir: Path, repo: Path | None) -> None:
        self.work_dir = work_dir.resolve()
        self.root = self.work_dir / "worktrees"
        self._repo = repo.resolve() if repo is not None else None
        self._lock = asyncio.Lock()  # one worktree change at a time in this process...
        self._lock_file: Path | None = None  # ...and across the workers of the repository

    @property
    def repo(self) -> Path:
        if self._repo is None:
            raise RuntimeError("call setup() first")
        return self._repo

    async def setup(self) -> Path:
        """Find (or make) the repository; returns its top level."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._repo is not None:
            self._repo = Path(await git("rev-parse", "--show-toplevel", cwd=self._repo))
        else:
            try:
                self._repo = Path(await git("rev-parse", "--show-toplevel", cwd=Path.cwd()))
            except GitError:
                self._repo = await self._scratch_repo()
        common = await git("rev-parse", "--git-common-dir", cwd=self._repo)
        self._lock_file = (self._repo / common).resolve() / "shopfloor-worktrees.lock"
        async with self._changing():
            await git("worktree", "prune", cwd=self._repo)
        return self._repo

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[None]:
        """Hold the repository's worktree lock: git reads every worktree's admin folder
        while it adds one, so two workers adding worktrees at once can fail each other."""
        async with self._lock:
            if self._lock_file is None:
                yield
                return
            with self._lock_file.open("a") as fh:
                pause = 0.005
                while True:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, 0.1)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    async def _scratch_repo(self) -> Path:
        repo = self.work_dir / "repo"
        if not (repo / ".git").exists():
            repo.mkdir(parents=True, exist_ok=True)
            await git("init", "-q", cwd=repo)
            await git(
                "-c",
                "user.name=shopfloor worker",
                "-c",
                "user.email=worker@shopfloor.invalid",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "shopfloor worker: empty start",
                cwd=repo,
            )
        return repo

    def path_of(self, session_id: str) -> Path:
        return self.root / folder_name(session_id)

    async def prepare(self, session_id: str, previous: str | None = None) -> tuple[Path, bool]:
        """The session's worktree, and whether it existed already (work of an earlier
        attempt). `previous` is the worktree path the session reported before a crash."""
        for candidate in (Path(previous) if previous else None, self.path_of(session_id)):
            if candidate is not None and await self._is_worktree(candidate):
                return candidate, True
        path = self.path_of(session_id)
        branch = BRANCH_PREFIX + folder_name(session_id)
        async with self._changing():
            await _retry(lambda: self._add(path, branch))
        return path, False

    async def _add(self, path: Path, branch: str) -> None:
        await git("worktree", "prune", cwd=self.repo)
        try:
            await git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=self.repo)
        except GitError:
            await git("worktree", "add", "-q", "-b", branch, str(path), "HEAD", cwd=self.repo)
        else:
            await git("worktree", "add", "-q", str(path), branch, cwd=self.repo)

    async def _is_worktree(self, path: Path) -> bool:
        if not (path / ".git").exists():
            return False
        try:
            common = await git("rev-parse", "--git-common-dir", cwd=path)
            mine = await git("rev-parse", "--git-common-dir", cwd=self.repo)
        except GitError:
            return False
        return (path / common).resolve() == (self.repo / mine).resolve()

    async def finish(self, path: Path, completed: bool, keep: bool) -> bool:
        """After the session: remove a completed session's clean worktree unless `keep`.
        Returns whether it was removed."""
        if keep or not completed or not path.is_relative_to(self.root):
            return False
        try:
            if await git("status", "--porcelain", cwd=path):
                return False
            async with self._changing():
                await git("worktree", "remove", str(path), cwd=self.repo)
        except GitError:
            return False
        return True


async def _retry(step: Callable[[], Awaitable[None]], attempts: int = 3) -> None:
    """A worktree change that failed (a leftover of a crash, another git at work) is tried
    again after pruning stale worktree entries."""
    for attempt in range(attempts):
        try:
            await step()
            return
        except GitError:
            if attempt + 1 == attempts:
                raise
            await asyncio.sleep(0.1 * (attempt + 1))
