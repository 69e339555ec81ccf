"""`tailor opt-out CUSTOMER` and `tailor opt-in CUSTOMER` (`register` adds them to the CLI).

Reads and writes the exclusion list and the opt-out audit log through
`tailor.privacy.opt_out`. Like every command: `--home`, `--json` (one JSON object on
stdout), exit 2 with one line for a malformed id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tailor.privacy.cli_plumbing import HOME_OPTION, JSON_OPTION, emit, job

CUSTOMER_ARGUMENT = typer.Argument(
    ..., help="The customer id as events carry it (or a browser's anon-… id).")

_PROSE = {
    ("opt_out", True): "{id} opted out: from the next request on no personalisation, no "
                       "tracking, no campaign mail",
    ("opt_out", False): "{id} was already {status}; nothing changed",
    ("opt_in", True): "{id} opted back in: personalised and tracked again",
    ("opt_in", False): "{id} is {status}; nothing changed",
}


def register(app: typer.Typer) -> None:
    """Add `opt-out` and `opt-in` to the `tailor` app."""
    app.command("opt-out")(opt_out_command)
    app.command("opt-in")(opt_in_command)


def opt_out_command(
    customer: str = CUSTOMER_ARGUMENT,
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop personalising, tracking and mailing a customer (idempotent; audited without PII)."""
    with job(home) as settings:
        from tailor.privacy.opt_out import opt_out

        change = opt_out(settings, customer, source="cli")
    _report(change.to_dict(), as_json)


def opt_in_command(
    customer: str = CUSTOMER_ARGUMENT,
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Undo an opt-out (a deleted customer stays deleted; idempotent; audited)."""
    with job(home) as settings:
        from tailor.privacy.opt_out import opt_in

        change = opt_in(settings, customer, source="cli")
    _report(change.to_dict(), as_json)


def _report(change: dict, as_json: bool) -> None:
    template = _PROSE[(change["action"], change["changed"])]
    emit(change, as_json, template.format(id=change["customer_id"],
                                          status=change["status"].replace("_", " ")))
