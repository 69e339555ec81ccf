"""The Spark batch engine: the lake's events, products and customers as Spark views, the
orders derived from them by the warehouse's own query, and tables cached in Spark.

Reads the Parquet lake (`<lake>/events/date=…/hour=…/*.parquet`, `products/`, `customers/`;
the same files the DuckDB warehouse reads, any path Spark's Hadoop file systems read:
local, `s3a://`, `hdfs://`). Writes the Parquet files it is asked to, each as one file
(Spark's part file renamed into place). Tables are Spark temporary views over plans
persisted on local disk, dropped by `close()`.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import pandas as pd

from tailor.batch.spark_session import spark_session
from tailor.config import Settings
from tailor.sql_dialects import SPARK
from tailor.warehouse.duckdb_warehouse import orders_query

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_PORTABLE: dict[str, str] = {
    "bigint": "int64", "double": "float64", "string": "string", "boolean": "bool",
    "timestamp": "timestamp", "array<string>": "string_list",
}
# The warehouse's view columns (warehouse/sql/*_empty.sql), for a lake without the files yet.
_EMPTY_SCHEMAS: dict[str, str] = {
    "events": "seq BIGINT, event_id STRING, customer_id STRING, event_type STRING, "
              "product_id STRING, timestamp TIMESTAMP, session_id STRING, price DOUBLE, "
              "quantity DOUBLE, order_id STRING, device_type STRING, query STRING, "
              "properties STRING, received_at TIMESTAMP, event_date DATE, event_hour INT",
    "products": "product_id STRING, name STRING, category STRING, price DOUBLE, "
                "rating DOUBLE, inventory BIGINT, seasonal BOOLEAN",
    "customers": "customer_id STRING, signup_date TIMESTAMP, location STRING, "
                 "device_type STRING",
}
_EVENT_COLUMNS = ("seq, event_id, customer_id, event_type, product_id, timestamp, session_id, "
                  "price, quantity, order_id, device_type, query, properties, received_at, "
                  "date AS event_date, hour AS event_hour")


# Lake URL schemes Spark's Hadoop file systems read (given their jars on the cluster).
SPARK_SCHEMES: frozenset[str] = frozenset({"file", "s3", "s3a", "gs", "hdfs", "abfs", "abfss"})


def spark_path(lake_url: str) -> str:
    """A lake URL as Spark's Hadoop file systems name it (`s3://` is `s3a://` there).

    Raises:
        RuntimeError: a scheme Spark cannot read (e.g. fsspec's `memory://`).
    """
    scheme = lake_url.split("://", 1)[0].lower() if "://" in lake_url else "file"
    if scheme not in SPARK_SCHEMES:
        raise RuntimeError(f"lake_url {scheme}://…: Spark reads only "
                           f"{', '.join(sorted(SPARK_SCHEMES))} lakes; use features.engine = "
                           "duckdb for this lake")
    if lake_url.startswith("s3://"):
        return "s3a://" + lake_url[len("s3://"):]
    return lake_url


def _utc(value: Any) -> Any:
    # pyspark hands timestamps over as naive local times of this process.
    return value.astimezone(timezone.utc) if isinstance(value, datetime) else value


class SparkEngine:
    """`BatchEngine` on a Spark session."""

    dialect = SPARK

    def __init__(self, session: SparkSession) -> None:
        self.session = session
        self._cached: dict[str, DataFrame] = {}
        self._views: set[str] = set()

    @classmethod
    def over_lake(cls, settings: Settings) -> SparkEngine:
        """The engine with the lake's events, products, customers and orders as views.

        Raises:
            RuntimeError: pyspark or Java is missing.
        """
        engine = cls(spark_session(settings))
        engine.attach_lake(settings.lake_root)
        return engine

    def attach_lake(self, lake_url: str) -> None:
        """Register events, products and customers over the lake, and the orders table."""
        base = spark_path(lake_url.rstrip("/"))
        fs, root = fsspec.core.url_to_fs(lake_url)
        root = root.rstrip("/")
        base = base if "://" in lake_url else root
        if fs.glob(f"{root}/events/**/*.parquet"):
            events = (self.session.read.option("basePath", f"{base}/events")
                      .parquet(f"{base}/events").selectExpr(*_EVENT_COLUMNS.split(", ")))
        else:
            events = self._empty("events")
        self._view("events", events)
        for name in ("products", "customers"):
            relative = f"{name}/{name}.parquet"
            frame = (self.session.read.parquet(f"{base}/{relative}")
                     if fs.exists(f"{root}/{relative}") else self._empty(name))
            self._view(name, frame)
        self.create_table("orders", orders_query(SPARK))

    def _empty(self, name: str) -> DataFrame:
        return self.session.createDataFrame([], _EMPTY_SCHEMAS[name])

    def _view(self, name: str, frame: DataFrame) -> None:
        frame.createOrReplaceTempView(name)
        self._views.add(name)

    def _cache(self, name: str, frame: DataFrame) -> None:
        from pyspark import StorageLevel

        # On disk only: a block read back from disk is never promoted into the heap, so a
        # lake larger than the driver's memory streams (MEMORY_AND_DISK ran out of heap doing
        # that on a 680 MB lake with a 512m driver: bench/bench_spark_features.py).
        frame = frame.persist(StorageLevel.DISK_ONLY)
        old = self._cached.pop(name, None)
        self._view(name, frame)
        self._cached[name] = frame
        if old is not None:
            old.unpersist()

    def create_table(self, name: str, query: str) -> None:
        self._cache(name, self.session.sql(query.strip().rstrip(";")))

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        return [tuple(_utc(value) for value in row)
                for row in self.session.sql(query).collect()]

    def column_types(self, relation: str) -> list[tuple[str, str]]:
        return [(name, _PORTABLE.get(kind, kind))
                for name, kind in self.session.table(relation).dtypes]

    def keep_rows(self, table: str, condition: str) -> None:
        self._cache(table, self.session.sql(
            f"SELECT * FROM {table} WHERE COALESCE({condition}, false)"))

    def register_frame(self, name: str, frame: pd.DataFrame) -> None:
        self._view(name, self.session.createDataFrame(frame))

    def read_parquet(self, name: str, path: Path) -> None:
        self._view(name, self.session.read.parquet(str(path)))

    def write_parquet(self, table: str, path: Path) -> None:
        """One file: the rows go through one last task (a shuffle, so the work before it
        keeps every core), Spark's part file is renamed to `path`."""
        staging = path.with_name(f".{path.name}.spark")
        (self.session.table(table).repartition(1).write.mode("overwrite")
         .option("compression", "zstd").parquet(str(staging)))
        parts = sorted(staging.glob("part-*.parquet"))
        if len(parts) != 1:
            raise RuntimeError(f"spark wrote {len(parts)} part files for {table}, expected 1")
        os.replace(parts[0], path)
        shutil.rmtree(staging, ignore_errors=True)

    def close(self) -> None:
        for frame in self._cached.values():
            frame.unpersist()
        self._cached.clear()
        for name in self._views:
            self.session.catalog.dropTempView(name)
        self._views.clear()
