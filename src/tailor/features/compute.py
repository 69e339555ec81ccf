"""Compute every batch feature on the batch engine and write the Feast offline sources.

Reads: events, products, customers and orders on the engine `features.engine` names
(`tailor.batch`): DuckDB over the warehouse (`tailor.warehouse`, a read-only connection),
or Spark over the same Parquet lake. Writes, under `<home>/features/` (each file replaced
atomically):

    customer_features.parquet   customer_activity + customer_categories snapshots
    product_features.parquet    product_activity snapshots
    product_catalogue.parquet   catalogue attributes (first and newest snapshot)
    session_features.parquet    session state after every site event (push source backfill)
    manifest.json               categories, snapshot range, the newest event, TTLs, row
                                counts, and per file
                                the oldest stamp of an entity's newest row that differs
                                from the previous build's (what materialization must redo)

The SQL lives in `sql/*.sql` beside this file: one text per table, rendered for the engine's
dialect (`tailor.sql_dialects`), so both engines compute the same rows
(`tests/integration/test_spark_features.py` compares them). Snapshot rows are stamped at period
boundaries (every `features.snapshot_hours`, aligned to 00:00 UTC) and hold only events
strictly before their stamp; the newest snapshot is the first boundary after the newest
event, never later than now. Output columns are checked against the feature catalogue
(`tailor.features.specs`) before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from tailor.batch.engine import BatchEngine, open_batch_engine
from tailor.config import Settings
from tailor.features import specs as catalogue
from tailor.sql_dialects import render
from tailor.sql_files import load_sql

log = logging.getLogger(__name__)

SQL_PACKAGE = "tailor.features"  # its sql/ folder: the feature queries
FEATURES_DIR = "features"
MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
# Output table -> (entity join key, views whose features it holds).
OUTPUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "customer_features": ("customer_id",
                          (catalogue.CUSTOMER_ACTIVITY, catalogue.CUSTOMER_CATEGORIES)),
    "product_features": ("product_id", (catalogue.PRODUCT_ACTIVITY,)),
    "product_catalogue": ("product_id", (catalogue.PRODUCT_CATALOGUE,)),
    "session_features": ("customer_id", (catalogue.SESSION_CONTEXT,)),
}
SECONDS_PER_HOUR = 3600
Progress = Callable[[str], None]


@dataclass
class FeatureBuild:
    """What one feature computation wrote."""

    feature_dir: str
    categories: list[str]
    snapshot_hours: int
    first_snapshot: str | None
    newest_snapshot: str | None
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    changed_since: dict[str, str | None] = field(default_factory=dict)
    newest_event: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The build as JSON-ready values."""
        return asdict(self)


@dataclass(frozen=True)
class SnapshotPlan:
    """Snapshot periods as bucket numbers: bucket b starts at b * bucket_seconds (UTC)."""

    bucket_seconds: int
    first_bucket: int
    horizon_bucket: int
    has_events: bool

    def periods(self, days: int) -> int:
        """Number of periods in `days` days."""
        return days * 86_400 // self.bucket_seconds

    def stamp(self, bucket: int) -> str:
        """ISO time of a bucket's start."""
        return datetime.fromtimestamp(bucket * self.bucket_seconds, tz=timezone.utc).isoformat()


def feature_dir(settings: Settings) -> Path:
    """Where the offline feature files live: `<home>/features`."""
    return settings.home_path / FEATURES_DIR


def fetch_one(engine: BatchEngine, sql: str) -> tuple[Any, ...]:
    """The single row of an aggregate query."""
    rows = engine.rows(sql)
    if not rows:  # aggregates without GROUP BY always return a row
        raise RuntimeError(f"no row from: {sql}")
    return rows[0]


def catalogue_categories(engine: BatchEngine) -> list[str]:
    """The shop's categories (from product_tiers), sorted; 'unknown' for products without one."""
    rows = engine.rows("SELECT DISTINCT category FROM product_tiers ORDER BY category")
    return [row[0] for row in rows]


def season_expression(engine: BatchEngine) -> str:
    """SQL reading the season from the catalogue's `extra` JSON, or NULL when it has none."""
    if "extra" not in {name for name, _ in engine.column_types("products")}:
        return "CAST(NULL AS STRING)"
    return engine.dialect.json_text("extra", "$.season")


