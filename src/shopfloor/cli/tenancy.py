"""`shopfloor orgs`, `shopfloor keys` and `shopfloor m2m`: organisations, their API keys and
their OAuth clients, through the server's API with the admin key. A secret is printed once,
when it is made; nothing lists it again."""

from __future__ import annotations

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

orgs_app = typer.Typer(help="Organisations (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="An organisation's API keys (rsk_live_…).", no_args_is_help=True)
m2m_app = typer.Typer(
    help="M2M clients (OAuth 2.0 client credentials) of an organisation.", no_args_is_help=True
)

OrgOption = Annotated[str, typer.Option("--org", help="Organisation id or slug.")]
Scopes = Annotated[
    list[str] | None,
    typer.Option("--scope", help="A scope (repeatable), e.g. sessions:read; * for all."),
]


@orgs_app.command("create")
def orgs_create(
    slug: Annotated[str, typer.Argument(help="Lower-case letters, digits and dashes.")],
    name: Annotated[str | None, typer.Option(help="A display name (default: the slug).")] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Create an organisation."""
    with operator(url, admin_key, data_dir) as client:
        org = client.create_org(slug, name)
    console.print(f"{org['id']}  {org['slug']}  {org['name']}")


@orgs_app.command("list")
def orgs_list(
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """List organisations."""
    with operator(url, admin_key, data_dir) as client:
        print_table(("id", "slug", "name", "createdAt"), client.list_orgs())


@keys_app.command("mint")
def keys_mint(
    org: OrgOption,
    name: Annotated[str, typer.Option(help="What the key is for.")],
    project: Annotated[
        list[str] | None,
        typer.Option("--project", help="Limit it to a project (repeatable; default: all)."),
    ] = None,
    scope: Scopes = None,
    workers: Annotated[
        bool, typer.Option("--worker-registration", help="A key that registers workers.")
    ] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Mint a key; its secret is printed this once."""
    body: dict[str, Any] = {"name": name, "projects": project or "all"}
    if scope:
        body["scopes"] = scope
    if workers:
        body["keyType"] = "worker_registration"
    with operator(url, admin_key, data_dir) as client:
        key = client.mint_key(org, body)
    console.print(f"{key['id']}  {key['keyPrefix']}…  scopes {','.join(key['scopes'])}")
    console.print("secret (shown once):")
    print(key["fullKey"])


@keys_app.command("list")
def keys_list(
    org: OrgOption,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """List the organisation's keys (never their secrets)."""
    with operator(url, admin_key, data_dir) as client:
        keys = client.list_keys(org)
    columns = ("id", "name", "keyPrefix", "keyType", "projectIds", "scopes", "createdAt")
    print_table((*columns, "expiresAt", "revokedAt"), keys)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str,
    org: OrgOption,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Revoke a key at once (with the runtime tokens of workers it registered)."""
    with operator(url, admin_key, data_dir) as client:
        client.revoke_key(org, key_id)
    console.print(f"revoked {key_id}")


@m2m_app.command("create")
def m2m_create(
    org: OrgOption,
    name: Annotated[str, typer.Option(help="What the client is for.")],
    scope: Scopes = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Create a client; its secret is printed this once."""
    body = {"name": name, "scopes": scope or ["*"], "orgId": org}
    with operator(url, admin_key, data_dir) as client:
        made = client.create_m2m_client(body)
    console.print(f"client id {made['clientId']}  scopes {','.join(made['scopes'])}")
    console.print("client secret (shown once):")
    print(made["clientSecret"])


@m2m_app.command("list")
def m2m_list(
    org: Annotated[str | None, typer.Option(help="One organisation (default: all).")] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """List clients (never their secrets)."""
    with operator(url, admin_key, data_dir) as client:
        clients = client.list_m2m_clients(org)
    print_table(("clientId", "orgId", "name", "scopes", "createdAt", "revokedAt"), clients)


@m2m_app.command("revoke")
def m2m_revoke(
    client_id: str,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Revoke a client and every access token issued to it."""
    with operator(url, admin_key, data_dir) as client:
        client.revoke_m2m_client(client_id)
    console.print(f"revoked {client_id}")
