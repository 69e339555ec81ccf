"""The DuckDB warehouse: views over the Parquet lake plus the derived orders and sessions tables.

Reads: the lake written by `tailor.events.lake` (`<lake>/events/**/*.parquet` hive
partitions, `<lake>/products/products.parquet`, `<lake>/customers/customers.parquet`,
`<lake>/predictions/**/*.parquet`, the prediction log).
Writes: the DuckDB file at `settings.warehouse_file`, holding

    events, products, customers,  views over the lake files (always as fresh as the lake)
    predictions
    orders, sessions              tables rebuilt by each refresh (run it after each export)

The SQL lives in `sql/*.sql` beside this file, written to port to Spark or Snowflake.
Local lakes are read directly. `s3://`, `gs://`, `https://` lakes are read by DuckDB's
httpfs extension, which must be installed once on the machine (`INSTALL httpfs;`, it
needs internet) and given credentials with `CREATE PERSISTENT SECRET`; other fsspec
lakes (e.g. `memory://`) are read through fsspec, registered with DuckDB on each connection.
Timestamps are `TIMESTAMP WITH TIME ZONE`, and every connection works in UTC.
"""

from __future__ import annotations

import logging

import duckdb
import fsspec
import pandas as pd

from tailor.config import Settings
from tailor.errors import InputError
from tailor.sql_dialects import DUCKDB, Dialect, render
from tailor.sql_files import load_sql

log = logging.getLogger(__name__)

SQL_PACKAGE = "tailor.warehouse"  # its sql/ folder: the views' and tables' queries
VIEWS: tuple[str, ...] = ("events", "products", "customers", "predictions")
DERIVED_TABLES: tuple[str, ...] = ("orders", "sessions")
TABLES: tuple[str, ...] = VIEWS + DERIVED_TABLES
# Lakes DuckDB reads natively through httpfs; anything else non-local goes through fsspec.
HTTPFS_PROTOCOLS: frozenset[str] = frozenset({"s3", "s3a", "gs", "gcs", "r2", "http", "https"})

_LAKE_FILES = {"products": "products/products.parquet", "customers": "customers/customers.parquet"}
_LAKE_DATASETS = ("events", "predictions")  # hive-partitioned folders of Parquet files


def sql_literal(text: str) -> str:
    """A SQL string literal (quotes doubled); for paths from settings, never for user input."""
    return "'" + text.replace("'", "''") + "'"


def _lake_protocol(lake_url: str) -> str:
    return lake_url.split("://", 1)[0].lower() if "://" in lake_url else "file"


def _lake_location(lake_url: str) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """(filesystem, root on it, root as DuckDB should address it)."""
    fs, root = fsspec.core.url_to_fs(lake_url)
    root = root.rstrip("/")
    protocol = _lake_protocol(lake_url)
    return fs, root, (root if protocol == "file" else lake_url.rstrip("/"))


def attach_lake(connection: duckdb.DuckDBPyConnection, lake_url: str) -> None:
    """Make the lake readable from this connection (httpfs or a registered fsspec filesystem).

    Raises:
        RuntimeError: the lake needs httpfs and it is not installed.
    """
    protocol = _lake_protocol(lake_url)
    if protocol == "file":
        return
    if protocol in HTTPFS_PROTOCOLS:
        try:
            connection.execute("LOAD httpfs")
        except duckdb.Error as error:
            raise RuntimeError(
                f"lake_url {protocol}://… needs DuckDB's httpfs extension; run `INSTALL httpfs` "
                f"once on a machine with internet access ({error})") from None
        return
    fs, _ = fsspec.core.url_to_fs(lake_url)
    if not connection.filesystem_is_registered(fs.protocol if isinstance(fs.protocol, str)
                                               else fs.protocol[0]):
        connection.register_filesystem(fs)


