"""The privacy commands of the `tailor` CLI, and the one place they are registered.

`register(app)` adds `tailor forget` (this module) and then every command of the modules
in `COMMAND_MODULES`: each such module (opt-out and opt-in, retention, ...) has its own
`register(app: typer.Typer) -> None`, and joins by adding its dotted name to that tuple.
`tailor.cli` calls `register` once. Reads and writes what the jobs called do
(`tailor.privacy.forget`); heavy libraries are imported inside the commands; `--home`,
`--json` and the exit codes 2 and 3 come from `tailor.privacy.cli_plumbing`.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from tailor.privacy.cli_plumbing import HOME_OPTION, JSON_OPTION, console, job

if TYPE_CHECKING:
    from tailor.privacy.forget import ForgetResult

# The other privacy modules with commands: each has `register(app)`. Add yours here.
COMMAND_MODULES: tuple[str, ...] = ("tailor.privacy.opt_out_commands",
                                    "tailor.privacy.retention_commands")

EXIT_INCOMPLETE = 1  # a file still holds the customer: the answer lists it
RESUME_HINT = "run the same command with --resume once it is back"


def register(app: typer.Typer) -> None:
    """Add every privacy command to the `tailor` app."""
    app.command("forget")(forget)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(app)


def forget(
    customer: str = typer.Argument(..., help="The customer id to forget everywhere; - reads it "
                                             "from standard input (keeps it off the process "
                                             "list)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue an unfinished forget of this customer: skip the "
                                     "steps it finished (their counts are still reported)."),
    actor: str = typer.Option("", "--actor", help="Who asked, for the audit entry "
                                                   "(default: the login name)."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Right to be forgotten: remove a customer from every store, file and model; tombstone the
    id so import, the collector and training skip it; audit without PII. Exit 1 when a file
    still holds the customer (listed), 3 when a service failed (then --resume)."""
    if customer == "-":
        customer = sys.stdin.read().strip()
    with job(home, RESUME_HINT) as settings:
        from tailor.privacy.forget import forget_customer

        result = forget_customer(settings, customer, resume=resume, actor=actor,
                                 progress=not as_json)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    else:
        console().print(_result_table(result))
    if not result.complete:
        raise typer.Exit(EXIT_INCOMPLETE)


def _result_table(result: "ForgetResult"):
    """What was removed where, one row per store, and the files left (if any)."""
    from rich.table import Table

    table = Table(title=f"forgotten: tombstone {result.tombstone[:16]}… "
                        f"({result.total:,} rows, keys and values in {result.seconds:.1f} s)")
    for column in ("store", "removed", "resumed"):
        table.add_column(column)
    for step, counts in result.removed.items():
        table.add_row(step, ", ".join(f"{name} {count:,}" for name, count in counts.items()),
                      "yes" if step in result.resumed_steps else "")
    for path in result.left:
        table.add_row("[red]left[/]", path, "")
    return table
