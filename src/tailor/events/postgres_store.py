"""The production event store on PostgreSQL (psycopg 3).

Reads and writes the database a `postgresql://` URL names, in the schema its
`?options=-csearch_path%3D<schema>` selects (default `public`): tables `events`,
`rejected_events`, `ingest_runs`, `products` and `customers` (no PII), and creates
`predictions` (the prediction log, written and read by `tailor.events.prediction_store`).
Timestamps are TIMESTAMPTZ.

Small writes (the collector's batches, up to `ARRAY_INSERT_MAX_ROWS` events) are one
`INSERT … SELECT FROM unnest(arrays) ON CONFLICT (event_id) DO NOTHING`: one round trip,
and its row count is the number of new events. Bulk writes stream the chunk as CSV
(written by pyarrow, block by block, so the server works on one block while the next is
written) through `COPY`: straight into `events` inside a savepoint when none of its ids is
stored yet (a first import), else into a temporary staging table from which the same kind
of `INSERT … ON CONFLICT DO NOTHING` moves the new rows. The connection runs in autocommit
(a read is one round trip; writes open their own transactions) with the session's zone set
to UTC. Writers take a transaction-level advisory lock so that `seq` values become
visible in increasing order: the lake export's `seq` watermark never skips a row
committed late by a concurrent writer. Id columns use the "C" collation: byte order is
all an id needs, and B-tree inserts compare bytes instead of calling strcoll.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd
import psycopg
import psycopg.errors
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from tailor.events.frames import (
    INGEST_RUN_COLUMNS,
    REJECTED_COLUMNS,
    complete_events,
    customer_column_lists,
    daily_counts_frame,
    object_list,
    product_column_lists,
    rejected_column_lists,
    utc_now,
)
from tailor.events.schema import CUSTOMER_COLUMNS, EVENT_COLUMNS, PRODUCT_COLUMNS
from tailor.events.prediction_store import POSTGRES_SCHEMA_SQL as PREDICTIONS_SCHEMA_SQL
from tailor.events.sql_reads import SqlEventReads
from tailor.events.store import IngestRun

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT COLLATE "C" NOT NULL UNIQUE,
    customer_id TEXT COLLATE "C",
    event_type TEXT NOT NULL,
    product_id TEXT,
    "timestamp" TIMESTAMPTZ NOT NULL,
    session_id TEXT,
    price DOUBLE PRECISION,
    quantity DOUBLE PRECISION,
    order_id TEXT,
    device_type TEXT,
    query TEXT,
    properties TEXT,
    received_at TIMESTAMPTZ NOT NULL,
    batch_id TEXT NOT NULL
);
-- No (customer_id, timestamp) index: with random customer ids it doubled the cost of
-- every insert. The store is the write path: per-customer reads go to the warehouse,
-- and a deletion (rare) scans.
CREATE INDEX IF NOT EXISTS events_time ON events ("timestamp");
CREATE TABLE IF NOT EXISTS rejected_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    row_number BIGINT,
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
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    received BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    rejected TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'finished',  -- or 'aborted' (see abort_reason)
    abort_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT PRIMARY KEY,
    name TEXT,
    category TEXT,
    price DOUBLE PRECISION,
    rating DOUBLE PRECISION,
    inventory BIGINT,
    seasonal BOOLEAN,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY,
    signup_date TIMESTAMPTZ,
    location TEXT,
    device_type TEXT,
    extra TEXT NOT NULL DEFAULT '{}'
);
"""

# Columns added to `ingest_runs` after its first version: a store created before them gets
# them on open. Rows written before say 'finished': no run recorded its status then.
MIGRATIONS_SQL = """
ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS status TEXT NOT NULL DEFAULT 'finished';
ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS abort_reason TEXT NOT NULL DEFAULT ''
"""