def open_warehouse(settings: Settings, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file, in UTC, with the lake attached.

    Args:
        settings: uses `warehouse_file` and `lake_root`.
        read_only: open without write access (many readers may share the file this way;
            DuckDB allows one writer process at a time).

    Returns:
        An open DuckDB connection; the caller closes it.

    Raises:
        FileNotFoundError: read-only and the warehouse was never built.
    """
    path = settings.warehouse_file
    if read_only and not path.is_file():
        raise FileNotFoundError(f"warehouse {path} does not exist yet; "
                                "run `tailor warehouse` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(path), read_only=read_only)
    try:
        connection.execute("SET TimeZone = 'UTC'")
        attach_lake(connection, settings.lake_root)
    except Exception:
        connection.close()
        raise
    return connection


def create_lake_views(connection: duckdb.DuckDBPyConnection, lake_url: str) -> None:
    """(Re)create the events, predictions, products and customers views; typed empty views
    for missing files."""
    fs, root, duck_root = _lake_location(lake_url)
    for dataset in _LAKE_DATASETS:
        if fs.glob(f"{root}/{dataset}/**/*.parquet"):
            glob = sql_literal(f"{duck_root}/{dataset}/**/*.parquet")
            columns = _later_columns(connection, dataset, glob)
            connection.execute(load_sql(SQL_PACKAGE, f"{dataset}_view").format(
                **{f"{dataset}_glob": glob}, **columns))
        else:
            log.info("warehouse: no %s files in %s yet; %s is an empty view", dataset,
                     lake_url, dataset)
            connection.execute(load_sql(SQL_PACKAGE, f"{dataset}_empty"))
    for view, relative in _LAKE_FILES.items():
        if fs.exists(f"{root}/{relative}"):
            literal = sql_literal(f"{duck_root}/{relative}")
            connection.execute(load_sql(SQL_PACKAGE, f"{view}_view").format(
                **{f"{view}_file": literal}))
        else:
            connection.execute(load_sql(SQL_PACKAGE, f"{view}_empty"))


# Columns a dataset gained after its first files were written: (name, type) per dataset.
_LATER_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "predictions": (("latency_ms", "DOUBLE"), ("fallback_kind", "VARCHAR")),
}


def _later_columns(connection: duckdb.DuckDBPyConnection, dataset: str, glob: str
                   ) -> dict[str, str]:
    """What the view selects for each later column: the column when some file has it, else a
    typed NULL (union_by_name fills the older files only when a newer one holds the column)."""
    later = _LATER_COLUMNS.get(dataset, ())
    if not later:
        return {}
    present = {row[0] for row in connection.execute(
        f"DESCRIBE SELECT * FROM read_parquet({glob}, union_by_name = true)").fetchall()}
    return {name: name if name in present else f"CAST(NULL AS {kind}) AS {name}"
            for name, kind in later}


def views_reading_elsewhere(settings: Settings) -> list[str]:
    """Lake views of the warehouse file that read another lake than the settings' one.

    A view stores its lake path as written at the last refresh: in a home copied with
    `cp -a`, the warehouse reads the original home's lake until it is refreshed.

    Returns:
        The names of such views (empty when the warehouse was never built).
    """
    path = settings.warehouse_file
    if not path.is_file():
        return []
    _, _, duck_root = _lake_location(settings.lake_root)
    own = sql_literal(duck_root + "/")[:-1]  # the opening quote and the root, no closing one
    connection = duckdb.connect(str(path), read_only=True)
    try:
        rows = connection.execute("SELECT view_name, sql FROM duckdb_views() "
                                  "WHERE NOT internal").fetchall()
    finally:
        connection.close()
    return sorted(name for name, sql in rows
                  if name in VIEWS and "read_parquet(" in sql and own not in sql)


def orders_query(dialect: Dialect = DUCKDB) -> str:
    """The orders query (`sql/orders.sql`) in an engine's dialect: the warehouse's table, and
    the same rows on Spark (`tailor.batch.spark_engine`)."""
    return render(load_sql(SQL_PACKAGE, "orders"), dialect)


def refresh_warehouse(settings: Settings) -> dict[str, int]:
    """Recreate the lake views and rebuild orders and sessions; run after each lake export.

    Args:
        settings: uses `warehouse_file` (its folder is created) and `lake_root`.

    Returns:
        Row count per table: events, products, customers, predictions, orders, sessions.
    """
    connection = open_warehouse(settings, read_only=False)
    try:
        connection.execute("BEGIN TRANSACTION")
        create_lake_views(connection, settings.lake_root)
        connection.execute(f"CREATE OR REPLACE TABLE orders AS {orders_query()}")
        connection.execute(load_sql(SQL_PACKAGE, "sessions").format(
            session_gap_minutes=settings.events_session_gap_minutes))
        connection.execute("COMMIT")
        counts = {table: int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchall()[0][0])
                  for table in TABLES}
    finally:
        connection.close()
    log.info("warehouse %s refreshed: %s", settings.warehouse_file,
             ", ".join(f"{table} {rows}" for table, rows in counts.items()))
    return counts


def query_warehouse(settings: Settings, sql: str,
                    params: list | dict | None = None) -> pd.DataFrame:
    """Run one query on a read-only connection to the warehouse.

    Args:
        settings: uses `warehouse_file` and `lake_root`.
        sql: a query over events, products, customers, predictions, orders, sessions.
        params: values for `?` or `$name` placeholders (pass values this way, never formatted in).

    Returns:
        The result as a DataFrame (timestamps in UTC).

    Raises:
        FileNotFoundError: the warehouse was never built.
        InputError: the query is not valid or tries to write (the message is DuckDB's).
    """
    connection = open_warehouse(settings, read_only=True)
    try:
        return connection.execute(sql, params).df()
    except duckdb.Error as error:
        raise InputError(f"warehouse query failed: {error}") from None
    finally:
        connection.close()
