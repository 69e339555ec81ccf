"""A `predictions` table made before `latency_ms` and `fallback_kind` were logged gets the
columns when a store opens it, keeping its rows (SQLite; PostgreSQL adds them with
ADD COLUMN IF NOT EXISTS in the schema script)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tailor.events.prediction_store import (
    PREDICTION_COLUMNS, SQLITE_SCHEMA_SQL, open_prediction_store,
)
from tailor.events.store import open_event_store


def old_table(path: Path) -> None:
    """The table as the version before wrote it, with one answer."""
    old_schema = SQLITE_SCHEMA_SQL.replace(",\n    latency_ms REAL,\n    fallback_kind TEXT", "")
    assert "latency_ms" not in old_schema
    connection = sqlite3.connect(path)
    connection.executescript(old_schema)
    connection.execute("INSERT INTO predictions (served_at, request_id, endpoint, model, "
                       "variant, fallback) VALUES (1, 'old', 'homepage', 'homepage', "
                       "'champion', 0)")
    connection.commit()
    connection.close()


def test_the_prediction_store_adds_the_columns_and_keeps_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old_table(path)
    store = open_prediction_store(f"sqlite:///{path}")
    row = dict.fromkeys(PREDICTION_COLUMNS)
    row.update(served_at=2, request_id="new", endpoint="homepage", model="homepage",
               variant="champion", items="[]", fallback=True, stale=False, latency_ms=7.5,
               fallback_kind="timeout")
    store.insert_predictions([tuple(row[column] for column in PREDICTION_COLUMNS)])
    rows = {stored[2]: dict(zip(PREDICTION_COLUMNS, stored[1:]))
            for stored in store.predictions_after(0, 10)}
    store.close()
    assert (rows["old"]["latency_ms"], rows["old"]["fallback_kind"]) == (None, None)
    assert (rows["new"]["latency_ms"], rows["new"]["fallback_kind"]) == (7.5, "timeout")


def test_the_event_store_adds_them_too(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old_table(path)
    open_event_store(f"sqlite:///{path}").close()
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(predictions)")}
    assert {"latency_ms", "fallback_kind"} <= columns