# The staging table lives in the session's pg_temp schema and empties itself at commit.
_STAGING_SQL = """
CREATE TEMP TABLE IF NOT EXISTS events_staging (
    event_id TEXT, customer_id TEXT, event_type TEXT, product_id TEXT, "timestamp" TIMESTAMPTZ,
    session_id TEXT, price DOUBLE PRECISION, quantity DOUBLE PRECISION, order_id TEXT,
    device_type TEXT, query TEXT, properties TEXT, received_at TIMESTAMPTZ, batch_id TEXT
) ON COMMIT DELETE ROWS
"""
_QUOTED_EVENT_COLUMNS = ", ".join('"timestamp"' if name == "timestamp" else name
                                  for name in EVENT_COLUMNS)
_COPY_COLUMNS = f"{_QUOTED_EVENT_COLUMNS}, received_at, batch_id"
_COPY_INTO = "COPY {table} (" + _COPY_COLUMNS + ") FROM STDIN (FORMAT csv)"
_EVENT_MOVE = (f"INSERT INTO events ({_COPY_COLUMNS}) SELECT {_COPY_COLUMNS} FROM events_staging "
               "ON CONFLICT (event_id) DO NOTHING")
# Epoch microseconds leave the server as integers: exact, and cheap to turn into a frame.
_MICROS = "(EXTRACT(EPOCH FROM {column}) * 1000000)::BIGINT"
_EVENT_SELECT = "seq, " + ", ".join(
    _MICROS.format(column='"timestamp"') if name == "timestamp" else name for name in EVENT_COLUMNS
) + ", " + _MICROS.format(column="received_at")
_SEQ_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.tailor.events.seq'))"
# Frames up to this many rows (a collector batch or two) go in one pipelined INSERT from
# arrays: one round trip instead of six, no CSV. Per row it costs about twice what COPY
# does (client and server), so larger frames stream through COPY.
ARRAY_INSERT_MAX_ROWS = 200
_ARRAY_TYPES = {"timestamp": "timestamp", "price": "float8", "quantity": "float8"}  # else text
_EVENT_ARRAY_INSERT = (
    f"INSERT INTO events ({_COPY_COLUMNS}) SELECT *, %s::timestamptz, %s::text FROM unnest("
    + ", ".join(f"%s::{_ARRAY_TYPES.get(name, 'text')}[]" for name in EVENT_COLUMNS)
    + ") ON CONFLICT (event_id) DO NOTHING")
# Rows per CSV block: the server parses and indexes one block while the next is written.
COPY_BLOCK_ROWS = 16_384


