"""The prediction log's table, `predictions`, beside the events (SQLite or PostgreSQL).

Reads and writes the database the event store's URL names (`database_url`, default
`<home>/events.db`): one row per answer the server gave, written by the serving process's
background writer (`tailor.serving.prediction_recorder`), read by the monitoring and
experiment jobs (`tailor.monitoring.prediction_log`) and exported to the lake
(`tailor.events.prediction_lake`). The event stores create the table too, so that deleting a
customer can clear their id from it.

Rows go in and come out as plain tuples in `PREDICTION_COLUMNS` order (no pandas: serving
imports this module), with `served_at` as epoch microseconds (UTC) and `items` as JSON text.
`request_id` is unique: writing an answer twice (a retry after a lost COMMIT) stores it once.
On PostgreSQL, writers take a transaction-level advisory lock so that `seq` values become
visible in increasing order (the lake export's watermark never skips a late commit), as the
event store's writers do.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from tailor.errors import InputError
from tailor.events.store import connect_sqlite, sqlite_path

# The columns of one answer, in the order rows are written and read (after `seq` on reads).
PREDICTION_COLUMNS: tuple[str, ...] = (
    "served_at",           # when the answer was given, UTC
    "request_id",          # the answer's request_id (unique)
    "customer_id",         # as the request gave it; NULL for excluded customers or none given
    "session_id",          # from the request, when it had one
    "endpoint",            # homepage | also_bought | checkout_offer
    "model",               # homepage | cross_sell | checkout
    "model_version",       # registry version; NULL for a fallback
    "variant",             # the alias or version the model was served as
    "items",               # JSON list of {product_id, score, reason}, in served order
    "k",                   # products asked for (NULL for checkout offers)
    "p_abandon",           # checkout offers: P(abandon); NULL in a fallback
    "offer",               # checkout offers: the incentive (none, 10_off, free_shipping)
    "fallback",            # the answer was the fallback
    "fallback_reason",     # why (free text from the answer)
    "stale",               # built on stale features
    "personalised",        # homepage: personalised list; NULL for other endpoints
    "anchor_product_id",   # also bought: the product the companions are for
    "experiment",          # the A/B experiment the answer was served in (NULL: none)
    "experiment_variant",  # its variant (the answer is the exposure)
    "latency_ms",          # how long the pipeline took to answer (NULL: not measured)
    "fallback_kind",       # a fallback's kind: timeout, feature_store, no_model, model_error,
                           # internal_error, stale_features (NULL: no fallback, or not known)
)
# Columns later versions added: (name, SQLite type, PostgreSQL type); an older table gets them
# when a store opens it (`add_missing_sqlite_columns`, and ADD COLUMN IF NOT EXISTS).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("latency_ms", "REAL", "DOUBLE PRECISION"), ("fallback_kind", "TEXT", "TEXT"))
ENDPOINT_MODELS: dict[str, str] = {"homepage": "homepage", "also_bought": "cross_sell",
                                   "checkout_offer": "checkout"}
# The fallback kinds that are errors (a model or the pipeline failed), not a planned fallback.
ERROR_KINDS: tuple[str, ...] = ("model_error", "internal_error")
ERROR_KINDS_SQL = ", ".join(f"'{kind}'" for kind in ERROR_KINDS)  # constants, not input
_INSERT_COLUMNS = ", ".join(PREDICTION_COLUMNS)
_SELECT_COLUMNS = "seq, " + _INSERT_COLUMNS
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

SQLITE_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    served_at INTEGER NOT NULL,             -- epoch microseconds, UTC
    request_id TEXT NOT NULL UNIQUE,
    customer_id TEXT,
    session_id TEXT,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT,
    variant TEXT NOT NULL,
    items TEXT NOT NULL DEFAULT '[]',        -- JSON
    k INTEGER,
    p_abandon REAL,
    offer TEXT,
    fallback INTEGER NOT NULL,
    fallback_reason TEXT,
    stale INTEGER NOT NULL DEFAULT 0,
    personalised INTEGER,
    anchor_product_id TEXT,
    experiment TEXT,
    experiment_variant TEXT,
    latency_ms REAL,
    fallback_kind TEXT
);
CREATE INDEX IF NOT EXISTS predictions_served_at ON predictions (served_at);
CREATE INDEX IF NOT EXISTS predictions_experiment ON predictions (experiment, served_at)
    WHERE experiment IS NOT NULL;
"""

