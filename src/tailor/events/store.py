"""The event store interface and the factory that picks its backend from a URL.

`EventStore` is what every job talks to; `SqliteEventStore` (the embedded default)
and `PostgresEventStore` implement it, and one test suite runs against both.
Frames crossing this interface use the column names of `tailor.events.schema`;
timestamps are always timezone-aware UTC.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tailor.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

RUN_FINISHED = "finished"  # `ingest_runs.status`: every row of the source was read and stored
RUN_ABORTED = "aborted"    # the run stopped early (`abort_reason` says why); re-run to complete


class StoreUnavailable(ConnectionError):
    """The event store's server could not be reached, or dropped the connection, even after
    the retries; the message says what failed and what was kept."""


def connection_lost(error: BaseException) -> bool:
    """Whether `error` means the store's server went away (a retry on a new connection may
    succeed), as opposed to a problem with the data or the SQL.

    PostgreSQL: psycopg's `OperationalError` and its subclasses (a terminated backend is
    `AdminShutdown`, a closed socket a plain `OperationalError`) and `InterfaceError` (the
    connection object was already closed).
    """
    if isinstance(error, StoreUnavailable):
        return False  # retries were spent already
    if isinstance(error, ConnectionError):
        return True
    for kind in type(error).__mro__:
        if kind.__module__.startswith("psycopg") and kind.__name__ in {"OperationalError",
                                                                      "InterfaceError"}:
            return True
    return False


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite:///path` URL (`:memory:` allowed); query strings dropped.

    Raises:
        InputError: the URL is not a sqlite:/// URL or names no file.
    """
    if not url.startswith("sqlite:///"):
        raise InputError(f"not a SQLite URL (expected sqlite:///path): {url!r}")
    path = url[len("sqlite:///"):].split("?", 1)[0]
    if not path:
        raise InputError(f"SQLite URL names no file: {url!r}")
    return path


SQLITE_BUSY_SECONDS = 60.0  # how long a writer waits for another's lock before failing


