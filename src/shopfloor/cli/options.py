"""What the `shopfloor` commands share: their common options, the console, and the operator
API client with its error reporting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shopfloor.client import OperatorClient, OperatorError, find_admin_key

console = Console()
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_DIR = Path(".shopfloor")

DataDir = Annotated[
    Path,
    typer.Option(
        envvar="SHOPFLOOR_DATA_DIR", help="Folder for the SQLite file and the admin key file."
    ),
]
DatabaseUrl = Annotated[
    str, typer.Option(envvar="SHOPFLOOR_DATABASE_URL", help="sqlite:///path or postgresql://…")
]
Url = Annotated[str, typer.Option("--url", envvar="SHOPFLOOR_URL", help="Server base URL.")]
SigningKeyFile = Annotated[
    Path | None,
    typer.Option(
        envvar="SHOPFLOOR_SIGNING_KEY_FILE",
        help="Runtime-JWT signing key file (default: signing-keys.json in the data dir).",
    ),
]
AdminKey = Annotated[
    str | None,
    typer.Option(
        envvar="SHOPFLOOR_ADMIN_API_KEY", help="Operator key (default: the data dir's key file)."
    ),
]


@contextmanager
def operator(url: str, admin_key: str | None, data_dir: Path) -> Iterator[OperatorClient]:
    client = OperatorClient(url, find_admin_key(admin_key, data_dir))
    try:
        yield client
    except OperatorError as exc:
        console.print(f"[red]error {exc.status}:[/] {exc.message}")
        raise typer.Exit(1) from None
    except Exception as exc:  # connection refused and the like: say it plainly
        if exc.__class__.__module__.startswith("httpx"):
            console.print(f"[red]cannot reach {url}:[/] {exc}")
            raise typer.Exit(1) from None
        raise
    finally:
        client.close()


def print_table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """The rows' values under these columns (a list joined by commas, nothing for None)."""
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return ",".join(value) if isinstance(value, list) else str(value)
