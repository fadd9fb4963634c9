"""`shopfloor repos`, `shopfloor git-sources` and `shopfloor batch`: the repositories workers
get short-lived git credentials for, where those come from, and batch work items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from shopfloor.cli.options import (
    DEFAULT_DIR,
    DEFAULT_URL,
    AdminKey,
    DataDir,
    Url,
    console,
    operator,
    print_table,
)

repos_app = typer.Typer(help="Repositories workers get git credentials for.", no_args_is_help=True)
git_sources_app = typer.Typer(
    help="Sources of git credentials: static tokens and GitHub Apps.", no_args_is_help=True
)
batch_app = typer.Typer(help="Batch work items for capable workers.", no_args_is_help=True)

Org = Annotated[str | None, typer.Option(help="Organisation (admin key only).")]


@repos_app.command("add")
def repos_add(
    clone_url: Annotated[str, typer.Argument(help="https clone URL")],
    project: Annotated[str | None, typer.Option(help="Limit it to one project.")] = None,
    source: Annotated[str | None, typer.Option(help="Its credential source id.")] = None,
    org: Org = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Record a repository."""
    body = {"url": clone_url, "projectName": project, "sourceId": source, "orgId": org}
    with operator(url, admin_key, data_dir) as client:
        repo = client.create_item("repositories", body)
    console.print(f"{repo['id']}  {repo['url']}")


@repos_app.command("list")
def repos_list(
    org: Org = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """List repositories."""
    with operator(url, admin_key, data_dir) as client:
        rows = client.list_items("repositories", orgId=org)
    print_table(("id", "url", "provider", "projectName", "sourceId"), rows)


@repos_app.command("remove")
def repos_remove(
    repo_id: str,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Forget a repository."""
    with operator(url, admin_key, data_dir) as client:
        client.delete_item("repositories", repo_id)
    console.print(f"removed {repo_id}")


@git_sources_app.command("add-token")
def sources_add_token(
    name: Annotated[str, typer.Option(help="A name to know it by.")],
    token_file: Annotated[Path, typer.Option(help="File holding the token (kept off argv).")],
    expires_at: Annotated[int | None, typer.Option(help="The token's expiry, epoch ms.")] = None,
    org_default: Annotated[bool, typer.Option(help="The organisation's default source.")] = False,
    org: Org = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Add a static token, handed out as is until its expiry."""
    body = {
        "kind": "static",
        "name": name,
        "token": token_file.read_text().strip(),
        "expiresAt": expires_at,
        "orgDefault": org_default,
        "orgId": org,
    }
    _add_source(body, url, admin_key, data_dir)


@git_sources_app.command("add-github-app")
def sources_add_app(
    name: Annotated[str, typer.Option(help="A name to know it by.")],
    app_id: Annotated[str, typer.Option(help="The GitHub App's id.")],
    installation_id: Annotated[str, typer.Option(help="Its installation's id.")],
    private_key_file: Annotated[Path, typer.Option(help="The App's private key (PEM file).")],
    org_default: Annotated[bool, typer.Option(help="The organisation's default source.")] = False,
    org: Org = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Add a GitHub App: the server mints installation tokens narrowed to each repository."""
    body = {
        "kind": "github_app",
        "name": name,
        "appId": app_id,
        "installationId": installation_id,
        "privateKey": private_key_file.read_text(),
        "orgDefault": org_default,
        "orgId": org,
    }
    _add_source(body, url, admin_key, data_dir)


def _add_source(body: dict[str, Any], url: str, admin_key: str | None, data_dir: Path) -> None:
    with operator(url, admin_key, data_dir) as client:
        source = client.create_item("git-credential-sources", body)
    console.print(f"{source['id']}  {source['kind']}  {source['name']}")


@git_sources_app.command("list")
def sources_list(
    org: Org = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """List credential sources and their last failure (never their secrets)."""
    with operator(url, admin_key, data_dir) as client:
        rows = client.list_items("git-credential-sources", orgId=org)
    print_table(("id", "kind", "name", "orgDefault", "expiresAt", "lastError", "lastErrorAt"), rows)


@git_sources_app.command("remove")
def sources_remove(
    source_id: str,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Delete a credential source (its repositories fall back to the default)."""
    with operator(url, admin_key, data_dir) as client:
        client.delete_item("git-credential-sources", source_id)
    console.print(f"removed {source_id}")


@batch_app.command("add")
def batch_add(
    kind: Annotated[str, typer.Option(help="What to do, e.g. code-survival-scan.")],
    payload: Annotated[str, typer.Option(help="The item's payload, a JSON object.")],
    capability: Annotated[str, typer.Option(help="Workers that get it.")] = "code-survival-scan",
    project: Annotated[str | None, typer.Option(help="Limit it to one project.")] = None,
    org: Org = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Queue a batch item."""
    try:
        parsed = json.loads(payload)
    except ValueError:
        raise typer.BadParameter("must be a JSON object", param_hint="--payload") from None
    body = {
        "kind": kind,
        "capability": capability,
        "payload": parsed,
        "projectName": project,
        "orgId": org,
    }
    with operator(url, admin_key, data_dir) as client:
        item = client.create_item("batch-items", body)
    console.print(f"{item['id']}  {item['status']}")


@batch_app.command("list")
def batch_list(
    status: Annotated[str | None, typer.Option(help="queued, leased, completed or failed.")] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """List batch items, newest first."""
    with operator(url, admin_key, data_dir) as client:
        rows = client.list_items("batch-items", status=status)
    print_table(("id", "kind", "status", "workerId", "attempts", "createdAt", "finishedAt"), rows)


@batch_app.command("show")
def batch_show(
    item_id: str,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """One batch item, with its result."""
    with operator(url, admin_key, data_dir) as client:
        item = client.get_item("batch-items", item_id)
    console.print_json(json.dumps(item))