def events_csv(events: pd.DataFrame, received_at: pd.Timestamp, batch_id: str) -> bytes:
    """Complete events as header-less CSV in `_COPY_COLUMNS` order (nulls as empty fields).

    Times are written as UTC without a zone (Arrow writes those 20x faster than zoned
    ones; the session reads them in UTC), to microseconds: the store's precision.
    """
    table = pa.Table.from_pandas(events[list(EVENT_COLUMNS)], preserve_index=False)
    index = table.schema.get_field_index("timestamp")
    table = table.set_column(index, "timestamp", _naive_micros(table.column(index)))
    received = pa.array([received_at.value // 1000] * len(events), pa.int64())
    table = table.append_column("received_at", received.cast(pa.timestamp("us")))
    table = table.append_column("batch_id", pa.array([batch_id] * len(events), pa.string()))
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def events_csv_blocks(events: pd.DataFrame, received_at: pd.Timestamp,
                      batch_id: str) -> Iterator[bytes]:
    """`events_csv` of complete events, `COPY_BLOCK_ROWS` rows at a time, made as consumed."""
    for start in range(0, len(events), COPY_BLOCK_ROWS):
        yield events_csv(events.iloc[start:start + COPY_BLOCK_ROWS], received_at, batch_id)


def _naive_micros(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """UTC timestamps as zone-less microsecond timestamps, nanoseconds floored away (as
    numpy cuts them for `event_arrays` and the SQLite store)."""
    floored = pc.floor_temporal(times, unit="microsecond")
    return floored.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))


def event_arrays(events: pd.DataFrame) -> list[list[Any]]:
    """Complete events as one list per `EVENT_COLUMNS` column, None for missing values;
    times as zone-less UTC datetimes floored to microseconds, as `events_csv` writes them."""
    arrays = []
    for name in EVENT_COLUMNS:
        if name == "timestamp":
            arrays.append(events[name].to_numpy(dtype="datetime64[us]").tolist())
        else:
            arrays.append(object_list(events[name]))
    return arrays


def _py_time(value: pd.Timestamp) -> Any:
    """A timestamp (naive means UTC) as the tz-aware datetime psycopg binds."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _upsert_sql(table: str, columns: Sequence[str], key: str) -> str:
    """INSERT … ON CONFLICT (key) DO UPDATE for every non-key column."""
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in columns if name != key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}")


def _micros_select(columns: Sequence[str], times: Sequence[str]) -> str:
    """A select list of `columns`, those named in `times` as epoch microseconds."""
    return ", ".join(_MICROS.format(column=name) if name in times else name for name in columns)


_DELETE_OLD_EVENTS = ('DELETE FROM events WHERE seq IN (SELECT seq FROM events '
                      'WHERE "timestamp" < %s ORDER BY "timestamp" LIMIT %s)')
_DELETE_OLD_REJECTED = ("DELETE FROM rejected_events WHERE id IN (SELECT id FROM "
                        "rejected_events WHERE received_at < %s LIMIT %s)")
RETENTION_BATCH_ROWS = 50_000


class PostgresEventStore(SqlEventReads):
    """`EventStore` on PostgreSQL; one connection, calls serialised by a lock.

    The reads both backends share come from `SqlEventReads`, with these dialect bits.
    """

    _placeholder = "%s"
    _event_select = _EVENT_SELECT
    _latest_event_micros = _MICROS.format(column='MAX("timestamp")')
    _rejected_select = _micros_select(REJECTED_COLUMNS, ("received_at",))
    _ingest_run_select = _micros_select(INGEST_RUN_COLUMNS, ("started_at", "finished_at"))
    _customer_select = _micros_select(CUSTOMER_COLUMNS + ("extra",), ("signup_date",))
    _ingest_run_tiebreak = "batch_id"
    _bound_time = staticmethod(_py_time)

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._connection: psycopg.Connection | None = None
        self._staging_ready = False  # the session's temp staging table exists

    # -- connection and schema -------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        """The open connection (created on first use, or again after it broke).

        Autocommit: a read is one round trip; writes open their own transaction blocks.
        The session's zone is UTC, the zone of the zone-less times the writes send.
        """
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.url, autocommit=True)
            self._connection.execute("SET TIME ZONE 'UTC'")
            self._staging_ready = False
        return self._connection

    def _transaction(self, statements: Iterable[tuple[str, Any]]) -> list[int]:
        """Run statements in one transaction; returns each one's row count.

        A statement's parameters are a tuple (execute), a list of tuples (executemany)
        or None.
        """
        with self._lock:
            connection = self._connect()
            counts = []
            with connection.transaction(), connection.cursor() as cursor:
                for sql, parameters in statements:
                    if isinstance(parameters, list):
                        cursor.executemany(sql, parameters)
                    else:
                        cursor.execute(sql, parameters)
                    counts.append(cursor.rowcount)
            return counts

    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        """All rows of one query (one statement: consistent on its own)."""
        with self._lock:
            with self._connect().cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetchall()

    def initialize(self) -> None:
        """Create the tables and indexes if they do not exist and add the columns later
        versions introduced (idempotent, safe to race)."""
        statements = [(sql, None) for sql in ";".join((SCHEMA_SQL, MIGRATIONS_SQL,
                                                       PREDICTIONS_SCHEMA_SQL)).split(";")
                      if sql.strip()]
        # Two processes creating the same tables at once would collide; the lock orders them.
        lock = ("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.tailor.init'))", None)
        self._transaction([lock, *statements])

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- events ------------------------------------------------------------------------------

    def insert_events(self, events: pd.DataFrame, batch_id: str) -> int:
        """Store events, skipping ids already stored (or repeated in the frame); returns rows new.

        The chunk is first copied straight into `events` inside a savepoint: the cheap path
        when no id is stored yet (a first import). If any id is, that attempt is rolled back
        and the chunk goes through the staging table and `ON CONFLICT DO NOTHING`.
        `len(events)` minus the result is the duplicate count. Committed before returning.
        """
        if events.empty:
            return 0
        frame, received_at = complete_events(events), utc_now()
        if len(frame) <= ARRAY_INSERT_MAX_ROWS:
            return self._insert_from_arrays(frame, received_at, batch_id)
        sent: list[bytes] = []  # kept for the second attempt
        with self._lock:
            connection = self._connect()
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute(_SEQ_LOCK)  # held to commit: seqs become visible in order
                try:
                    with connection.transaction():  # a savepoint
                        blocks = events_csv_blocks(frame, received_at, batch_id)
                        self._copy(cursor, "events", blocks, keep=sent)
                    return len(events)
                except psycopg.errors.UniqueViolation:
                    pass  # some ids are stored already: take the path that skips them
                sent += events_csv_blocks(frame.iloc[len(sent) * COPY_BLOCK_ROWS:], received_at,
                                          batch_id)
                if not self._staging_ready:
                    cursor.execute(_STAGING_SQL)
                self._copy(cursor, "events_staging", sent)
                cursor.execute(_EVENT_MOVE)
                inserted = int(cursor.rowcount)
            self._staging_ready = True  # only once committed: a rollback drops the new table
            return inserted

    def _insert_from_arrays(self, frame: pd.DataFrame, received_at: pd.Timestamp,
                            batch_id: str) -> int:
        """A small frame of complete events in one statement; returns rows new."""
        parameters = [_py_time(received_at), batch_id, *event_arrays(frame)]
        with self._lock:
            connection = self._connect()
            # Pipelined: BEGIN, lock, insert and COMMIT reach the server in one round trip.
            with connection.pipeline(), connection.transaction():
                connection.execute(_SEQ_LOCK)  # held to commit: seqs become visible in order
                inserted = connection.execute(_EVENT_ARRAY_INSERT, parameters)
            return int(inserted.rowcount)

    @staticmethod
    def _copy(cursor: psycopg.Cursor, table: str, blocks: Iterable[bytes],
              keep: list[bytes] | None = None) -> None:
        """COPY CSV blocks into a table, each sent as soon as it is made (and kept in `keep`)."""
        with cursor.copy(_COPY_INTO.format(table=table)) as copy:
            for block in blocks:
                if keep is not None:
                    keep.append(block)
                copy.write(block)

    def daily_counts(self) -> pd.DataFrame:
        """Events per UTC day of their timestamp: `date` (datetime.date), `events`, oldest first."""
        rows = self._read("SELECT (\"timestamp\" AT TIME ZONE 'UTC')::date AS day, COUNT(*) "
                          "FROM events GROUP BY day ORDER BY day")
        return daily_counts_frame(rows)

    def stored_violations(self, now: pd.Timestamp) -> dict[str, int]:
        """Stored rows breaking a rule: missing customer, price ≤ 0, timestamp after `now`."""
        row = self._read(
            "SELECT COUNT(*) FILTER (WHERE customer_id IS NULL OR TRIM(customer_id) = ''), "
            "COUNT(*) FILTER (WHERE price <= 0), "
            "COUNT(*) FILTER (WHERE \"timestamp\" > %s) FROM events", (_py_time(now),))[0]
        return {"missing_customer_id": int(row[0]), "nonpositive_price": int(row[1]),
                "future_timestamp": int(row[2])}

    def delete_customer(self, customer_id: str) -> int:
        """Remove a customer's events, dead-letter rows and customer row, and their id from
        the prediction log; returns events removed."""
        return self.forget_customer(customer_id)["events"]

    def forget_customer(self, customer_id: str) -> dict[str, int]:
        """`delete_customer` with a count per table: events, dead_letters, customers,
        predictions (ids cleared). One transaction."""
        counts = self._transaction([
            ("DELETE FROM events WHERE customer_id = %s", (customer_id,)),
            ("DELETE FROM rejected_events WHERE customer_id = %s", (customer_id,)),
            ("DELETE FROM customers WHERE customer_id = %s", (customer_id,)),
            # The customer's answers stay in the prediction log, without their ids.
            ("UPDATE predictions SET customer_id = NULL, session_id = NULL "
             "WHERE customer_id = %s", (customer_id,)),
        ])
        return dict(zip(("events", "dead_letters", "customers", "predictions"),
                        (int(count) for count in counts)))

    def customer_sessions(self, customer_id: str) -> list[str]:
        """The distinct session ids of a customer's events."""
        return [str(row[0]) for row in self._read(
            "SELECT DISTINCT session_id FROM events WHERE customer_id = %s "
            "AND session_id IS NOT NULL", (customer_id,))]

    def delete_older_than(self, cutoff: pd.Timestamp,
                          batch_rows: int = RETENTION_BATCH_ROWS) -> dict[str, int]:
        """Delete events timestamped before `cutoff` and dead letters received before it, in
        batches of `batch_rows` (one transaction each, so writers wait for one batch at
        most); returns rows deleted (`events`, `dead_letters`). The space comes back with
        (auto)vacuum."""
        bound = _py_time(cutoff)
        removed = {}
        for name, sql in (("events", _DELETE_OLD_EVENTS), ("dead_letters", _DELETE_OLD_REJECTED)):
            removed[name] = 0
            while True:
                [changed] = self._transaction([(sql, (bound, int(batch_rows)))])
                removed[name] += int(changed)
                if changed < batch_rows:
                    break
        return removed

    # -- dead letter and ingest runs -------------------------------------------------------------

    def insert_rejected(self, rejected: pd.DataFrame, batch_id: str, source: str) -> None:
        """Keep rejected rows (`row_number, reason, field, detail, raw`) as dead letters."""
        if rejected.empty:
            return
        received = _py_time(utc_now())
        lists = rejected_column_lists(rejected)
        with self._lock:
            connection = self._connect()
            with connection.transaction(), connection.cursor() as cursor:
                with cursor.copy("COPY rejected_events (batch_id, source, received_at, row_number, "
                                 "reason, field, detail, raw, customer_id) FROM STDIN") as copy:
                    for row in zip(*lists):
                        copy.write_row((batch_id, source, received, *row))

    def record_ingest(self, run: IngestRun) -> None:
        """Record (or, for a batch id seen before, replace) the counts and status of one
        ingest run."""
        values = (run.batch_id, run.source, _py_time(run.started_at), _py_time(run.finished_at),
                  int(run.received), int(run.accepted), int(run.duplicates),
                  json.dumps(dict(run.rejected), sort_keys=True), run.status,
                  run.abort_reason)
        self._transaction([(_upsert_sql("ingest_runs", INGEST_RUN_COLUMNS, "batch_id"), values)])

    # -- catalogue and customers ----------------------------------------------------------------

    def upsert_products(self, products: pd.DataFrame) -> int:
        """Insert or replace catalogue rows (extra columns kept as JSON); returns rows written."""
        if products.empty:
            return 0
        lists = product_column_lists(products)
        columns = PRODUCT_COLUMNS + ("extra",)
        self._transaction([(_upsert_sql("products", columns, "product_id"), list(zip(*lists)))])
        return len(lists[0])

    def upsert_customers(self, customers: pd.DataFrame) -> int:
        """Insert or replace pseudonymous customers; raises ValueError on any PII column."""
        lists = customer_column_lists(customers)
        if not lists[0]:
            return 0
        signup = [None if micros is None
                  else pd.Timestamp(micros, unit="us", tz="UTC").to_pydatetime()
                  for micros in lists[1]]
        rows = list(zip(lists[0], signup, *lists[2:]))
        columns = CUSTOMER_COLUMNS + ("extra",)
        self._transaction([(_upsert_sql("customers", columns, "customer_id"), rows)])
        return len(rows)
