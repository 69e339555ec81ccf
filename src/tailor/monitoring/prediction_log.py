"""The prediction log as the monitoring and experiment jobs read it: a frame per time window.

Reads the event store's `predictions` table (`database_url`, default `<home>/events.db`;
written by the server's `tailor.serving.prediction_recorder`, one row per answer served).
Writes nothing. Rows exported to the lake and deleted from the store past
`monitoring.prediction_retention_days` are only in the warehouse's `predictions` view
(`tailor.warehouse`), where they join the events in SQL.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tailor.config import Settings
from tailor.events.prediction_store import (
    ENDPOINT_MODELS, PREDICTION_COLUMNS, datetime_to_micros, open_prediction_store,
)

if TYPE_CHECKING:
    import pandas as pd

# The reader's columns: the store's order, `seq` (the write order) first.
COLUMNS: tuple[str, ...] = ("seq", *PREDICTION_COLUMNS)
ENDPOINTS: tuple[str, ...] = tuple(ENDPOINT_MODELS)
_FLAGS = ("fallback", "stale")  # never NULL
_OPTIONAL_FLAGS = ("personalised",)  # NULL outside the homepage


def _utc(moment: datetime | str | Any) -> datetime:
    """A time as a tz-aware datetime: ISO text or a datetime/Timestamp; naive means UTC."""
    import pandas as pd

    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def read_predictions(settings: Settings, start: datetime | str, end: datetime | str,
                     endpoint: str | None = None) -> "pd.DataFrame":
    """The answers served in [start, end), oldest write first.

    Args:
        settings: uses `event_store_url`.
        start, end: the window (datetimes, pandas Timestamps or ISO text; naive means UTC).
        endpoint: only `homepage`, `also_bought` or `checkout_offer` answers; None: all.

    Returns:
        One row per answer with `COLUMNS`: `served_at` tz-aware UTC, `items` a list of
        `{"product_id", "score", "reason"}` dicts in served order, `fallback` and `stale`
        bool, `personalised` a nullable boolean (NULL outside the homepage), `k` a
        nullable integer, `latency_ms` a float (NaN where not measured); `customer_id` is
        None for opted-out or deleted customers.

    Raises:
        ValueError: an unknown endpoint, or `end` before `start`.
    """
    import pandas as pd

    if endpoint is not None and endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}")
    first, last = _utc(start), _utc(end)
    if last < first:
        raise ValueError(f"the window ends ({last.isoformat()}) before it starts "
                         f"({first.isoformat()})")
    store = open_prediction_store(settings.event_store_url)
    try:
        rows = store.predictions_between(datetime_to_micros(first), datetime_to_micros(last),
                                         endpoint)
    finally:
        store.close()
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    return _typed(frame)


def _typed(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Store values as the reader promises them (types hold for an empty frame too)."""
    import pandas as pd

    frame["seq"] = frame["seq"].astype("int64")
    frame["served_at"] = pd.to_datetime(frame["served_at"].astype("int64"), unit="us", utc=True)
    frame["items"] = [json.loads(text) if text else [] for text in frame["items"]]
    frame["k"] = frame["k"].astype("Int64")
    frame["p_abandon"] = frame["p_abandon"].astype("float64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    for name in _FLAGS:
        frame[name] = frame[name].astype(bool)
    for name in _OPTIONAL_FLAGS:
        frame[name] = frame[name].astype("boolean")
    return frame