def plan_snapshots(engine: BatchEngine, snapshot_hours: int, now: datetime) -> SnapshotPlan:
    """Pick the first and newest snapshot from the events in keyed_events.

    The newest snapshot is the first period boundary after the newest event, but never
    after `now`; the first is the boundary after the oldest event.
    """
    bucket_seconds = snapshot_hours * SECONDS_PER_HOUR
    now_bucket = int(now.timestamp() // bucket_seconds)
    oldest, newest = fetch_one(engine, "SELECT MIN(bucket), MAX(bucket) FROM keyed_events")
    if oldest is None:
        return SnapshotPlan(bucket_seconds, now_bucket, now_bucket, has_events=False)
    horizon = min(now_bucket, int(newest) + 1)
    return SnapshotPlan(bucket_seconds, min(int(oldest) + 1, horizon), horizon, has_events=True)


def _category_sql(categories: Sequence[str], literal: Callable[[str], str]) -> dict[str, str]:
    """The per-category fragments formatted into customer_buckets and customer_features
    (`literal` quotes a category in the engine's dialect)."""
    columns = catalogue.category_columns(categories)
    indexes = range(len(categories))
    counts = "".join(
        f",\n        SUM(CASE WHEN category = {literal(category)} AND event_type IN "
        f"('product_view', 'add_to_cart', 'purchase') THEN 1 ELSE 0 END) AS cat_{i}"
        for i, category in zip(indexes, categories))
    windows = "".join(f",\n        COALESCE(SUM(cat_{i}) OVER last_90, 0) AS cat_{i}_90d"
                      for i in indexes)
    total = " + ".join(f"w.cat_{i}_90d" for i in indexes) or "0"
    shares = "".join(
        f",\n    CASE WHEN {total} > 0 THEN CAST(w.cat_{i}_90d AS DOUBLE) / ({total}) ELSE 0.0 END "
        f"AS {columns[category]}" for i, category in zip(indexes, categories))
    # The first category with the most interactions (catalogue order breaks ties).
    if len(categories) > 1:
        most = "GREATEST(" + ", ".join(f"w.cat_{i}_90d" for i in indexes) + ")"
        picks = " ".join(f"WHEN w.cat_{i}_90d = {most} THEN {literal(category)}"
                         for i, category in zip(indexes, categories))
        top = f"CASE WHEN {total} > 0 THEN CASE {picks} END ELSE 'unknown' END"
    elif categories:
        top = f"CASE WHEN {total} > 0 THEN {literal(categories[0])} ELSE 'unknown' END"
    else:
        top = "'unknown'"
    return {"category_counts": counts, "category_windows": windows, "category_columns": shares,
            "top_category": top}


def feature_query(engine: BatchEngine, name: str, **values: Any) -> str:
    """`sql/<name>.sql` rendered for the engine's dialect with `values`."""
    return render(load_sql(SQL_PACKAGE, name), engine.dialect, **values)


def run_feature_sql(engine: BatchEngine, plan: SnapshotPlan,
                    categories: Sequence[str], progress: Progress) -> None:
    """Build customer_features, product_features, product_catalogue and session_features."""
    days = {f"w{n}": plan.periods(n) for n in (1, 7, 30, 60, 90)}
    common = {"bucket_seconds": plan.bucket_seconds, "horizon_bucket": plan.horizon_bucket,
              "first_bucket": plan.first_bucket, "w30_plus_1": days["w30"] + 1, **days}
    parts = _category_sql(categories, engine.dialect.literal)
    progress("features: customer_buckets")
    engine.create_table("customer_buckets", feature_query(
        engine, "customer_buckets", **common, category_counts=parts["category_counts"]))
    bucket_values = ", ".join(f"a.{name}" for name, _ in engine.column_types("customer_buckets")
                              if name not in ("customer_id", "bucket"))
    steps: list[tuple[str, dict[str, Any]]] = [
        ("customer_features", {**common, **parts, "bucket_values": bucket_values}),
        ("product_features", common),
        ("product_catalogue", common),
        ("session_features", common),
    ]
    for name, values in steps:
        progress(f"features: {name}")
        engine.create_table(name, feature_query(engine, name, **values))


def check_output(engine: BatchEngine, table: str, categories: Sequence[str]) -> int:
    """Check a feature table's columns, types and nulls against the catalogue.

    Returns:
        The table's row count.

    Raises:
        RuntimeError: a column is missing, extra, of the wrong type, or null where the
            catalogue promises a value (a bug in the SQL, named in the message).
    """
    join_key, views = OUTPUTS[table]
    expected = [spec for view in views for spec in catalogue.specs_for_view(view, categories)]
    actual = dict(engine.column_types(table))
    wanted = {join_key: "string", "event_timestamp": "timestamp",
              **{spec.name: spec.dtype for spec in expected}}
    wrong = sorted(name for name in set(actual) | set(wanted)
                   if actual.get(name) != wanted.get(name))
    if wrong:
        raise RuntimeError(f"{table}: columns differ from the feature catalogue: "
                           + ", ".join(f"{name} (sql {actual.get(name)}, catalogue "
                                       f"{wanted.get(name)})" for name in wrong))
    if list(actual) != list(wanted):
        raise RuntimeError(f"{table}: column order differs from the feature catalogue: "
                           f"sql {list(actual)}, catalogue {list(wanted)}")
    required = [name for name, dtype in wanted.items() if dtype != "timestamp"]
    counts = fetch_one(engine, "SELECT COUNT(*), "
                       + ", ".join(f"COUNT(*) - COUNT({name})" for name in required)
                       + f" FROM {table}")
    nulls = [name for name, count in zip(required, counts[1:]) if count]
    if nulls:
        raise RuntimeError(f"{table}: null values in {', '.join(nulls)}")
    return int(counts[0])


def _newest_rows_sql(source: str, join_key: str, columns: Sequence[tuple[str, str]]) -> str:
    """Each entity's newest row of `source`, doubles rounded to 9 decimals: a parallel SUM
    adds in no fixed order, so the last bits of a recomputed value can differ."""
    values = ", ".join(f"ROUND({name}, 9) AS {name}" if kind == "float64" else name
                       for name, kind in columns)
    names = ", ".join(name for name, _ in columns)
    return (f"SELECT {names} FROM (SELECT {values}, ROW_NUMBER() OVER (PARTITION BY {join_key} "
            f"ORDER BY event_timestamp DESC) AS newest_first FROM {source}) AS ranked "
            "WHERE newest_first = 1")


def earliest_change(engine: BatchEngine, table: str, previous: Path) -> str | None:
    """The oldest stamp of an entity's newest row that the previous build's file lacks.

    Online stores hold each entity's newest row, so materialization must redo the rows
    from this stamp on (a late event or a catalogue change can alter a row stamped before
    the last materialization); newer rows are new anyway.

    Returns:
        An ISO time; the oldest newest-row stamp when there is no comparable previous file
        (none, or other columns); None when no entity's newest row changed.
    """
    join_key = OUTPUTS[table][0]
    columns = engine.column_types(table)
    fresh = _newest_rows_sql(table, join_key, columns)
    source = f"previous_{table}"
    comparable = False
    if previous.is_file():
        engine.read_parquet(source, previous)
        comparable = engine.column_types(source) == columns
    query = (f"SELECT MIN(event_timestamp) FROM ({fresh} EXCEPT "
             f"{_newest_rows_sql(source, join_key, columns)}) AS changed" if comparable
             else f"SELECT MIN(event_timestamp) FROM ({fresh}) AS newest")
    stamp = fetch_one(engine, query)[0]
    return stamp.astimezone(timezone.utc).isoformat() if stamp is not None else None


def write_manifest(directory: Path, build: FeatureBuild, settings: Settings) -> Path:
    """Write manifest.json: what the Feast definitions need to know about the files."""
    manifest = {
        "version": MANIFEST_VERSION,
        "computed_at": datetime.now(timezone.utc).isoformat(),
        **build.to_dict(),
        "category_columns": catalogue.category_columns(build.categories),
        "ttl": {"batch_days": settings.features_batch_ttl_days,
                "session_minutes": settings.features_session_ttl_minutes},
    }
    path = directory / MANIFEST_FILE
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_manifest(home: Path) -> dict[str, Any] | None:
    """The manifest of the last computation under a home, or None before the first."""
    path = home / FEATURES_DIR / MANIFEST_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def prepare_inputs(engine: BatchEngine, bucket_seconds: int, session_gap_minutes: int) -> None:
    """Create the product_tiers and keyed_events tables."""
    engine.create_table("product_tiers", feature_query(
        engine, "product_tiers", season_expression=season_expression(engine)))
    engine.create_table("keyed_events", feature_query(
        engine, "keyed_events", bucket_seconds=bucket_seconds,
        session_gap_minutes=int(session_gap_minutes)))


def drop_forgotten(engine: BatchEngine, settings: Settings) -> int:
    """Delete the rows of forgotten customers (`tailor forget`'s tombstones) from the computed
    tables: a feature run that overlaps a forget must not write them back to the offline
    files and the online store. Returns rows deleted (no work when nothing is tombstoned)."""
    import pandas as pd

    from tailor.events.tombstones import TombstoneSet

    tombstones = TombstoneSet(settings.home_path)
    if not tombstones.current():
        return 0
    tables = [table for table in OUTPUTS
              if "customer_id" in {name for name, _ in engine.column_types(table)}]
    ids = {row[0] for table in tables for row in engine.rows(
        f"SELECT DISTINCT customer_id FROM {table} WHERE customer_id IS NOT NULL")}
    gone = sorted(tombstones.forgotten_among(ids))
    if not gone:
        return 0
    engine.register_frame("forgotten_customers", pd.DataFrame({"customer_id": gone}))
    deleted = 0
    for table in tables:
        deleted += fetch_one(engine, f"SELECT count(*) FROM {table} WHERE customer_id IN "
                                     "(SELECT customer_id FROM forgotten_customers)")[0]
        engine.keep_rows(table, "customer_id NOT IN "
                                "(SELECT customer_id FROM forgotten_customers)")
    return int(deleted)


def compute_features(settings: Settings, now: datetime | None = None,
                     progress: Progress | None = None) -> FeatureBuild:
    """Compute every batch feature and write the offline sources and the manifest.

    Args:
        settings: uses the warehouse, `home_path` and the `features_*` settings.
        now: the current time (default: the clock); no snapshot is stamped after it.
        progress: called with a short message before each step.

    Returns:
        The `FeatureBuild` (files, row counts, snapshot range, categories).

    Raises:
        FileNotFoundError: DuckDB and the warehouse was never built (run `tailor warehouse`).
        RuntimeError: Spark and pyspark or Java is missing.
    """
    started = time.perf_counter()
    progress = progress or (lambda message: log.info(message))
    now = now or datetime.now(timezone.utc)
    directory = feature_dir(settings)
    engine = open_batch_engine(settings)
    try:
        progress(f"features: events by period ({settings.features_engine})")
        prepare_inputs(engine, settings.features_snapshot_hours * SECONDS_PER_HOUR,
                       settings.events_session_gap_minutes)
        plan = plan_snapshots(engine, settings.features_snapshot_hours, now)
        categories = catalogue_categories(engine)
        run_feature_sql(engine, plan, categories, progress)
        drop_forgotten(engine, settings)
        rows = {table: check_output(engine, table, categories) for table in OUTPUTS}
        newest_event = fetch_one(engine, "SELECT MAX(event_time) FROM keyed_events")[0]
        directory.mkdir(parents=True, exist_ok=True)
        files, changed = {}, {}
        for table in OUTPUTS:
            progress(f"features: writing {table}.parquet")
            files[table] = str(directory / f"{table}.parquet")
            changed[table] = earliest_change(engine, table, Path(files[table]))
            engine.write_parquet(table, Path(files[table]))
    finally:
        engine.close()
    build = FeatureBuild(
        feature_dir=str(directory), categories=categories,
        snapshot_hours=settings.features_snapshot_hours,
        first_snapshot=plan.stamp(plan.first_bucket) if plan.has_events else None,
        newest_snapshot=plan.stamp(plan.horizon_bucket), rows=rows, files=files,
        seconds=round(time.perf_counter() - started, 3), changed_since=changed,
        newest_event=newest_event.astimezone(timezone.utc).isoformat() if newest_event else None)
    write_manifest(directory, build, settings)
    log.info("features: wrote %s (%s)", directory,
             ", ".join(f"{table} {count:,} rows" for table, count in rows.items()))
    return build