POSTGRES_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS predictions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    served_at TIMESTAMPTZ NOT NULL,
    request_id TEXT COLLATE "C" NOT NULL UNIQUE,
    customer_id TEXT COLLATE "C",
    session_id TEXT,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT,
    variant TEXT NOT NULL,
    items TEXT NOT NULL DEFAULT '[]',
    k INTEGER,
    p_abandon DOUBLE PRECISION,
    offer TEXT,
    fallback BOOLEAN NOT NULL,
    fallback_reason TEXT,
    stale BOOLEAN NOT NULL DEFAULT false,
    personalised BOOLEAN,
    anchor_product_id TEXT,
    experiment TEXT,
    experiment_variant TEXT,
    latency_ms DOUBLE PRECISION,
    fallback_kind TEXT
);
CREATE INDEX IF NOT EXISTS predictions_served_at ON predictions (served_at);
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS latency_ms DOUBLE PRECISION;
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS fallback_kind TEXT;
CREATE INDEX IF NOT EXISTS predictions_experiment ON predictions (experiment, served_at)
    WHERE experiment IS NOT NULL
"""
_POSTGRES_SEQ_LOCK = ("SELECT pg_advisory_xact_lock("
                      "hashtext(current_schema() || '.tailor.predictions.seq'))")
_POSTGRES_MICROS = "(EXTRACT(EPOCH FROM served_at) * 1000000)::BIGINT"


def add_missing_sqlite_columns(connection: sqlite3.Connection) -> None:
    """Add `ADDED_COLUMNS` to a SQLite `predictions` table made by an older version."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(predictions)")}
    for name, sqlite_type, _ in ADDED_COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE predictions ADD COLUMN {name} {sqlite_type}")


def micros_to_datetime(micros: int) -> dt.datetime:
    """Epoch microseconds as a tz-aware UTC datetime (exact, unlike a float division)."""
    return _EPOCH + dt.timedelta(microseconds=int(micros))