def connect_sqlite(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection to the SQLite file at `path` (its folder created), in WAL mode with
    explicit transactions (`isolation_level=None`: BEGIN IMMEDIATE … COMMIT) and a busy
    timeout, usable from the thread pool of a server.

    Switching a file to WAL needs the file to itself for a moment, and SQLite answers
    "database is locked" at once (without its busy handler) while another connection opens
    the same new file: several server workers starting together do. The switch is retried
    until `SQLITE_BUSY_SECONDS` have passed.
    """
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, timeout=SQLITE_BUSY_SECONDS,
                                 check_same_thread=False)
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                connection.close()
                raise
            time.sleep(0.05)
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    return connection


@dataclass
class IngestRun:
    """What one ingest (file import or collector batch) did, as stored in `ingest_runs`."""

    batch_id: str
    source: str
    started_at: "pd.Timestamp"
    finished_at: "pd.Timestamp"
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    status: str = RUN_FINISHED  # or RUN_ABORTED
    abort_reason: str = ""  # why an aborted run stopped (the error, one line)


@runtime_checkable
class EventStore(Protocol):
    """Transactional store of events, the dead-letter table, products and pseudonymous customers.

    Events are keyed by `event_id`: writing an id that is already stored changes
    nothing and is counted as a duplicate. Each stored event gets an increasing
    `seq` (the lake export's watermark) and a `received_at` time.
    """

    url: str

    def initialize(self) -> None:
        """Create the tables and indexes if they do not exist (idempotent)."""

    def insert_events(self, events: "pd.DataFrame", batch_id: str) -> int:
        """Store valid events (columns `EVENT_COLUMNS`); returns how many were new.

        The write is committed before this returns: an acknowledged event is durable.
        """

    def insert_rejected(self, rejected: "pd.DataFrame", batch_id: str, source: str) -> None:
        """Keep rejected rows (`row_number, reason, field, detail, raw`) in the dead-letter table."""

    def record_ingest(self, run: IngestRun) -> None:
        """Record the counts and status of one ingest run (replacing a row of its batch id)."""

    def ingest_runs(self) -> "pd.DataFrame":
        """All ingest runs, oldest first, with `rejected` as a dict per row, `status` and
        `abort_reason`."""

    def batch_events_after(self, batch_id: str, seq: int) -> int:
        """Events of `batch_id` stored with a seq above `seq` (what a write whose outcome
        was lost with the connection did store)."""

    def batch_rejected(self, batch_id: str) -> int:
        """Dead-letter rows of `batch_id`."""

    def rejected_counts(self, since: "pd.Timestamp | None" = None) -> dict[str, int]:
        """Dead-letter rows per reason, optionally only those received since a time."""

    def rejected_rows(self, reason: str | None = None, limit: int = 100) -> "pd.DataFrame":
        """The newest dead-letter rows, optionally of one reason."""

    def upsert_products(self, products: "pd.DataFrame") -> int:
        """Insert or replace catalogue rows (columns `PRODUCT_COLUMNS`, extras kept as JSON)."""

    def upsert_customers(self, customers: "pd.DataFrame") -> int:
        """Insert or replace pseudonymous customer rows; PII columns must already be removed."""

    def product_ids(self) -> set[str]:
        """Ids of every product in the catalogue."""

    def products(self) -> "pd.DataFrame":
        """The catalogue."""

    def customers(self) -> "pd.DataFrame":
        """Pseudonymous customers (no PII)."""

    def events_after(self, seq: int, limit: int) -> "pd.DataFrame":
        """Up to `limit` events with `seq > seq`, in seq order, with `seq` and `received_at`."""

    def max_seq(self) -> int:
        """The highest stored seq (0 when empty)."""

    def count_events(self) -> int:
        """Number of stored events."""

    def daily_counts(self) -> "pd.DataFrame":
        """Events per UTC day of their timestamp: columns `date` (datetime.date), `events`."""

    def latest_event_time(self) -> "pd.Timestamp | None":
        """Timestamp of the newest event, or None when empty."""

    def stored_violations(self, now: "pd.Timestamp") -> dict[str, int]:
        """Rule checks on what is already stored (defence against other writers):
        `missing_customer_id`, `nonpositive_price`, `future_timestamp`."""

    def delete_customer(self, customer_id: str) -> int:
        """Remove a customer's events and customer row; returns events removed."""

    def forget_customer(self, customer_id: str) -> dict[str, int]:
        """`delete_customer` with a count per table (events, dead_letters, customers,
        predictions: ids cleared), the rows' bytes overwritten where the backend allows."""

    def customer_sessions(self, customer_id: str) -> list[str]:
        """The distinct session ids of a customer's events."""

    def count_older_than(self, cutoff: "pd.Timestamp") -> dict[str, int]:
        """What retention would delete: `events` timestamped before `cutoff`, `dead_letters`
        received before it."""

    def delete_older_than(self, cutoff: "pd.Timestamp", batch_rows: int = ...) -> dict[str, int]:
        """Delete what `count_older_than` counts, in batches; returns rows deleted."""

    def close(self) -> None:
        """Release connections."""


def open_event_store(url: str) -> EventStore:
    """Open (and initialise) the event store a URL names.

    Args:
        url: `sqlite:///path/to/events.db` or `postgresql://user@host:port/db`
            (a `?options=-csearch_path%3Dschema` query selects a schema).

    Returns:
        An initialised `EventStore`.

    Raises:
        InputError: the URL's scheme is not supported.
    """
    if url.startswith("sqlite:///"):
        from tailor.events.sqlite_store import SqliteEventStore

        store: EventStore = SqliteEventStore(url)
    elif url.startswith(("postgresql://", "postgres://")):
        from tailor.events.postgres_store import PostgresEventStore

        store = PostgresEventStore(url)
    else:
        raise InputError(f"database_url: unsupported scheme in {url.split('://')[0]!r}; "
                         "use sqlite:/// or postgresql://")
    store.initialize()
    return store
