"""Repositories and the short-lived git credentials a worker gets for them on its poll.

A repository belongs to an organisation (optionally to one of its projects) and names a
credential source, else its organisation's default source is used. A source is a static
token the operator gave (handed out as is, until its configured expiry), or a GitHub App
whose installation tokens the server mints, narrowed to the one repository and cached until
shortly before they expire. Secrets are sealed by the secret box; a source that fails never
fails the poll: its credential is left out and the failure kept on the source (without the
secret) for the operator to see."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from shopfloor.clock import Clock
from shopfloor.outbound.github import GitHubError, installation_token
from shopfloor.service.errors import InvalidInput, ResourceNotFound
from shopfloor.service.secret_box import SecretBox, SecretBoxError
from shopfloor.store import Store
from shopfloor.store.errors import DuplicateKey
from shopfloor.store.git_records import GitSourceRecord, RepositoryRecord
from shopfloor.store.records import SessionRecord

log = logging.getLogger("shopfloor.git")

STATIC, GITHUB_APP = "static", "github_app"
# A cached installation token is minted anew this long before it expires.
REFRESH_MARGIN_MS = 5 * 60 * 1000
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


@dataclass(frozen=True)
class GitCredential:
    token: str
    clone_url: str
    expires_at: int | None  # epoch ms


@dataclass(frozen=True)
class NewGitSource:
    kind: str
    name: str
    secret: str  # the token, or the App's private key (PEM)
    org_default: bool = False
    app_id: str | None = None
    installation_id: str | None = None
    expires_at: int | None = None


def repo_key(text: str) -> str | None:
    """`host/owner/name` in lower case for a clone URL (https or scp-like `git@host:o/n`), a
    `host/owner/name` path or a GitHub `owner/name`; None if it names no repository."""
    text = text.strip()
    if "://" in text:
        parts = urlsplit(text)
        host, path = parts.hostname or "", parts.path
    elif re.match(r"^[^/@\s]+@[^:/\s]+:", text):
        host, path = text.split("@", 1)[1].split(":", 1)
    else:
        segments = text.split("/")
        host, path = (
            ("github.com", text) if len(segments) == 2 else (segments[0], "/".join(segments[1:]))
        )
    path = path.strip("/").removesuffix(".git")
    segments = path.split("/")
    if not host or len(segments) != 2 or not all(_SEGMENT.match(s) for s in segments):
        return None
    return f"{host}/{path}".lower()


class GitCredentials:
    def __init__(self, store: Store, clock: Clock, box: SecretBox, github_api_url: str) -> None:
        self.store = store
        self.clock = clock
        self.box = box
        self.github_api_url = github_api_url
        self._minted: dict[tuple[str, str], GitCredential] = {}

    # -- repositories --

    async def add_repository(
        self, org_id: str, url: str, project: str | None, source_id: str | None
    ) -> RepositoryRecord:
        key = repo_key(url)
        if key is None or not url.startswith("https://"):
            raise InvalidInput("url", "url must be an https clone URL of a repository")
        if source_id is not None:
            await self.source(org_id, source_id)
        repo = RepositoryRecord(
            id=f"repo_{secrets.token_hex(16)}",
            org_id=org_id,
            url=url,
            key=key,
            provider="github" if key.startswith("github.com/") else "generic",
            created_at=self.clock.now_ms(),
            project=project,
            source_id=source_id,
        )
        try:
            await self.store.insert_repository(repo)
        except DuplicateKey:
            raise InvalidInput("url", f"url: the organisation has {key} already") from None
        return repo

    async def repositories(self, org_id: str) -> list[RepositoryRecord]:
        return await self.store.list_repositories(org_id)

    async def repository(self, org_id: str | None, repo_id: str) -> RepositoryRecord:
        repo = await self.store.get_repository(repo_id)
        if repo is None or (org_id is not None and repo.org_id != org_id):
            raise ResourceNotFound("Repository", repo_id)
        return repo

    async def remove_repository(self, org_id: str | None, repo_id: str) -> None:
        await self.repository(org_id, repo_id)
        await self.store.delete_repository(repo_id)

    # -- credential sources --

    async def add_source(self, org_id: str, new: NewGitSource) -> GitSourceRecord:
        source_id = f"gcs_{secrets.token_hex(16)}"
        source = GitSourceRecord(
            id=source_id,
            org_id=org_id,
            kind=new.kind,
            name=new.name,
            sealed_secret=self.box.seal(new.secret, _context(source_id)),
            created_at=self.clock.now_ms(),
            org_default=new.org_default,
            app_id=new.app_id,
            installation_id=new.installation_id,
            expires_at=new.expires_at,
        )
        await self.store.insert_git_source(source)
        return source

    async def sources(self, org_id: str) -> list[GitSourceRecord]:
        return await self.store.list_git_sources(org_id)

    async def source(self, org_id: str | None, source_id: str) -> GitSourceRecord:
        source = await self.store.get_git_source(source_id)
        if source is None or (org_id is not None and source.org_id != org_id):
            raise ResourceNotFound("Credential source", source_id)
        return source

    async def remove_source(self, org_id: str | None, source_id: str) -> None:
        await self.source(org_id, source_id)
        await self.store.delete_git_source(source_id)
        self._minted = {k: v for k, v in self._minted.items() if k[0] != source_id}

    # -- delivery --

    async def for_sessions(self, org_id: str, sessions: list[SessionRecord]) -> list[GitCredential]:
        """A credential for each distinct repository of these sessions that the organisation
        has a record and a working source for."""
        keys = {k for s in sessions if s.repository and (k := repo_key(s.repository))}
        if not keys:
            return []
        repos = await self.store.list_repositories(org_id, sorted(keys))
        sources = {s.id: s for s in await self.store.list_git_sources(org_id)}
        default = next((s for s in sources.values() if s.org_default), None)
        found = []
        for repo in repos:
            source = sources.get(repo.source_id or "") or default
            if source is not None and (credential := await self._credential(source, repo)):
                found.append(credential)
        return found

    async def _credential(
        self, source: GitSourceRecord, repo: RepositoryRecord
    ) -> GitCredential | None:
        now = self.clock.now_ms()
        try:
            secret = self.box.open(source.sealed_secret, _context(source.id))
            if source.kind == STATIC:
                if source.expires_at is not None and source.expires_at <= now:
                    raise GitHubError("the static token has expired")
                credential = GitCredential(secret, repo.url, source.expires_at)
            else:
                credential = await self._installation_credential(source, repo, secret, now)
        except (GitHubError, SecretBoxError) as exc:
            log.warning("git credential source %s failed for %s: %s", source.id, repo.key, exc)
            await self.store.record_git_source_error(source.id, str(exc), now)
            return None
        if source.last_error is not None:
            await self.store.record_git_source_error(source.id, None, now)
        return credential

    async def _installation_credential(
        self, source: GitSourceRecord, repo: RepositoryRecord, private_key: str, now: int
    ) -> GitCredential:
        cached = self._minted.get((source.id, repo.key))
        if cached and cached.expires_at and cached.expires_at - now > REFRESH_MARGIN_MS:
            return cached
        minted = await installation_token(
            self.github_api_url,
            source.app_id or "",
            private_key,
            source.installation_id or "",
            repo.key.rsplit("/", 1)[1],
            now // 1000,
        )
        credential = GitCredential(minted.token, repo.url, minted.expires_at_ms)
        self._minted[(source.id, repo.key)] = credential
        return credential


def _context(source_id: str) -> str:
    return f"git-source:{source_id}"
