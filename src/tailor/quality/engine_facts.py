"""The quality rules' aggregates over stored events, computed on the batch engine.

Reads the lake's events through the engine `features.engine` names (`tailor.batch`: DuckDB
over the warehouse, or Spark); writes nothing. With `features.engine = spark` the gate takes
its row counts, violations, daily volumes and newest event from here, so the heavy scans run
where the features run; ingest runs and dead-letter rows always come from the event store
(they are not in the lake). The SQL is `sql/event_totals.sql` and `sql/event_days.sql`.
"""

from __future__ import annotations

import pandas as pd

from tailor.batch.engine import BatchEngine, open_batch_engine
from tailor.config import Settings
from tailor.events.frames import daily_counts_frame
from tailor.quality.rules import EventAggregates
from tailor.sql_dialects import render
from tailor.sql_files import load_sql

SQL_PACKAGE = "tailor.quality"


def engine_aggregates(engine: BatchEngine, now: pd.Timestamp) -> EventAggregates:
    """Stored rows, violations (missing customer, price ≤ 0, after `now`), events per UTC
    day and the newest event, over the engine's `events`."""
    now_micros = int(now.value // 1000)
    totals = engine.rows(render(load_sql(SQL_PACKAGE, "event_totals"), engine.dialect,
                                now_micros=now_micros))[0]
    days = engine.rows(render(load_sql(SQL_PACKAGE, "event_days"), engine.dialect))
    latest = None if totals[4] is None else pd.Timestamp(int(totals[4]), unit="us", tz="UTC")
    return EventAggregates(
        stored=int(totals[0]),
        violations={"missing_customer_id": int(totals[1]), "nonpositive_price": int(totals[2]),
                    "future_timestamp": int(totals[3])},
        daily=daily_counts_frame([(day, int(count)) for day, count in days]),
        latest_event_time=latest)


def lake_aggregates(settings: Settings, now: pd.Timestamp) -> EventAggregates:
    """`engine_aggregates` on the settings' engine.

    Raises:
        FileNotFoundError: DuckDB and the warehouse was never built.
        RuntimeError: Spark and pyspark or Java is missing.
    """
    engine = open_batch_engine(settings)
    try:
        return engine_aggregates(engine, now)
    finally:
        engine.close()
