"""`tailor data-retention [--apply] [--days N]` (`register` adds it to the CLI).

Reads and, with `--apply`, deletes through `tailor.privacy.retention`: raw events older than
`privacy.event_retention_days` in the event store and the lake. A dry run by default. Named
apart from `tailor retention` (the churn model's retention campaign list). `--json` prints
one JSON object on stdout; exit 2 with one line for bad input (or a lake export that kept
its lock), 3 when the event store cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tailor.privacy.cli_plumbing import HOME_OPTION, JSON_OPTION, emit, job


def register(app: typer.Typer) -> None:
    """Add `data-retention` to the `tailor` app."""
    app.command("data-retention")(data_retention)


def data_retention(
    apply: bool = typer.Option(False, "--apply", help="Delete (default: only say what would "
                                                      "go, per store)."),
    days: Optional[int] = typer.Option(None, "--days", min=1,
                                       help="Keep this many days instead of "
                                            "privacy.event_retention_days."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete raw events older than privacy.event_retention_days from the event store (with
    dead letters) and the lake; a dry run unless --apply."""
    with job(home) as settings:
        from tailor.privacy.retention import run_retention

        report = run_retention(settings, apply=apply, days=days)
    emit(report.to_dict(), as_json, report.summary())
