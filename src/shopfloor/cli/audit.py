"""`shopfloor audit`: export an organisation's audit log and its public keys from a running
server, verify an exported log offline (against the JWKS alone, no database), and rotate
the audit signing key."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from shopfloor.service import audit_chain
from shopfloor.service.audit_keys import AuditKeyError, rotate

audit_app = typer.Typer(
    help="The audit log: export, verify offline, rotate its signing key.", no_args_is_help=True
)
console = Console()
PAGE = 200


@audit_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Where to write the log (JSON lines).")],
    url: Annotated[str, typer.Option("--url", envvar="SHOPFLOOR_URL")] = "http://127.0.0.1:8000",
    key: Annotated[
        str, typer.Option("--key", envvar="SHOPFLOOR_API_KEY", help="An org key with audit:read")
    ] = "",
    org: Annotated[str | None, typer.Option(help="The organisation (admin key only)")] = None,
    jwks_out: Annotated[
        Path | None, typer.Option(help="Also save the organisation's JWKS here")
    ] = None,
) -> None:
    """Write every entry of the organisation's log, in order, one JSON object a line."""
    headers = {"Authorization": f"Bearer {key}"}
    entries: list[dict[str, Any]] = []
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30) as http:
        while True:
            params: dict[str, Any] = {"limit": PAGE, "offset": len(entries)}
            if org:
                params["workspaceId"] = org
            reply = http.get("/api/audit", params=params)
            if reply.status_code != 200:
                console.print(f"[red]{reply.status_code}[/] {reply.text}")
                raise typer.Exit(1)
            page = reply.json()["events"]
            entries.extend(page)
            if len(page) < PAGE:
                break
        if jwks_out is not None and entries:
            workspace = entries[0]["workspaceId"]
            jwks = http.get(f"/.well-known/audit-keys/{workspace}").json()
            jwks_out.write_text(json.dumps(jwks, indent=2) + "\n")
    out.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    console.print(f"{len(entries)} entries written to {out}")


@audit_app.command("verify")
def verify(
    log: Annotated[Path, typer.Argument(help="An exported log (JSON lines or a JSON array).")],
    jwks: Annotated[
        str, typer.Option(help="The JWKS: a file, or the URL of /.well-known/audit-keys/{id}")
    ],
) -> None:
    """Check every entry of an exported log: chain, hashes and signatures. Exits 1 and names
    the first broken entry if any was modified, removed or reordered."""
    keys = audit_chain.public_keys(_jwks(jwks))
    verdict = audit_chain.verify(_entries(log), keys)
    console.print_json(data=verdict.as_dict())
    if not verdict.valid:
        broken = verdict.broken_at
        assert broken is not None
        console.print(f"[red]broken at sequence {broken.sequence_number}:[/] {broken.reason}")
        raise typer.Exit(1)
    console.print(f"[green]valid[/]: {verdict.event_count} entries")


@audit_app.command("rotate-key")
def rotate_key(
    data_dir: Annotated[Path, typer.Option(envvar="SHOPFLOOR_DATA_DIR")] = Path(".shopfloor"),
    key_file: Annotated[Path | None, typer.Option(envvar="SHOPFLOOR_AUDIT_KEY_FILE")] = None,
) -> None:
    """Sign new entries with a new key; older keys stay published (revoked) for history."""
    path = key_file or data_dir / "audit-keys.json"
    try:
        seed = rotate(path, int(time.time() * 1000))
    except AuditKeyError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"new audit signing key {seed.kid}; servers pick it up without a restart")


def _jwks(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        found: dict[str, Any] = httpx.get(source, timeout=30).json()
        return found
    loaded: dict[str, Any] = json.loads(Path(source).read_text())
    return loaded


def _entries(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    if text.lstrip().startswith("["):
        found: list[dict[str, Any]] = json.loads(text)
        return found
    return [json.loads(line) for line in text.splitlines() if line.strip()]