def datetime_to_micros(moment: dt.datetime) -> int:
    """A tz-aware datetime as epoch microseconds (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@runtime_checkable
class PredictionStore(Protocol):
    """The `predictions` table of one database."""

    url: str

    def initialize(self) -> None:
        """Create the table and its indexes if they do not exist (idempotent)."""

    def insert_predictions(self, rows: Sequence[Sequence[Any]]) -> int:
        """Store rows in `PREDICTION_COLUMNS` order, skipping request ids already stored;
        returns how many were new. Committed before it returns."""

    def predictions_after(self, seq: int, limit: int) -> list[tuple]:
        """Up to `limit` rows with `seq > seq`, in seq order: `seq` then `PREDICTION_COLUMNS`."""

    def predictions_between(self, start_micros: int, end_micros: int,
                            endpoint: str | None = None) -> list[tuple]:
        """Rows served in [start, end) (epoch microseconds), optionally of one endpoint, in
        seq order: `seq` then `PREDICTION_COLUMNS`."""

    def experiment_summary(self, experiment: str, start_micros: int) -> list[tuple]:
        """Per variant of `experiment`, answers served from `start_micros` on: (variant,
        answers, distinct customers, fallbacks, errors); errors are fallbacks of kind
        model_error or internal_error."""

    def experiment_latencies(self, experiment: str, start_micros: int) -> list[tuple]:
        """Per variant of `experiment`, a histogram of the answers' latency from
        `start_micros` on: (variant, whole milliseconds rounded up, answers)."""

    def max_seq(self) -> int:
        """The highest stored seq (0 when empty)."""

    def delete_exported(self, up_to_seq: int, before_micros: int) -> int:
        """Delete rows with `seq <= up_to_seq` served before `before_micros`; returns how many."""

    def close(self) -> None:
        """Release the connection (a later call reopens it)."""


def open_prediction_store(url: str) -> PredictionStore:
    """Open (and initialise) the `predictions` table of the event store a URL names.

    Args:
        url: `sqlite:///path/to/events.db` or `postgresql://…` (as `open_event_store`).

    Raises:
        ValueError: the URL's scheme is not supported.
    """
    if url.startswith("sqlite:///"):
        store: PredictionStore = SqlitePredictionStore(url)
    elif url.startswith(("postgresql://", "postgres://")):
        store = PostgresPredictionStore(url)
    else:
        raise InputError(f"database_url: unsupported scheme in {url.split('://')[0]!r}; "
                         "use sqlite:/// or postgresql://")
    store.initialize()
    return store


class _SqlPredictionReads:
    """The reads both dialects share; subclasses set the placeholder, the select list and
    how a time is bound, and implement `_read`."""

    _placeholder = "?"
    _select = _SELECT_COLUMNS
    # latency_ms rounded up to a whole millisecond (SQLite has no CEIL before 3.35)
    _ceiling_ms = ("CAST(latency_ms AS INTEGER) + "
                   "(latency_ms > CAST(latency_ms AS INTEGER))")
    _lock: threading.RLock

    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def _bound_time(self, micros: int) -> Any:
        return micros

    def predictions_after(self, seq: int, limit: int) -> list[tuple]:
        mark = self._placeholder
        return self._read(f"SELECT {self._select} FROM predictions WHERE seq > {mark} "
                          f"ORDER BY seq LIMIT {mark}", (int(seq), int(limit)))

    def predictions_between(self, start_micros: int, end_micros: int,
                            endpoint: str | None = None) -> list[tuple]:
        mark = self._placeholder
        sql = (f"SELECT {self._select} FROM predictions "
               f"WHERE served_at >= {mark} AND served_at < {mark}")
        parameters: tuple = (self._bound_time(start_micros), self._bound_time(end_micros))
        if endpoint is not None:
            sql += f" AND endpoint = {mark}"
            parameters += (endpoint,)
        return self._read(sql + " ORDER BY seq", parameters)

    def experiment_summary(self, experiment: str, start_micros: int) -> list[tuple]:
        mark = self._placeholder
        return self._read(
            "SELECT experiment_variant, COUNT(*), COUNT(DISTINCT customer_id), "
            "SUM(CASE WHEN fallback THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN fallback_kind IN ({ERROR_KINDS_SQL}) THEN 1 ELSE 0 END) "
            f"FROM predictions WHERE experiment = {mark} AND served_at >= {mark} "
            "GROUP BY experiment_variant ORDER BY experiment_variant",
            (experiment, self._bound_time(start_micros)))

    def experiment_latencies(self, experiment: str, start_micros: int) -> list[tuple]:
        mark = self._placeholder
        return self._read(
            f"SELECT experiment_variant, {self._ceiling_ms}, COUNT(*) FROM predictions "
            f"WHERE experiment = {mark} AND served_at >= {mark} AND latency_ms IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY 1, 2", (experiment, self._bound_time(start_micros)))

    def max_seq(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM predictions")[0][0])


class SqlitePredictionStore(_SqlPredictionReads):
    """`predictions` in the SQLite event store file (WAL). Its own connection commits with
    `synchronous=NORMAL`: an answer's record may be lost with the last commits on a power
    cut (never the file), which a log of answers can afford and a busy event store likes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = connect_sqlite(self.path, synchronous="NORMAL")
        return self._connection

    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._connect().execute(sql, parameters).fetchall()

    def _write(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self._lock:
            connection = self._connect()
            before = connection.total_changes
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(sql, rows)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return connection.total_changes - before

    def initialize(self) -> None:
        with self._lock:
            connection = self._connect()
            connection.executescript(SQLITE_SCHEMA_SQL)
            add_missing_sqlite_columns(connection)

    def insert_predictions(self, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        values = ", ".join("?" * len(PREDICTION_COLUMNS))
        return self._write(f"INSERT OR IGNORE INTO predictions ({_INSERT_COLUMNS}) "
                           f"VALUES ({values})", rows)

    def delete_exported(self, up_to_seq: int, before_micros: int) -> int:
        return self._write("DELETE FROM predictions WHERE seq <= ? AND served_at < ?",
                           [(int(up_to_seq), int(before_micros))])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class PostgresPredictionStore(_SqlPredictionReads):
    """`predictions` in the PostgreSQL event store (autocommit connection, UTC session)."""

    _placeholder = "%s"
    _select = _SELECT_COLUMNS.replace("served_at", _POSTGRES_MICROS, 1)
    _ceiling_ms = "CAST(CEIL(latency_ms) AS BIGINT)"

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._connection: Any = None

    def _connect(self) -> Any:
        import psycopg

        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.url, autocommit=True)
            self._connection.execute("SET TIME ZONE 'UTC'")
        return self._connection

    def _bound_time(self, micros: int) -> Any:
        return micros_to_datetime(micros)

    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            with self._connect().cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetchall()

    def _transaction(self, statements: Sequence[tuple[str, Any]]) -> list[int]:
        """Run statements (parameters: a tuple, a list of tuples for executemany, or None)
        in one transaction; returns each one's row count."""
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

    def initialize(self) -> None:
        lock = ("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.tailor.init'))",
                None)
        self._transaction([lock, *((sql, None) for sql in POSTGRES_SCHEMA_SQL.split(";")
                                   if sql.strip())])

    def insert_predictions(self, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        values = ", ".join(["%s"] * len(PREDICTION_COLUMNS))
        timed = [(micros_to_datetime(row[0]), *row[1:]) for row in rows]
        counts = self._transaction([
            (_POSTGRES_SEQ_LOCK, None),  # held to commit: seqs become visible in order
            (f"INSERT INTO predictions ({_INSERT_COLUMNS}) VALUES ({values}) "
             "ON CONFLICT (request_id) DO NOTHING", timed)])
        return max(int(counts[1]), 0)

    def delete_exported(self, up_to_seq: int, before_micros: int) -> int:
        counts = self._transaction([("DELETE FROM predictions WHERE seq <= %s AND served_at < %s",
                                     (int(up_to_seq), micros_to_datetime(before_micros)))])
        return int(counts[0])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
