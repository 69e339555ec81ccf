"""The batch engine interface and the one switch between its two implementations.

Reads `features.engine` from the settings: `duckdb` (the warehouse file, one machine) or
`spark` (Spark over the same Parquet lake, `local[*]` or a cluster's master URL). Writes
nothing itself. The feature computation and the quality gate's aggregates talk to a
`BatchEngine` only, with SQL rendered for its `dialect` (`tailor.sql_dialects`), so one
query text gives the same rows on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from tailor.config import Settings
from tailor.sql_dialects import Dialect

# Portable column types, as the feature catalogue names them (`tailor.features.specs`).
PORTABLE_TYPES: tuple[str, ...] = ("int64", "float64", "string", "bool", "timestamp",
                                   "string_list")


class BatchEngine(Protocol):
    """Relations by name (the lake's events, products, customers and orders, and the tables
    a job creates), queried in one SQL dialect."""

    dialect: Dialect

    def create_table(self, name: str, query: str) -> None:
        """Make `query`'s rows the table `name` (replacing one of that name)."""

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """A query's rows; timestamps as UTC-aware datetimes."""

    def column_types(self, relation: str) -> list[tuple[str, str]]:
        """(name, type) of a relation's columns in order; the type one of PORTABLE_TYPES,
        else the engine's own name for it."""

    def keep_rows(self, table: str, condition: str) -> None:
        """Delete the rows of `table` for which `condition` is not true."""

    def register_frame(self, name: str, frame: pd.DataFrame) -> None:
        """A small DataFrame as the relation `name`."""

    def read_parquet(self, name: str, path: Path) -> None:
        """A Parquet file as the relation `name`."""

    def write_parquet(self, table: str, path: Path) -> None:
        """A table as one Parquet file at `path`, replaced atomically."""

    def close(self) -> None:
        """Release what the engine holds (the shared Spark session stays up)."""


def open_batch_engine(settings: Settings) -> BatchEngine:
    """The engine `settings.features_engine` names, over the settings' warehouse or lake.

    Raises:
        FileNotFoundError: DuckDB and the warehouse was never built.
        RuntimeError: Spark and pyspark or Java is missing (the message says what to install).
    """
    if settings.features_engine == "spark":
        from tailor.batch.spark_engine import SparkEngine

        return SparkEngine.over_lake(settings)
    from tailor.batch.duckdb_engine import DuckDBEngine

    return DuckDBEngine.over_warehouse(settings)
