"""The embedded event store: one SQLite file (WAL mode), the default on a fresh machine.

Reads and writes the file a `sqlite:///path` URL names (its folder is created on
first use): tables `events`, `rejected_events`, `ingest_runs`, `products` and
`customers` (no PII), and creates `predictions` (the prediction log, written and read by
`tailor.events.prediction_store`). Timestamps are stored as INTEGER epoch microseconds (UTC), so
range queries are integer comparisons; frames coming out carry tz-aware UTC times.

Durability: `synchronous=FULL` in WAL mode syncs the log on every commit, so an event
acknowledged by `insert_events` survives a power cut, not only a process crash
(`NORMAL` may lose the last commits on power loss). Each chunk is one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from itertools import repeat
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from tailor.errors import InputError
from tailor.events.frames import (
    EVENT_TABLE_COLUMNS,
    INGEST_RUN_COLUMNS,
    MICROS_PER_DAY,
    REJECTED_COLUMNS,
    complete_events,
    customer_column_lists,
    daily_counts_frame,
    event_matrix,
    product_column_lists,
    rejected_column_lists,
    timestamp_micros,
    utc_now,
)
from tailor.events.schema import CUSTOMER_COLUMNS, EVENT_COLUMNS, PRODUCT_COLUMNS
from tailor.events.sql_reads import SqlEventReads
from tailor.events.prediction_store import SQLITE_SCHEMA_SQL as PREDICTIONS_SCHEMA_SQL
from tailor.events.prediction_store import add_missing_sqlite_columns
from tailor.events.store import IngestRun, connect_sqlite, sqlite_path

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a deleted seq is never reused
    event_id TEXT NOT NULL UNIQUE,
    customer_id TEXT,
    event_type TEXT NOT NULL,
    product_id TEXT,
    timestamp INTEGER NOT NULL,
    session_id TEXT,
    price REAL,
    quantity REAL,
    order_id TEXT,
    device_type TEXT,
    query TEXT,
    properties TEXT,
    received_at INTEGER NOT NULL,
    batch_id TEXT NOT NULL
);
-- No (customer_id, timestamp) index: with random customer ids it doubled the cost of
-- every insert. The store is the write path: per-customer reads go to the warehouse,
-- and a deletion (rare) scans.
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp);
CREATE TABLE IF NOT EXISTS rejected_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    row_number INTEGER,
    reason TEXT NOT NULL,
    field TEXT,
    detail TEXT,
    raw TEXT,
    customer_id TEXT
);
CREATE INDEX IF NOT EXISTS rejected_reason_time ON rejected_events (reason, received_at);
CREATE INDEX IF NOT EXISTS rejected_customer ON rejected_events (customer_id);
CREATE TABLE IF NOT EXISTS ingest_runs (
    batch_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    received INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    rejected TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'finished',  -- or 'aborted' (see abort_reason)
    abort_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT PRIMARY KEY,
    name TEXT,
    category TEXT,
    price REAL,
    rating REAL,
    inventory INTEGER,
    seasonal INTEGER,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY,
    signup_date INTEGER,
    location TEXT,
    device_type TEXT,
    extra TEXT NOT NULL DEFAULT '{}'
);
"""

# Columns added to `ingest_runs` after its first version: a store created before them gets
# them on open. Rows written before say 'finished': no run recorded its status then.
INGEST_RUN_ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "TEXT NOT NULL DEFAULT 'finished'"),
    ("abort_reason", "TEXT NOT NULL DEFAULT ''"),
)

# Events go in ROWS_PER_INSERT to a statement: per-statement work (and the GIL handed back
# and forth around each step) then costs a quarter less per row than one row a statement.
ROWS_PER_INSERT = 32
_EVENT_VALUES = f"({', '.join('?' * len(EVENT_TABLE_COLUMNS))})"
_EVENT_INSERT = (f"INSERT OR IGNORE INTO events ({', '.join(EVENT_TABLE_COLUMNS)}) "
                 f"VALUES {_EVENT_VALUES}")
_EVENT_INSERT_MANY = (f"INSERT OR IGNORE INTO events ({', '.join(EVENT_TABLE_COLUMNS)}) "
                      f"VALUES {', '.join([_EVENT_VALUES] * ROWS_PER_INSERT)}")
_EVENT_SELECT = "seq, " + ", ".join(EVENT_COLUMNS) + ", received_at"
# A deleted customer's answers stay in the prediction log, without their ids.
# Retention deletes in batches (one transaction each), so the collector's writes wait for one
# batch at most, never for the whole deletion.
_DELETE_OLD_EVENTS = ('DELETE FROM events WHERE seq IN (SELECT seq FROM events '
                      'WHERE "timestamp" < ? ORDER BY "timestamp" LIMIT ?)')
_DELETE_OLD_REJECTED = ("DELETE FROM rejected_events WHERE id IN (SELECT id FROM "
                        "rejected_events WHERE received_at < ? LIMIT ?)")
