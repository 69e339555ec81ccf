"""`tailor report`: refresh the warehouse, build the day's report, write it, mail it.

Reads and writes what `tailor.reports.daily`, `files` and `summary` do, and refreshes the
warehouse first (`tailor.warehouse.refresh_warehouse`: the sessions and orders tables are
rebuilt from the lake, as `tailor warehouse` does), so the figures include the lake's newest
export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from tailor.config import Settings
from tailor.errors import InputError
from tailor.pages import formats


@dataclass(frozen=True)
class ReportRun:
    """What `tailor report` did: the report, where it went, and the mail's fate."""

    payload: dict[str, Any]
    paths: dict[str, str]
    mail: dict[str, Any] = field(default_factory=dict)  # a Delivery's dict; empty: not asked

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.payload["date"], "paths": self.paths, "mail": self.mail or None,
                "today": self.payload["today"], "models": self.payload["models"],
                "server": {key: self.payload["server"][key]
                           for key in ("status", "url", "note", "scraped_at", "since")}}

    def summary_line(self) -> str:
        today = self.payload["today"]
        mail = f"; mail {self.mail['status']}" if self.mail else ""
        error = f" ({self.mail['error']})" if self.mail.get("error") else ""
        return (f"daily report {self.payload['date']}: {formats.count(today['sessions'])} "
                f"sessions, conversion {formats.percent(today['conversion'])}, revenue "
                f"{formats.money(today['revenue'])} -> {self.paths['html']} (latest: "
                f"{self.paths['latest_html']}){mail}{error}")


def run_daily_report(settings: Settings, day: date | None = None, mail: bool = False,
                     now: datetime | None = None, refresh: bool = True) -> ReportRun:
    """Build, write and (with `mail`) send one day's report.

    Args:
        settings: the Tailor settings.
        day: the UTC day; default yesterday.
        mail: send the summary with the page attached to `mail.recipients`.
        now: the current time (tests).
        refresh: rebuild the warehouse's tables from the lake first.

    Raises:
        InputError: a day in the future, or a warehouse another process holds.
    """
    from tailor.reports.daily import build_daily_report
    from tailor.reports.files import write_report
    from tailor.reports.page import render_page
    from tailor.reports.summary import mail_report

    if refresh:
        _refresh(settings)
    report = build_daily_report(settings, day, now)
    payload = report.to_dict()
    paths = write_report(settings, report.day, render_page(report), payload)
    delivery = mail_report(settings, report, paths).to_dict() if mail else {}
    return ReportRun(payload, paths, delivery)


def _refresh(settings: Settings) -> None:
    """Rebuild the warehouse's tables; a warehouse another process holds is an InputError
    (the CLI's exit 2) that says to run again, not a traceback."""
    import duckdb

    from tailor.warehouse import refresh_warehouse

    try:
        refresh_warehouse(settings)
    except duckdb.Error as error:
        raise InputError(f"the warehouse could not be refreshed ({error}); run the report "
                         "again once the other process is done") from None
