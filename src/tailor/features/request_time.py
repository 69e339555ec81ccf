"""Features computed at request time from stored timestamps and the request's own time.

The Feast on-demand views `customer_recency` and `request_context`
(`feature_store/on_demand_features.py`) call these functions, so online reads and
training sets (`get_historical_features`, where the request time is the entity row's
timestamp) run the same code. Inputs and outputs are dicts of equal-length lists, the
shape of Feast's Python-mode transformations; a missing input (None, NaN, NaT) yields the
feature's catalogue default. Reads and writes nothing.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Sequence

from tailor.features.specs import NO_HISTORY_DAYS

SECONDS_PER_DAY = 86_400.0
# Upper edges (inclusive) of recency scores 5, 4, 3, 2 in days since the last purchase.
RECENCY_EDGES_DAYS: tuple[float, ...] = (7.0, 30.0, 90.0, 180.0)
# Lower edges of frequency scores 1..5 in lifetime orders.
FREQUENCY_EDGES: tuple[int, ...] = (1, 2, 3, 5, 10)
# Lower edges of monetary scores 2..5 in lifetime revenue (score 1 is any spend above 0).
MONETARY_EDGES: tuple[float, ...] = (50.0, 150.0, 400.0, 1000.0)


def as_utc(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime, or None for None, NaT and NaN (naive means UTC)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, datetime):  # numpy datetime64 or epoch numbers from some paths
        import pandas as pd

        is_epoch = isinstance(value, (int, float))
        value = pd.Timestamp(value, unit="s") if is_epoch else pd.Timestamp(value)
    if value != value:  # NaT
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def days_between(earlier: Any, later: Any, default: float) -> float:
    """Days from `earlier` to `later` (never negative), or `default` when either is missing."""
    start, end = as_utc(earlier), as_utc(later)
    if start is None or end is None:
        return default
    return max(0.0, (end - start).total_seconds() / SECONDS_PER_DAY)


def _number(value: Any) -> float:
    """A float for counts and sums, 0 for missing values."""
    if value is None:
        return 0.0
    number = float(value)
    return 0.0 if math.isnan(number) else number


def recency_score(days_since_purchase: float | None) -> int:
    """5 (bought within 7 days) down to 1 (more than 180 days ago); 0 never bought."""
    if days_since_purchase is None:
        return 0
    for score, edge in zip((5, 4, 3, 2), RECENCY_EDGES_DAYS):
        if days_since_purchase <= edge:
            return score
    return 1


def frequency_score(orders: float) -> int:
    """0 without orders, else 1..5 by the FREQUENCY_EDGES lifetime order counts."""
    return sum(1 for edge in FREQUENCY_EDGES if orders >= edge)


def monetary_score(revenue: float) -> int:
    """0 without spend, 1 below 50, then one more per MONETARY_EDGES edge reached (max 5)."""
    if revenue <= 0:
        return 0
    return 1 + sum(1 for edge in MONETARY_EDGES if revenue >= edge)


def whole_seconds(value: Any) -> datetime | None:
    """A time as UTC truncated to the second, the precision of Feast's online timestamps."""
    moment = as_utc(value)
    return moment.replace(microsecond=0) if moment is not None else None


RECENCY_FEATURES: tuple[str, ...] = (
    "days_since_last_purchase", "days_since_last_visit", "days_since_signup",
    "recency_score", "frequency_score", "monetary_score", "rfm_score",
)
RECENCY_INPUTS: tuple[str, ...] = (
    "last_purchase_at", "last_seen_at", "signup_at", "orders_lifetime", "revenue_lifetime",
    "request_time",
)


def customer_recency_row(last_purchase_at: Any, last_seen_at: Any, signup_at: Any,
                         orders_lifetime: Any, revenue_lifetime: Any,
                         request_time: Any) -> tuple[Any, ...]:
    """The customer_recency features of one entity, in RECENCY_FEATURES order."""
    now = whole_seconds(request_time)
    last_purchase = as_utc(last_purchase_at)
    days_purchase = days_between(last_purchase, now, NO_HISTORY_DAYS)
    recency = recency_score(days_purchase if last_purchase is not None and now else None)
    frequency = frequency_score(_number(orders_lifetime))
    monetary = monetary_score(_number(revenue_lifetime))
    return (days_purchase, days_between(last_seen_at, now, NO_HISTORY_DAYS),
            days_between(signup_at, now, 0.0), recency, frequency, monetary,
            recency + frequency + monetary)


def customer_recency_features(inputs: dict[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Recency and RFM features from stored timestamps and the request time.

    Args:
        inputs: lists `last_purchase_at`, `last_seen_at`, `signup_at`, `orders_lifetime`,
            `revenue_lifetime` and `request_time` (one item per entity row; a missing list
            counts as all missing).

    Returns:
        Lists `days_since_last_purchase`, `days_since_last_visit`, `days_since_signup`,
        `recency_score`, `frequency_score`, `monetary_score`, `rfm_score`.
    """
    size = len(inputs["request_time"])
    columns = [inputs.get(name) or [None] * size for name in RECENCY_INPUTS]
    rows = [customer_recency_row(*values) for values in zip(*columns)]
    return {name: [row[index] for row in rows] for index, name in enumerate(RECENCY_FEATURES)}


def time_of_day(hour: int) -> str:
    """night (0-5), morning (6-11), afternoon (12-17) or evening (18-23)."""
    return ("night", "morning", "afternoon", "evening")[hour // 6]


def request_context_features(inputs: dict[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Hour, weekday and part of day of each request time (UTC).

    Args:
        inputs: list `request_time`.

    Returns:
        Lists `hour_of_day`, `day_of_week`, `is_weekend`, `time_of_day`; a missing request
        time gives the catalogue defaults (0, 0, False, 'night').
    """
    times = [as_utc(value) for value in inputs["request_time"]]
    hours = [moment.hour if moment else 0 for moment in times]
    weekdays = [moment.weekday() if moment else 0 for moment in times]
    return {
        "hour_of_day": hours,
        "day_of_week": weekdays,
        "is_weekend": [bool(moment and moment.weekday() >= 5) for moment in times],
        "time_of_day": [time_of_day(hour) for hour in hours],
    }
