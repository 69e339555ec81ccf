"""Compute every batch feature from the DuckDB warehouse and write the Feast offline sources.

Reads: the warehouse (`tailor.warehouse`: events, products, customers, orders) on a
read-only connection. Writes, under `<home>/features/` (each file replaced atomically):

    customer_features.parquet   customer_activity + customer_categories snapshots
    product_features.parquet    product_activity snapshots
    product_catalogue.parquet   catalogue attributes (first and newest snapshot)
    session_features.parquet    session state after every site event (push source backfill)
    manifest.json               categories, snapshot range, the newest event, TTLs, row
                                counts, and per file
                                the oldest stamp of an entity's newest row that differs
                                from the previous build's (what materialization must redo)

The SQL lives in `sql/*.sql` beside this file. Snapshot rows are stamped at period
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

import duckdb

from tailor.config import Settings
from tailor.features import specs as catalogue
from tailor.sql_files import load_sql
from tailor.warehouse.duckdb_warehouse import open_warehouse, sql_literal

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
_DUCKDB_TYPES: dict[str, str] = {
    "BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": "string", "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "timestamp", "VARCHAR[]": "string_list",
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


def fetch_one(connection: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The single row of an aggregate query."""
    row = connection.execute(sql).fetchone()
    if row is None:  # aggregates without GROUP BY always return a row
        raise RuntimeError(f"no row from: {sql}")
    return row


