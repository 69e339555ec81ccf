"""`tailor keys create|list|revoke`: API keys with scopes on the command line.

Exposes `keys_app`, a Typer app mounted as `tailor keys` (`cli.py`). Reads and writes the
keys file through `tailor.events.keys` (and the identity secret file through
`tailor.events.identity`). A plain key is printed once, by `create`, on stdout only;
`list` and `revoke` show a key's id (the first 12 hex digits of its hash), never the key.
Every command takes `--home` and `--json`; exit 2 on bad input (an unknown scope or id).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

import typer

from tailor.errors import InputError

if TYPE_CHECKING:
    from tailor.config import Settings

EXIT_BAD_INPUT = 2

keys_app = typer.Typer(help="API keys with scopes (stored hashed; the plain key is shown once).",
                       no_args_is_help=True)

HOME_OPTION = typer.Option(None, "--home",
                           help="Tailor home folder (default: TAILOR_HOME or ./.tailor).")
JSON_OPTION = typer.Option(False, "--json",
                           help="Print one JSON object on stdout instead of prose.")


@contextmanager
def _job(home: Optional[Path]) -> Iterator["Settings"]:
    """Settings for a command; bad input exits 2 with one line (as `tailor.cli` does)."""
    from tailor.logs import setup_logging

    setup_logging()
    from tailor.config import ConfigError, load_settings

    try:
        yield load_settings(home=home)
    except (InputError, ConfigError, FileNotFoundError, FileExistsError) as error:
        _say(f"[bold red]error:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _say(text: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(text, highlight=False)


@keys_app.command("create")
def create(
    kind: str = typer.Argument(
        "secret", help="public (browser pages, events:write only), secret (server to server; "
                       "the default) or identity (the shop's secret for signing customer ids)."),
    scope: Optional[List[str]] = typer.Option(
        None, "--scope", help="events:write, recommendations:read or admin; repeat for "
                              "several. Default: events:write for public keys, events:write "
                              "+ recommendations:read for secret ones."),
    label: str = typer.Option("", help="A note to recognise the key by (e.g. the shop's name)."),
    expires_in_days: Optional[float] = typer.Option(
        None, "--expires-in-days", help="The key stops working this many days from now."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a key; prints it once on stdout (only its SHA-256 hash is kept). An identity
    secret is kept as it is (mode 0600): the collector needs it to check signatures."""
    if kind == "identity":
        _create_identity_secret(home, as_json)
        return
    with _job(home) as settings:
        from tailor.events.keys import (create_key, hash_key, key_id, keys_file_path,
                                        read_key_entries)

        keys_file = keys_file_path(settings)
        plain_key = create_key(kind, keys_file, label=label, scopes=scope or None,
                               expires_in_days=expires_in_days)
        entry = next(entry for entry in read_key_entries(keys_file)
                     if entry["id"] == key_id(hash_key(plain_key)))
    if as_json:
        sys.stdout.write(json.dumps({"kind": kind, "key": plain_key, "id": entry["id"],
                                     "scopes": entry["scopes"],
                                     "expires_at": entry.get("expires_at"),
                                     "keys_file": str(keys_file)}) + "\n")
    else:
        sys.stdout.write(plain_key + "\n")
        _say(f"{kind} key {entry['id']} ({', '.join(entry['scopes'])}) created; its hash is in "
             f"{keys_file}. Copy it now: it cannot be shown again.")


@keys_app.command("list")
def list_(
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Every key: id, kind, scopes, label, created, status (active, revoked, expired); with
    --json also the last 4 hex digits of its hash. Never the key itself."""
    with _job(home) as settings:
        from tailor.events.keys import list_keys

        rows = [info.to_dict() for info in list_keys(settings)]
    if as_json:
        sys.stdout.write(json.dumps({"keys": rows}) + "\n")
        return
    from rich.console import Console
    from rich.table import Column, Table

    table = Table(Column("id", no_wrap=True, min_width=12), Column("kind", no_wrap=True),
                  Column("scopes", no_wrap=True, min_width=20), Column("label", overflow="fold"),
                  Column("created", no_wrap=True), Column("status", no_wrap=True),
                  title="API keys (--json adds the last 4 hex digits of each hash)")
    for row in rows:  # the id must stay whole: it is what `tailor keys revoke` takes
        table.add_row(row["id"], row["kind"], "\n".join(row["scopes"]), row["label"],
                      row["created_at"][:10], row["status"])
    Console(stderr=True, soft_wrap=True).print(table if rows else "no keys yet: "
                                               "`tailor keys create --scope ...`")


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key's id, as `tailor keys list` shows it."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a key: running collectors and servers refuse it (403) within seconds. It
    stays listed as revoked."""
    with _job(home) as settings:
        from tailor.events.keys import keys_file_path, revoke_key

        info = revoke_key(keys_file_path(settings), key_id)
    row: dict[str, Any] = info.to_dict()
    if as_json:
        sys.stdout.write(json.dumps(row) + "\n")
    else:
        _say(f"key {row['id']} ({row['kind']}, {', '.join(row['scopes'])}) revoked at "
             f"{row['revoked_at']}")


def _create_identity_secret(home: Optional[Path], as_json: bool) -> None:
    """`tailor keys create identity`: write the shop's identity secret and print it."""
    with _job(home) as settings:
        from tailor.events.identity import create_identity_secret, identity_secret_path

        path = identity_secret_path(settings)
        secret = create_identity_secret(path)
    if as_json:
        sys.stdout.write(json.dumps({"kind": "identity", "key": secret,
                                     "secret_file": str(path)}) + "\n")
    else:
        sys.stdout.write(secret + "\n")
        _say(f"identity secret written to {path} (mode 0600). Give it to the shop's server: it "
             "signs each signed-in customer's id (hex HMAC-SHA256) for tailor.identify(id, "
             "{signature}); turn on collector.require_signed_identity once it does.")
