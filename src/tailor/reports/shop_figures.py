"""The shop's figures for the daily report, from the DuckDB warehouse.

Reads the warehouse's `sessions` and `orders` tables and its `predictions` view (the server's
prediction log as `tailor export` copied it to the lake; `tailor.warehouse`); writes nothing. The counts and sums come
from the SQL in `sql/` beside this file; the ratios (conversion, AOV, fallback rate) are
computed here, None where nothing was there to divide by. Every figure is an aggregate: no
customer or session id leaves this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from importlib import resources
from typing import Any

from tailor.config import Settings
from tailor.errors import InputError

PREDICTIONS = "predictions"


def load_sql(name: str) -> str:
    """The text of `sql/<name>.sql` shipped with the package."""
    return resources.files("tailor.reports").joinpath("sql", f"{name}.sql").read_text("utf-8")


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is 0."""
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class ShopDay:
    """One UTC day of the shop (or of one variant's sessions, `VariantDay`)."""

    day: date
    sessions: int
    converted_sessions: int  # sessions with a purchase
    orders: int
    revenue: float

    @property
    def conversion(self) -> float | None:
        """Sessions with a purchase / sessions."""
        return ratio(self.converted_sessions, self.sessions)

    @property
    def aov(self) -> float | None:
        """Average order value: revenue / orders."""
        return ratio(self.revenue, self.orders)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat(), "conversion": self.conversion,
                "aov": self.aov}


@dataclass(frozen=True)
class VariantDay(ShopDay):
    """The sessions one variant of one model was served on a day, and what they bought."""

    model: str = ""
    variant: str = ""


@dataclass(frozen=True)
class AnswersDay:
    """One endpoint's answers on one UTC day, from the prediction log."""

    day: date
    endpoint: str
    answers: int
    fallbacks: int
    stale: int

    @property
    def fallback_rate(self) -> float | None:
        return ratio(self.fallbacks, self.answers)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat(), "fallback_rate": self.fallback_rate}


@dataclass(frozen=True)
class ShopFigures:
    """The report's warehouse figures; `variants` and `answers` are None when the warehouse
    has no predictions view (`note` says so), empty when nothing was logged."""

    days: list[ShopDay]
    variants: list[VariantDay] | None
    answers: list[AnswersDay] | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"days": [row.to_dict() for row in self.days],
                "variants": None if self.variants is None
                else [row.to_dict() for row in self.variants],
                "answers": None if self.answers is None
                else [row.to_dict() for row in self.answers],
                "note": self.note}


def shop_figures(settings: Settings, first_day: date, last_day: date) -> ShopFigures:
    """The shop per day, by variant and the prediction log's answers, from `first_day` to
    `last_day` (UTC days, both included).

    Raises:
        FileNotFoundError: the warehouse was never built (`tailor warehouse`).
        InputError: another process is writing the warehouse (DuckDB's message names it).
    """
    import duckdb

    from tailor.warehouse import open_warehouse

    window = {"first_day": first_day, "last_day": last_day}
    try:
        connection = open_warehouse(settings, read_only=True)
    except duckdb.Error as error:  # another process is writing it
        raise InputError(f"the warehouse cannot be read now ({error}); run the report again "
                         "once the other process is done") from None
    try:
        return _figures(settings, connection, window)
    finally:
        connection.close()


def _figures(settings: Settings, connection: Any, window: dict[str, date]) -> ShopFigures:
    """The three queries on one open connection."""
    days = [ShopDay(day=row[0], sessions=int(row[1]), converted_sessions=int(row[2]),
                    orders=int(row[3]), revenue=float(row[4]))
            for row in connection.execute(load_sql("shop_by_day"), window).fetchall()]
    if not _has_relation(connection, PREDICTIONS):
        return ShopFigures(days, None, None, note=(
            "the warehouse has no predictions view (it was built before the prediction "
            "log): figures by variant and the served answers need `tailor warehouse` once"))
    variants_sql = load_sql("variants_by_day").format(
        session_gap_minutes=int(settings.events_session_gap_minutes))
    variants = [VariantDay(day=row[0], model=str(row[1]), variant=str(row[2]),
                           sessions=int(row[3]), converted_sessions=int(row[4]),
                           orders=int(row[5]), revenue=float(row[6]))
                for row in connection.execute(variants_sql, window).fetchall()]
    answers = [AnswersDay(day=row[0], endpoint=str(row[1]), answers=int(row[2]),
                          fallbacks=int(row[3]), stale=int(row[4]))
               for row in connection.execute(load_sql("answers_by_day"), window).fetchall()]
    return ShopFigures(days, variants, answers)


def _has_relation(connection: Any, name: str) -> bool:
    """Whether the warehouse has a table or view called `name`."""
    return bool(connection.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()[0])
