"""The daily report (`tailor report`, the scheduler's daily job, and `/dashboard`'s page).

Reads the warehouse (`tailor.reports.shop_figures`), the monitoring decisions
(`tailor.reports.model_figures`), the server's metrics (`tailor.reports.server_metrics`) and
the earlier reports' JSON. Writes `<home>/reports/daily/<date>.html` and `.json` and their
`latest` copies (`tailor.reports.files`) and, when asked, mails the team the summary with
the page attached (`tailor.mail`: it waits in the outbox while the SMTP server is down, and a
mail problem never fails the report). The day is a UTC day, yesterday by default: the report
runs in the small hours, after the day it describes has ended. Only aggregates and model
names reach the page, the JSON and the mail; never a customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from tailor.config import Settings
from tailor.errors import InputError
from tailor.reports.model_figures import AccuracyPoint, ModelStatus, model_figures
from tailor.reports.server_metrics import ServerFigures, metrics_url, read_server
from tailor.reports.shop_figures import AnswersDay, ShopDay, ShopFigures, VariantDay, shop_figures


@dataclass(frozen=True)
class DailyReport:
    """Everything one day's report shows."""

    day: date
    first_day: date
    built_at: datetime
    decisions_cutoff: datetime  # the newest monitoring decision shown was taken by then
    max_drop: float
    shop: ShopFigures
    models: list[ModelStatus]
    accuracy: list[AccuracyPoint]
    server: ServerFigures

    @property
    def today(self) -> ShopDay:
        """The report day's row of the shop."""
        return next(row for row in self.shop.days if row.day == self.day)

    @property
    def previous(self) -> ShopDay | None:
        """The day before's row, when the report shows it."""
        return next((row for row in self.shop.days if row.day == self.day - timedelta(days=1)),
                    None)

    def variants_today(self) -> list[VariantDay]:
        return [row for row in self.shop.variants or [] if row.day == self.day]

    def answers_today(self) -> list[AnswersDay]:
        return [row for row in self.shop.answers or [] if row.day == self.day]

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.day.isoformat(), "first_date": self.first_day.isoformat(),
                "built_at": self.built_at.isoformat(),
                "decisions_cutoff": self.decisions_cutoff.isoformat(),
                "max_drop": self.max_drop, "shop": self.shop.to_dict(),
                "today": self.today.to_dict(),
                "models": [status.to_dict() for status in self.models],
                "accuracy": [point.to_dict() for point in self.accuracy],
                "server": self.server.to_dict()}


def default_day(now: datetime) -> date:
    """The day a report describes when none is given: yesterday (UTC)."""
    return now.astimezone(timezone.utc).date() - timedelta(days=1)


def build_daily_report(settings: Settings, day: date | None = None,
                       now: datetime | None = None) -> DailyReport:
    """Gather the figures of `day` and the `report.days` days that end with it.

    Args:
        settings: the home, the warehouse, the event store (decisions), the server's URL.
        day: the UTC day to report; default yesterday.
        now: the current time (tests); default the clock.

    Raises:
        FileNotFoundError: the warehouse was never built.
        InputError: `day` is in the future, or the warehouse is held by another process.
    """
    from tailor.reports.files import earlier_payloads

    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    day = day or default_day(now)
    if day > now.date():
        raise InputError(f"--date {day.isoformat()} is in the future (today is "
                         f"{now.date().isoformat()} UTC)")
    first_day = day - timedelta(days=settings.report_days - 1)
    # A day's report is built early the next day, after that night's monitoring round.
    cutoff = min(now, datetime.combine(day + timedelta(days=2), time(), timezone.utc))
    models, accuracy = model_figures(
        settings, datetime.combine(first_day, time(), timezone.utc), cutoff)
    if day >= now.date() - timedelta(days=1):
        server = read_server(settings, now, [payload.get("server") or {}
                                             for payload in earlier_payloads(settings)])
    else:
        server = ServerFigures("not read", metrics_url(settings),
                               f"the server's counters describe now, not {day.isoformat()}: "
                               "they are read only for yesterday's or today's report")
    return DailyReport(day, first_day, now, cutoff, settings.monitoring_max_drop,
                       shop_figures(settings, first_day, day), models, accuracy, server)