RETENTION_BATCH_ROWS = 50_000
_FORGET_PREDICTIONS = ("UPDATE predictions SET customer_id = NULL, session_id = NULL "
                       "WHERE customer_id = ?")
# What forgetting a customer does to each table (the prediction log keeps the answers, without
# the ids).
_FORGET_STATEMENTS: tuple[tuple[str, str], ...] = (
    ("events", "DELETE FROM events WHERE customer_id = ?"),
    ("dead_letters", "DELETE FROM rejected_events WHERE customer_id = ?"),
    ("customers", "DELETE FROM customers WHERE customer_id = ?"),
    ("predictions", _FORGET_PREDICTIONS),
)


def _upsert_sql(table: str, columns: tuple[str, ...], key: str) -> str:
    """INSERT … ON CONFLICT(key) DO UPDATE for every non-key column."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name != key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}")


def _roll_back(connection: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already (it does on a full disk:
    an explicit ROLLBACK would then fail and hide the error that matters)."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")


class SqliteEventStore(SqlEventReads):
    """`EventStore` on one SQLite file; safe to share between threads (calls are serialised).

    The reads both backends share come from `SqlEventReads`, with these dialect bits.
    """

    _placeholder = "?"
    _event_select = _EVENT_SELECT
    _latest_event_micros = "MAX(timestamp)"
    _rejected_select = ", ".join(REJECTED_COLUMNS)
    _ingest_run_select = ", ".join(INGEST_RUN_COLUMNS)
    _customer_select = ", ".join(CUSTOMER_COLUMNS + ("extra",))
    _ingest_run_tiebreak = "rowid"
    _bound_time = staticmethod(timestamp_micros)

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None

    # -- connection and schema -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """The open connection, created (with its folder and pragmas) on first use."""
        if self._connection is None:
            connection = connect_sqlite(self.path, synchronous="FULL")
            connection.execute("PRAGMA cache_size=-65536")  # 64 MiB: index pages stay hot
            connection.execute("PRAGMA temp_store=MEMORY")
            self._connection = connection
        return self._connection

    def _write(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run a statement once per row, all in one immediate transaction; returns rows changed."""
        return self._write_all([(sql, rows)])

    def _write_all(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> int:
        """Run each statement once per parameter row, all in one immediate transaction.

        Returns:
            Rows changed in all.
        """
        with self._lock:
            connection = self._connect()
            before = connection.total_changes
            connection.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    connection.executemany(sql, rows)
                connection.execute("COMMIT")
            except BaseException:
                _roll_back(connection)
                raise
            return connection.total_changes - before

    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        """All rows of one query."""
        with self._lock:
            return self._connect().execute(sql, parameters).fetchall()

    def initialize(self) -> None:
        """Create the tables and indexes if they do not exist, and add the columns later
        versions introduced to an existing store's tables (idempotent)."""
        with self._lock:
            connection = self._connect()
            connection.executescript(SCHEMA_SQL)
            connection.executescript(PREDICTIONS_SCHEMA_SQL)
            add_missing_sqlite_columns(connection)
            present = {row[1] for row in connection.execute("PRAGMA table_info(ingest_runs)")}
            for column, definition in INGEST_RUN_ADDED_COLUMNS:
                if column not in present:
                    connection.execute(f"ALTER TABLE ingest_runs ADD COLUMN {column} {definition}")

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- events ------------------------------------------------------------------------------

    def insert_events(self, events: pd.DataFrame, batch_id: str) -> int:
        """Store events, skipping ids already stored (or repeated in the frame).

        Args:
            events: rows with the contract columns (as `validate_events` returns them).
            batch_id: the ingest batch the rows belong to.

        Returns:
            How many rows were new; `len(events)` minus this is the duplicate count.
            The transaction is committed (and synced) before this returns.
        """
        if events.empty:
            return 0
        matrix = event_matrix(complete_events(events), timestamp_micros(utc_now()), batch_id)
        grouped = len(matrix) - len(matrix) % ROWS_PER_INSERT
        many = matrix[:grouped].reshape(-1, ROWS_PER_INSERT * matrix.shape[1])
        return self._write_all([(_EVENT_INSERT_MANY, many.tolist()),
                                (_EVENT_INSERT, matrix[grouped:].tolist())])

    def daily_counts(self) -> pd.DataFrame:
        """Events per UTC day of their timestamp: `date` (datetime.date), `events`, oldest first."""
        # Floor division that is also right before 1970 (SQLite's / truncates towards 0).
        day = (f"(CASE WHEN timestamp >= 0 THEN timestamp / {MICROS_PER_DAY} "
               f"ELSE (timestamp - {MICROS_PER_DAY - 1}) / {MICROS_PER_DAY} END)")
        rows = self._read(f"SELECT {day} AS day, COUNT(*) FROM events GROUP BY day ORDER BY day")
        epoch = dt.date(1970, 1, 1)
        return daily_counts_frame([(epoch + dt.timedelta(days=int(day)), count)
                                   for day, count in rows])

    def stored_violations(self, now: pd.Timestamp) -> dict[str, int]:
        """Stored rows breaking a rule: missing customer, price ≤ 0, timestamp after `now`."""
        row = self._read(
            "SELECT "
            "COALESCE(SUM(customer_id IS NULL OR TRIM(customer_id) = ''), 0), "
            "COALESCE(SUM(price IS NOT NULL AND price <= 0), 0), "
            "COALESCE(SUM(timestamp > ?), 0) FROM events",
            (timestamp_micros(now),))[0]
        return {"missing_customer_id": int(row[0]), "nonpositive_price": int(row[1]),
                "future_timestamp": int(row[2])}

    def delete_customer(self, customer_id: str) -> int:
        """Remove a customer's events, dead-letter rows and customer row, and their id from
        the prediction log; returns events gone."""
        return self.forget_customer(customer_id)["events"]

    def forget_customer(self, customer_id: str) -> dict[str, int]:
        """`delete_customer`, with the rows overwritten on disk and a count per table.

        `secure_delete` zeroes the deleted rows' bytes in their pages, and a checkpoint
        then empties the write-ahead log that held the pages before (when no reader holds
        it: the log is reused, never appended to forever).

        Returns:
            Rows per table: events, dead_letters, customers, predictions (ids cleared).
        """
        with self._lock:
            connection = self._connect()
            connection.execute("PRAGMA secure_delete=ON")
            connection.execute("BEGIN IMMEDIATE")
            try:
                counts = {table: connection.execute(sql, (customer_id,)).rowcount
                          for table, sql in _FORGET_STATEMENTS}
                connection.execute("COMMIT")
            except BaseException:
                _roll_back(connection)
                raise
            finally:
                connection.execute("PRAGMA secure_delete=OFF")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return {table: int(count) for table, count in counts.items()}

    def customer_sessions(self, customer_id: str) -> list[str]:
        """The distinct session ids of a customer's events."""
        return [str(row[0]) for row in self._read(
            "SELECT DISTINCT session_id FROM events WHERE customer_id = ? "
            "AND session_id IS NOT NULL", (customer_id,))]

    def delete_older_than(self, cutoff: pd.Timestamp,
                          batch_rows: int = RETENTION_BATCH_ROWS) -> dict[str, int]:
        """Delete events timestamped before `cutoff` and dead letters received before it, in
        batches of `batch_rows`; returns rows deleted (`events`, `dead_letters`).

        `secure_delete` overwrites the freed pages and a WAL checkpoint follows, so the
        deleted rows do not linger in the file's free pages or the write-ahead log.
        """
        bound = timestamp_micros(cutoff)
        with self._lock:
            self._connect().execute("PRAGMA secure_delete=ON")
        removed = {}
        for name, sql in (("events", _DELETE_OLD_EVENTS), ("dead_letters", _DELETE_OLD_REJECTED)):
            removed[name] = 0
            while True:
                changed = self._write(sql, [(bound, int(batch_rows))])
                removed[name] += changed
                if changed < batch_rows:
                    break
        if any(removed.values()):
            with self._lock:
                self._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    # -- dead letter and ingest runs -------------------------------------------------------------

    def insert_rejected(self, rejected: pd.DataFrame, batch_id: str, source: str) -> None:
        """Keep rejected rows (`row_number, reason, field, detail, raw`) as dead letters."""
        if rejected.empty:
            return
        received = timestamp_micros(utc_now())
        rows = zip(repeat(batch_id), repeat(source), repeat(received),
                   *rejected_column_lists(rejected))
        self._write("INSERT INTO rejected_events (batch_id, source, received_at, row_number, "
                    "reason, field, detail, raw, customer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows)

    def record_ingest(self, run: IngestRun) -> None:
        """Record (or, for a batch id seen before, replace) the counts and status of one
        ingest run."""
        values = (run.batch_id, run.source, timestamp_micros(run.started_at),
                  timestamp_micros(run.finished_at), int(run.received), int(run.accepted),
                  int(run.duplicates), json.dumps(dict(run.rejected), sort_keys=True),
                  run.status, run.abort_reason)
        self._write(_upsert_sql("ingest_runs", INGEST_RUN_COLUMNS, "batch_id"), [values])

    # -- catalogue and customers ----------------------------------------------------------------

    def upsert_products(self, products: pd.DataFrame) -> int:
        """Insert or replace catalogue rows (extra columns kept as JSON); returns rows written."""
        if products.empty:
            return 0
        columns = PRODUCT_COLUMNS + ("extra",)
        lists = product_column_lists(products)
        self._write(_upsert_sql("products", columns, "product_id"), zip(*lists))
        return len(lists[0])

    def upsert_customers(self, customers: pd.DataFrame) -> int:
        """Insert or replace pseudonymous customers; raises ValueError on any PII column."""
        lists = customer_column_lists(customers)
        if not lists[0]:
            return 0
        columns = CUSTOMER_COLUMNS + ("extra",)
        self._write(_upsert_sql("customers", columns, "customer_id"), zip(*lists))
        return len(lists[0])
