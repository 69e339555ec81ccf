"""Attribution: which outcomes each unit of an experiment had after it was exposed.

Reads, through DuckDB, the experiment's exposures and the events that followed:

- exposures: the prediction log's answers served in the experiment (the lake's
  `predictions/**/*.parquet`, plus the event store's `predictions` rows above the lake's
  watermark, not exported yet), or, for a campaign experiment, the mails sent in it
  (`campaign_sends`, `tailor.events.campaign_store.campaign_exposures`);
- events: the lake's `events/**/*.parquet` plus the event store's rows above the watermark.

Writes nothing. The rules (docs/experiments.md, "Analysis"; the SQL is `sql/attribution.sql`):

- the unit is the assignment's: the browser's anonymous id, else the customer id. A known
  customer whose events carry `properties.anonymous_id` (tailor.js sends it with every event,
  `identify()` included) is folded into that first anonymous id, so a visitor exposed while
  anonymous who buys after logging in is one unit; a unit's variant is that of its first
  exposure (`variants` > 1 counts units seen in several, kept in the first);
- an event is attributed to the latest exposure of its unit at or before it when it falls
  in [served_at, served_at + window); events before the first exposure are not outcomes;
- per unit: converted (a purchase), orders (distinct order ids), revenue (price x quantity),
  clicks (click and product_view events of a product the exposure showed), mails clicked
  (campaigns), exposed sessions and bounced ones (an exposed session whose only event is one
  page view), and the pre-period's revenue and conversion (the `pre_period_days` before the
  first exposure; CUPED's covariates).

`attribute(connection, ...)` runs the rules on relations a caller registered (tests pass
small frames); `attribute_experiment(settings, ...)` registers the home's lake and stores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from tailor.errors import InputError
from tailor.sql_files import load_sql

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from tailor.config import Settings

log = logging.getLogger(__name__)

SQL_PACKAGE = "tailor.experiments"
UNIT_COLUMNS: tuple[str, ...] = (
    "unit_id", "variant", "first_exposure", "exposures", "variants", "converted", "orders",
    "revenue", "clicks", "clicked_mails", "sessions", "bounced_sessions", "pre_revenue",
    "pre_converted")
DEFAULT_WINDOW_HOURS = 24.0
DEFAULT_PRE_PERIOD_DAYS = 28

EXPOSURE_COLUMNS = ("exposure_id BIGINT, customer_id VARCHAR, variant VARCHAR, "
                    "served_at TIMESTAMP WITH TIME ZONE, session_id VARCHAR, fallback BOOLEAN, "
                    "latency_ms DOUBLE")
EVENT_COLUMNS = ('customer_id VARCHAR, event_type VARCHAR, product_id VARCHAR, '
                 '"timestamp" TIMESTAMP WITH TIME ZONE, session_id VARCHAR, price DOUBLE, '
                 'quantity DOUBLE, order_id VARCHAR, properties VARCHAR')
_EVENT_SELECT = ('customer_id, event_type, product_id, "timestamp", session_id, price, '
                 'quantity, order_id, properties')


@dataclass(frozen=True)
class VariantAnswers:
    """A variant's exposures as served: answers (or mails), how many were fallbacks, and the
    99th percentile of the answers' latency (whole milliseconds rounded up; None when no
    answer logged one: campaign mails, or a log from before latency was logged)."""

    answers: int
    fallbacks: int
    latency_p99_ms: float | None = None

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks / self.answers if self.answers else None


@dataclass
class Attribution:
    """The attributed units of one experiment.

    Attributes:
        units: one row per unit, `UNIT_COLUMNS` (first_exposure UTC, variant a Categorical).
        answers: per variant, its exposures and fallbacks.
        as_of, window_hours, pre_period_days: the rules it was computed under.
        sources: what was read (lake files, rows from the stores), for the report.
    """

    units: pd.DataFrame
    answers: dict[str, VariantAnswers]
    as_of: datetime
    window_hours: float
    pre_period_days: float
    sources: dict[str, Any] = field(default_factory=dict)

    @property
    def units_in_several_variants(self) -> int:
        return int((self.units["variants"] > 1).sum()) if len(self.units) else 0


def _micros(hours: float) -> int:
    return int(round(hours * 3_600_000_000))


def _timestamp_literal(moment: datetime) -> str:
    """A UTC timestamp literal built from a datetime (never from user text)."""
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"TIMESTAMPTZ '{text}+00'"


def utc(moment: datetime) -> datetime:
    """`moment` as tz-aware UTC (naive means UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None \
        else moment.astimezone(timezone.utc)


def attribute(connection: duckdb.DuckDBPyConnection, *, as_of: datetime,
              window_hours: float = DEFAULT_WINDOW_HOURS,
              pre_period_days: float = DEFAULT_PRE_PERIOD_DAYS,
              with_unit_ids: bool = True) -> Attribution:
    """Attribute the events to the units of the exposures the connection holds.

    Args:
        connection: a DuckDB connection with the relations `exposure_rows`, `event_rows` and
            `exposure_slates` (their columns: `sql/attribution.sql`'s header).
        as_of: nothing served or happening at or after it counts (tz-aware; naive = UTC).
        window_hours: how long after an exposure its unit's events count, > 0.
        pre_period_days: the days before the first exposure read for CUPED, >= 0.
        with_unit_ids: `unit_id` holds the ids; False: a number per unit, the id's 64-bit hash
            (the analysis needs no ids, and millions of them cost seconds to carry).

    Returns:
        An `Attribution` (`units` empty when there is no exposure).
    """
    if not window_hours > 0:
        raise InputError(f"attribution_window_hours: must be > 0, got {window_hours!r}")
    if not pre_period_days >= 0:
        raise InputError(f"pre_period_days: must be >= 0, got {pre_period_days!r}")
    as_of = utc(as_of)
    script = load_sql(SQL_PACKAGE, "attribution").format(
        as_of=_timestamp_literal(as_of), window_micros=_micros(window_hours),
        pre_period_micros=_micros(24 * pre_period_days),
        unit_id_column="COALESCE(l.anonymous_id, x.customer_id) AS unit_id, "
        if with_unit_ids else "",
        unit_id_aggregate="arg_min(unit_id, served_at) AS unit_id, " if with_unit_ids else "",
        unit_id="u.unit_id" if with_unit_ids else "u.unit_key")
    statements = [part.strip() for part in script.split("\n;") if part.strip()]
    connection.execute("SET preserve_insertion_order = false")
    for statement in statements[:-1]:
        connection.execute(statement)
    units = connection.execute(statements[-1]).df()
    answers = {str(variant): VariantAnswers(int(count), int(fallbacks),
                                            None if p99 is None else float(p99))
               for variant, count, fallbacks, p99 in connection.execute(
                   "SELECT variant, COUNT(*), COUNT(*) FILTER (WHERE fallback), "
                   "quantile_disc(CEIL(latency_ms), 0.99) FROM exposure "
                   "GROUP BY variant ORDER BY variant").fetchall()}
    if len(units):
        units["first_exposure"] = units["first_exposure"].dt.tz_convert("UTC")
    return Attribution(units[list(UNIT_COLUMNS)], answers, as_of, float(window_hours),
                       float(pre_period_days))


# -- the home's sources --------------------------------------------------------------------


def register_events(connection: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, int]:
    """`event_rows`: the lake's events plus the event store's rows not exported yet."""
    from tailor.events.lake import events_to_table
    from tailor.events.lake_files import EVENTS_DIR, Lake, read_watermark
    from tailor.events.store import open_event_store

    watermark = read_watermark(Lake(settings.lake_root), EVENTS_DIR).seq
    store = open_event_store(settings.event_store_url)
    try:
        tables = []
        seq = watermark
        while len(chunk := store.events_after(seq, settings.lake_export_chunk_rows)):
            tables.append(events_to_table(chunk))
            seq = int(chunk["seq"].iloc[-1])
    finally:
        store.close()
    tail = _concat(tables)
    if tail is None:
        connection.execute(f"CREATE OR REPLACE TEMP TABLE events_tail ({EVENT_COLUMNS})")
    else:
        connection.register("events_tail_arrow", tail)
        connection.execute("CREATE OR REPLACE TEMP VIEW events_tail AS SELECT "
                           f"{_EVENT_SELECT} FROM events_tail_arrow")
    connection.execute(f"CREATE OR REPLACE TEMP VIEW event_rows AS SELECT {_EVENT_SELECT} "
                       f"FROM events UNION ALL SELECT {_EVENT_SELECT} FROM events_tail")
    return {"events_lake_watermark": watermark, "events_from_store": 0 if tail is None
            else tail.num_rows}


def _concat(tables: list) -> Any:
    import pyarrow as pa

    return pa.concat_tables(tables) if tables else None


def register_predictions(connection: duckdb.DuckDBPyConnection, settings: Settings,
                         experiment: str) -> dict[str, int]:
    """`exposure_rows` and `exposure_slates`: the experiment's answers in the lake's
    prediction log plus the store's rows not exported yet (`exposure_id` is the log's seq)."""
    from tailor.events.lake_files import Lake, read_watermark
    from tailor.events.prediction_lake import PREDICTIONS_DIR, predictions_to_table
    from tailor.events.prediction_store import open_prediction_store

    watermark = read_watermark(Lake(settings.lake_root), PREDICTIONS_DIR).seq
    store = open_prediction_store(settings.event_store_url)
    try:
        tables, seq = [], watermark
        while rows := store.predictions_after(seq, settings.lake_export_chunk_rows):
            tables.append(predictions_to_table(rows))
            seq = int(rows[-1][0])
    finally:
        store.close()
    tail = _concat(tables)
    columns = "seq, served_at, customer_id, session_id, fallback, items, experiment, " \
        "experiment_variant, latency_ms"
    source = f"SELECT {columns} FROM predictions"
    if tail is not None:
        connection.register("predictions_tail_arrow", tail)
        source += f" UNION ALL SELECT {columns} FROM predictions_tail_arrow"
    connection.execute(f"CREATE OR REPLACE TEMP VIEW prediction_source AS {source}")
    # A view, read where it is used (the files are read once, not copied); the name is a
    # parameter, kept in a one-row table the view reads.
    connection.execute("CREATE OR REPLACE TEMP TABLE wanted_experiment AS SELECT "
                       "CAST($name AS VARCHAR) AS name", {"name": experiment})
    connection.execute("CREATE OR REPLACE TEMP VIEW exposure_rows AS SELECT seq AS "
                       "exposure_id, customer_id, experiment_variant AS variant, served_at, "
                       "session_id, fallback, latency_ms FROM prediction_source "
                       "WHERE experiment = (SELECT name FROM wanted_experiment)")
    connection.execute("CREATE OR REPLACE TEMP VIEW exposure_slates AS SELECT seq AS "
                       "exposure_id, list_transform(items, lambda item: item.product_id) AS "
                       "slate FROM prediction_source")
    return {"predictions_lake_watermark": watermark,
            "predictions_from_store": 0 if tail is None else tail.num_rows}


def register_campaign_mails(connection: duckdb.DuckDBPyConnection, settings: Settings,
                            experiment: str) -> dict[str, int]:
    """`exposure_rows` from the campaign mails sent in the experiment (no slates)."""
    import pyarrow as pa

    from tailor.events.campaign_store import campaign_exposures, open_campaign_store

    store = open_campaign_store(settings.event_store_url)
    try:
        mails = [row for campaign, _planned in store.campaigns()
                 for row in campaign_exposures(store, campaign) if row[1] == experiment]
    finally:
        store.close()
    columns = list(zip(*mails)) if mails else [(), (), (), (), ()]
    table = pa.table({
        "exposure_id": pa.array(range(len(mails)), pa.int64()),
        "customer_id": pa.array(columns[0], pa.string()),
        "variant": pa.array(columns[2], pa.string()),
        "served_at": pa.array(columns[4], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    })
    connection.register("campaign_mails_arrow", table)
    connection.execute("CREATE OR REPLACE TEMP VIEW exposure_rows AS SELECT exposure_id, "
                       "customer_id, variant, served_at, CAST(NULL AS VARCHAR) AS session_id, "
                       "false AS fallback, CAST(NULL AS DOUBLE) AS latency_ms "
                       "FROM campaign_mails_arrow")
    connection.execute("CREATE OR REPLACE TEMP VIEW exposure_slates AS SELECT "
                       "CAST(NULL AS BIGINT) AS exposure_id, CAST([] AS VARCHAR[]) AS slate "
                       "WHERE false")
    return {"campaign_mails": len(mails)}


def attribute_experiment(settings: Settings, experiment: str, surface: str, *,
                         as_of: datetime, window_hours: float, pre_period_days: float,
                         progress: Callable[[str], None] | None = None) -> Attribution:
    """The attribution of one experiment from the home's lake and stores.

    Args:
        settings: the lake (`lake_root`) and the event store (`event_store_url`).
        experiment: its name; surface: its surface (`campaign` reads the mails).
        as_of, window_hours, pre_period_days: as `attribute`.
        progress: called with a line before each long step.
    """
    import duckdb

    from tailor.warehouse.duckdb_warehouse import attach_lake, create_lake_views

    say = progress or (lambda _line: None)
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        attach_lake(connection, settings.lake_root)
        create_lake_views(connection, settings.lake_root)
        say("reading the exposures")
        sources = register_campaign_mails(connection, settings, experiment) \
            if surface == "campaign" else register_predictions(connection, settings, experiment)
        say("reading the events")
        sources.update(register_events(connection, settings))
        say("attributing the events to the units")
        result = attribute(connection, as_of=as_of, window_hours=window_hours,
                           pre_period_days=pre_period_days, with_unit_ids=False)
    finally:
        connection.close()
    result.sources = {"lake": settings.lake_root, **sources}
    log.info("%s: %d units attributed (window %g h) from %s", experiment, len(result.units),
             window_hours, sources)
    return result


def first_exposure_days(attribution: Attribution) -> tuple[Any, list]:
    """Each unit's day index (UTC date of its first exposure, 0 = the first day) and the
    dates, for the daily looks."""
    import numpy as np

    if not len(attribution.units):
        return np.zeros(0, dtype=np.int64), []
    dates = attribution.units["first_exposure"].dt.floor("D")
    first = dates.min()
    index = ((dates - first) // timedelta(days=1)).to_numpy(dtype=np.int64)
    days = [(first + timedelta(days=day)).date() for day in range(int(index.max()) + 1)]
    return index, days
