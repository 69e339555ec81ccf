"""The DuckDB batch engine: a read-only connection to the warehouse file.

Reads the warehouse (`tailor.warehouse`: views over the lake, the orders table); creates
temporary tables only, which vanish with the connection; writes the Parquet files it is
asked to.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from tailor.config import Settings
from tailor.sql_dialects import DUCKDB
from tailor.warehouse.duckdb_warehouse import open_warehouse, sql_literal

_PORTABLE: dict[str, str] = {
    "BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": "string", "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "timestamp", "VARCHAR[]": "string_list",
}


def _utc(value: Any) -> Any:
    return value.astimezone(timezone.utc) if isinstance(value, datetime) else value


class DuckDBEngine:
    """`BatchEngine` on one DuckDB connection (UTC)."""

    dialect = DUCKDB

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection

    @classmethod
    def over_warehouse(cls, settings: Settings) -> DuckDBEngine:
        """A read-only connection to the settings' warehouse.

        Raises:
            FileNotFoundError: the warehouse was never built (run `tailor warehouse`).
        """
        return cls(open_warehouse(settings, read_only=True))

    def create_table(self, name: str, query: str) -> None:
        self.connection.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS\n"
                                + query.strip().rstrip(";"))

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        return [tuple(_utc(value) for value in row)
                for row in self.connection.execute(query).fetchall()]

    def column_types(self, relation: str) -> list[tuple[str, str]]:
        described = self.connection.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        return [(row[0], _PORTABLE.get(row[1], row[1])) for row in described]

    def keep_rows(self, table: str, condition: str) -> None:
        self.connection.execute(f"DELETE FROM {table} WHERE NOT COALESCE({condition}, false)")

    def register_frame(self, name: str, frame: pd.DataFrame) -> None:
        self.connection.register(name, frame)

    def read_parquet(self, name: str, path: Path) -> None:
        self.connection.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS "
                                f"SELECT * FROM read_parquet({sql_literal(str(path))})")

    def write_parquet(self, table: str, path: Path) -> None:
        temporary = path.with_name(f".{path.name}.tmp")
        self.connection.execute(f"COPY {table} TO {sql_literal(str(temporary))} "
                                "(FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 1000000)")
        os.replace(temporary, path)

    def close(self) -> None:
        self.connection.close()