def catalogue_categories(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """The shop's categories (from product_tiers), sorted; 'unknown' for products without one."""
    rows = connection.execute(
        "SELECT DISTINCT category FROM product_tiers ORDER BY category").fetchall()
    return [row[0] for row in rows]


def season_expression(connection: duckdb.DuckDBPyConnection) -> str:
    """SQL reading the season from the catalogue's `extra` JSON, or NULL when it has none."""
    columns = {row[0] for row in connection.execute("DESCRIBE products").fetchall()}
    if "extra" not in columns:
        return "CAST(NULL AS VARCHAR)"
    return "json_extract_string(extra, '$.season')"


def plan_snapshots(connection: duckdb.DuckDBPyConnection, snapshot_hours: int,
                   now: datetime) -> SnapshotPlan:
    """Pick the first and newest snapshot from the events in keyed_events.

    The newest snapshot is the first period boundary after the newest event, but never
    after `now`; the first is the boundary after the oldest event.
    """
    bucket_seconds = snapshot_hours * SECONDS_PER_HOUR
    now_bucket = int(now.timestamp() // bucket_seconds)
    oldest, newest = fetch_one(connection, "SELECT MIN(bucket), MAX(bucket) FROM keyed_events")
    if oldest is None:
        return SnapshotPlan(bucket_seconds, now_bucket, now_bucket, has_events=False)
    horizon = min(now_bucket, int(newest) + 1)
    return SnapshotPlan(bucket_seconds, min(int(oldest) + 1, horizon), horizon, has_events=True)


def _category_sql(categories: Sequence[str]) -> dict[str, str]:
    """The per-category fragments formatted into customer_buckets and customer_features."""
    columns = catalogue.category_columns(categories)
    indexes = range(len(categories))
    counts = "".join(
        f",\n        SUM(CASE WHEN category = {sql_literal(category)} AND event_type IN "
        f"('product_view', 'add_to_cart', 'purchase') THEN 1 ELSE 0 END) AS cat_{i}"
        for i, category in zip(indexes, categories))
    windows = "".join(f",\n        COALESCE(SUM(cat_{i}) OVER last_90, 0) AS cat_{i}_90d"
                      for i in indexes)
    total = " + ".join(f"w.cat_{i}_90d" for i in indexes) or "0"
    shares = "".join(
        f",\n    CASE WHEN {total} > 0 THEN w.cat_{i}_90d * 1.0 / ({total}) ELSE 0.0 END "
        f"AS {columns[category]}" for i, category in zip(indexes, categories))
    if categories:
        names = ", ".join(sql_literal(category) for category in categories)
        values = ", ".join(f"w.cat_{i}_90d" for i in indexes)
        top = (f"CASE WHEN {total} > 0 THEN [{names}][LIST_POSITION([{values}], "
               f"LIST_MAX([{values}]))] ELSE 'unknown' END")
    else:
        top = "'unknown'"
    return {"category_counts": counts, "category_windows": windows, "category_columns": shares,
            "top_category": top}


def run_feature_sql(connection: duckdb.DuckDBPyConnection, plan: SnapshotPlan,
                    categories: Sequence[str], progress: Progress) -> None:
    """Build customer_features, product_features, product_catalogue and session_features."""
    days = {f"w{n}": plan.periods(n) for n in (1, 7, 30, 60, 90)}
    common = {"bucket_seconds": plan.bucket_seconds, "horizon_bucket": plan.horizon_bucket,
              "first_bucket": plan.first_bucket, "w30_plus_1": days["w30"] + 1, **days}
    parts = _category_sql(categories)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("customer_buckets", {**common, "category_counts": parts["category_counts"]}),
        ("customer_features", {**common, **parts}),
        ("product_features", common),
        ("product_catalogue", common),
        ("session_features", common),
    ]
    for name, values in steps:
        progress(f"features: {name}")
        connection.execute(load_sql(SQL_PACKAGE, name).format(**values))


def check_output(connection: duckdb.DuckDBPyConnection, table: str,
                 categories: Sequence[str]) -> int:
    """Check a feature table's columns, types and nulls against the catalogue.

    Returns:
        The table's row count.

    Raises:
        RuntimeError: a column is missing, extra, of the wrong type, or null where the
            catalogue promises a value (a bug in the SQL, named in the message).
    """
    join_key, views = OUTPUTS[table]
    expected = [spec for view in views for spec in catalogue.specs_for_view(view, categories)]
    described = connection.execute(f"DESCRIBE {table}").fetchall()
    actual = {row[0]: _DUCKDB_TYPES.get(row[1], row[1]) for row in described}
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
    counts = fetch_one(connection, "SELECT COUNT(*), "
                       + ", ".join(f"COUNT(*) - COUNT({name})" for name in required)
                       + f" FROM {table}")
    nulls = [name for name, count in zip(required, counts[1:]) if count]
    if nulls:
        raise RuntimeError(f"{table}: null values in {', '.join(nulls)}")
    return int(counts[0])


def _newest_rows_sql(source: str, join_key: str, columns: Sequence[tuple[str, str]]) -> str:
    """Each entity's newest row of `source`, doubles rounded to 9 decimals: a parallel SUM
    adds in no fixed order, so the last bits of a recomputed value can differ."""
    values = ", ".join(f'ROUND("{name}", 9)' if kind == "DOUBLE" else f'"{name}"'
                       for name, kind in columns)
    return (f"SELECT {values} FROM {source} QUALIFY ROW_NUMBER() OVER "
            f'(PARTITION BY "{join_key}" ORDER BY event_timestamp DESC) = 1')


def earliest_change(connection: duckdb.DuckDBPyConnection, table: str,
                    previous: Path) -> str | None:
    """The oldest stamp of an entity's newest row that the previous build's file lacks.

    Online stores hold each entity's newest row, so materialization must redo the rows
    from this stamp on (a late event or a catalogue change can alter a row stamped before
    the last materialization); newer rows are new anyway.

    Returns:
        An ISO time; the oldest newest-row stamp when there is no comparable previous file
        (none, or other columns); None when no entity's newest row changed.
    """
    join_key = OUTPUTS[table][0]
    columns = [(row[0], row[1]) for row in connection.execute(f"DESCRIBE {table}").fetchall()]
    fresh = _newest_rows_sql(table, join_key, columns)
    source = f"read_parquet({sql_literal(str(previous))})"
    comparable = previous.is_file() and [(row[0], row[1]) for row in connection.execute(
        f"DESCRIBE SELECT * FROM {source}").fetchall()] == columns
    query = (f"SELECT MIN(event_timestamp) FROM ({fresh} EXCEPT "
             f"{_newest_rows_sql(source, join_key, columns)})" if comparable
             else f"SELECT MIN(event_timestamp) FROM ({fresh})")
    stamp = fetch_one(connection, query)[0]
    return stamp.astimezone(timezone.utc).isoformat() if stamp is not None else None


def write_parquet(connection: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    """Write a table to Parquet through a hidden temporary file and an atomic rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    connection.execute(f"COPY {table} TO {sql_literal(str(temporary))} "
                       "(FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 1000000)")
    os.replace(temporary, path)


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


def prepare_inputs(connection: duckdb.DuckDBPyConnection, bucket_seconds: int,
                   session_gap_minutes: int) -> None:
    """Create the product_tiers and keyed_events temporary tables."""
    connection.execute(load_sql(SQL_PACKAGE, "product_tiers").format(
        season_expression=season_expression(connection)))
    connection.execute(load_sql(SQL_PACKAGE, "keyed_events").format(
        bucket_seconds=bucket_seconds, session_gap_minutes=int(session_gap_minutes)))


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
        FileNotFoundError: the warehouse was never built (run `tailor warehouse`).
    """
    started = time.perf_counter()
    progress = progress or (lambda message: log.info(message))
    now = now or datetime.now(timezone.utc)
    directory = feature_dir(settings)
    connection = open_warehouse(settings, read_only=True)
    try:
        progress("features: events by period")
        prepare_inputs(connection, settings.features_snapshot_hours * SECONDS_PER_HOUR,
                       settings.events_session_gap_minutes)
        plan = plan_snapshots(connection, settings.features_snapshot_hours, now)
        categories = catalogue_categories(connection)
        run_feature_sql(connection, plan, categories, progress)
        rows = {table: check_output(connection, table, categories) for table in OUTPUTS}
        newest_event = fetch_one(connection, "SELECT MAX(event_time) FROM keyed_events")[0]
        directory.mkdir(parents=True, exist_ok=True)
        files, changed = {}, {}
        for table in OUTPUTS:
            progress(f"features: writing {table}.parquet")
            files[table] = str(directory / f"{table}.parquet")
            changed[table] = earliest_change(connection, table, Path(files[table]))
            write_parquet(connection, table, Path(files[table]))
    finally:
        connection.close()
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
