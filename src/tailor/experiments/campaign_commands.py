"""`tailor experiment campaign plan|send|status`: the re-engagement campaigns on the command line.

Exposes `campaign_app`, a Typer app mounted under `tailor experiment` (`cli.py`). Every command
takes `--home` and `--json` (one JSON object on stdout) like the rest of the CLI. Exit codes:
0 done (or campaigns off), 1 when the SMTP server failed during `send` (what went and what
waits are printed; the next run resumes), 2 bad input (a missing setting or definition, no
champion yet, an unknown campaign), 3 a database that cannot be reached.

The command modules are imported inside each command, so `tailor --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from tailor.errors import InputError

if TYPE_CHECKING:
    from tailor.config import Settings

EXIT_SMTP_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SERVICE_FAILED = 3

campaign_app = typer.Typer(
    help="Re-engagement campaigns: churn scores -> e-mails with picks and a discount code; "
         "opens and clicks come back through the collector.",
    no_args_is_help=True)

HOME_OPTION = typer.Option(None, "--home",
                           help="Tailor home folder (default: TAILOR_HOME or ./.tailor).")
JSON_OPTION = typer.Option(False, "--json",
                           help="Print one JSON object on stdout instead of prose.")
CAMPAIGN_OPTION = typer.Option(None, "--campaign", help="Campaign id ([a-z0-9-]); default: "
                               "this ISO week's (plan) or every campaign (send) or the newest "
                               "(status).")


@contextmanager
def _job(home: Optional[Path]) -> Iterator["Settings"]:
    """Settings for a command; bad input exits 2 and an unreachable database 3, one line
    each (what `tailor.cli` does for its own commands, which this package cannot import)."""
    from tailor.logs import setup_logging

    setup_logging()
    from tailor.config import ConfigError, load_settings

    try:
        yield load_settings(home=home)
    except (InputError, ConfigError, FileNotFoundError) as error:
        _say(f"[bold red]error:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as error:
        if not _is_failed_service(error):
            raise
        _say(f"[bold red]service failed:[/] {type(error).__name__}: {' '.join(str(error).split())}")
        raise typer.Exit(EXIT_SERVICE_FAILED) from None


def _is_failed_service(error: Exception) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return any(kind.__module__.startswith("psycopg")
               and kind.__name__ in {"OperationalError", "InterfaceError"}
               for kind in type(error).__mro__)


def _say(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(text, highlight=False, soft_wrap=True)


def _emit(payload: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        _say(human)


def _moment(text: Optional[str], option: str) -> Optional[datetime]:
    """An ISO time option as aware UTC (naive text is UTC)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise InputError(f"{option}: {error}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(
        timezone.utc)


@campaign_app.command("plan")
def plan(
    campaign: Optional[str] = CAMPAIGN_OPTION,
    as_of: Optional[str] = typer.Option(
        None, "--as-of", help="Score churn at this ISO time (default: just after the newest "
                              "event)."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Score churn, pick the customers at risk, and plan their mails (picks, a discount code,
    the discount-timing variant); planning a campaign again adds nobody twice."""
    with _job(home) as settings:
        from tailor.experiments.campaigns import plan_campaign

        report = plan_campaign(settings, campaign, as_of=as_of)
    _emit(report.to_dict(), as_json, report.summary())


@campaign_app.command("send")
def send(
    campaign: Optional[str] = CAMPAIGN_OPTION,
    retry_uncertain: bool = typer.Option(
        False, "--retry-uncertain", help="First put mails an interrupted run left between the "
        "server's accept and the mark back to pending (check the SMTP server's log first: "
        "they may have been delivered)."),
    now: Optional[str] = typer.Option(None, "--now", help="Take this ISO time as now (a dry "
                                      "run of a given hour; tests)."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send the mails whose time has come over the SMTP server of the mail settings; exit 1
    when the server failed (the pending mails go with the next run, nobody gets a mail
    twice)."""
    with _job(home) as settings:
        from tailor.experiments.campaign_send import send_due

        report = send_due(settings, campaign, now=_moment(now, "--now"),
                          retry_uncertain=retry_uncertain)
    _emit(report.to_dict(), as_json, report.summary())
    if not report.ok:
        if as_json:
            _say(f"[bold red]error:[/] {report.summary()}")
        raise typer.Exit(EXIT_SMTP_FAILED)


@campaign_app.command("status")
def status(
    campaign: Optional[str] = CAMPAIGN_OPTION,
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Per variant: customers, mails planned and sent, opened, clicked, CTR, and conversions
    (purchases within the attribution window after a click)."""
    with _job(home) as settings:
        from tailor.experiments.campaign_status import campaign_status, status_lines

        payload = campaign_status(settings, campaign)
    _emit(payload, as_json, "\n".join(status_lines(payload)))
