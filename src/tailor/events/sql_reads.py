"""The read methods the SQLite and PostgreSQL event stores share.

Reads the tables `events`, `rejected_events`, `ingest_runs`, `products` and `customers`
through the store's own `_read`; writes nothing. The queries are the same in both SQL
dialects but for what each store sets as class attributes: its parameter placeholder,
the select lists that bring times out as epoch microseconds, the tie-break of the
ingest-run order and how a time is bound as a query parameter. Reads whose SQL really
differs (`daily_counts`, `stored_violations`) stay in the stores.
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from tailor.events.frames import (
    customers_frame,
    events_frame,
    ingest_runs_frame,
    products_frame,
    rejected_frame,
)
from tailor.events.schema import EVENT_COLUMNS, PRODUCT_COLUMNS

_PRODUCT_SELECT = ", ".join(PRODUCT_COLUMNS + ("extra",))


class SqlEventReads:
    """Mixin: the `EventStore` reads whose SQL both backends share.

    A store using it provides `_read(sql, parameters=()) -> list[tuple]` and sets the
    class attributes below.
    """

    # The DB-API parameter placeholder: `?` (sqlite3) or `%s` (psycopg).
    _placeholder: str
    # Select lists: `seq`, `EVENT_COLUMNS`, `received_at` (times as epoch microseconds).
    _event_select: str
    # The newest event time as epoch microseconds (NULL when empty).
    _latest_event_micros: str
    # `REJECTED_COLUMNS`, `INGEST_RUN_COLUMNS` and `CUSTOMER_COLUMNS` plus `extra`.
    _rejected_select: str
    _ingest_run_select: str
    _customer_select: str
    # What orders two ingest runs that started at the same time.
    _ingest_run_tiebreak: str
    # A timestamp (naive means UTC) as the query parameter its column compares with.
    _bound_time: Callable[[pd.Timestamp], Any]
    _read: Callable[..., list[tuple]]

    def events_after(self, seq: int, limit: int) -> pd.DataFrame:
        """Up to `limit` events with `seq` above the given one, in seq order."""
        mark = self._placeholder
        rows = self._read(f"SELECT {self._event_select} FROM events WHERE seq > {mark} "
                          f"ORDER BY seq LIMIT {mark}", (int(seq), int(limit)))
        return events_frame(rows, ["seq", *EVENT_COLUMNS, "received_at"])

    def max_seq(self) -> int:
        """The highest seq of a stored event (0 when empty)."""
        return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    def count_events(self) -> int:
        """Number of stored events."""
        return int(self._read("SELECT COUNT(*) FROM events")[0][0])

    def count_older_than(self, cutoff: pd.Timestamp) -> dict[str, int]:
        """Rows the retention job would delete: `events` whose timestamp is before `cutoff`,
        `dead_letters` (rejected rows) received before it."""
        bound, mark = self._bound_time(cutoff), self._placeholder
        events = self._read(f'SELECT COUNT(*) FROM events WHERE "timestamp" < {mark}', (bound,))
        dead = self._read(f"SELECT COUNT(*) FROM rejected_events WHERE received_at < {mark}",
                          (bound,))
        return {"events": int(events[0][0]), "dead_letters": int(dead[0][0])}

    def latest_event_time(self) -> pd.Timestamp | None:
        """Timestamp of the newest event, or None when empty."""
        value = self._read(f"SELECT {self._latest_event_micros} FROM events")[0][0]
        return None if value is None else pd.Timestamp(int(value), unit="us", tz="UTC")

    def rejected_counts(self, since: pd.Timestamp | None = None) -> dict[str, int]:
        """Dead-letter rows per reason, optionally only those received at or after `since`."""
        if since is None:
            rows = self._read("SELECT reason, COUNT(*) FROM rejected_events GROUP BY reason")
        else:
            rows = self._read("SELECT reason, COUNT(*) FROM rejected_events "
                              f"WHERE received_at >= {self._placeholder} GROUP BY reason",
                              (self._bound_time(since),))
        return {reason: int(count) for reason, count in rows}

    def rejected_rows(self, reason: str | None = None, limit: int = 100) -> pd.DataFrame:
        """The newest dead-letter rows (newest first), optionally of one reason."""
        mark, columns = self._placeholder, self._rejected_select
        if reason is None:
            rows = self._read(f"SELECT {columns} FROM rejected_events ORDER BY id DESC "
                              f"LIMIT {mark}", (int(limit),))
        else:
            rows = self._read(f"SELECT {columns} FROM rejected_events WHERE reason = {mark} "
                              f"ORDER BY id DESC LIMIT {mark}", (reason, int(limit)))
        return rejected_frame(rows)

    def ingest_runs(self) -> pd.DataFrame:
        """All ingest runs, oldest first, with `rejected` as a dict per row."""
        rows = self._read(f"SELECT {self._ingest_run_select} FROM ingest_runs "
                          f"ORDER BY started_at, {self._ingest_run_tiebreak}")
        return ingest_runs_frame(rows)

    def batch_events_after(self, batch_id: str, seq: int) -> int:
        """Events of `batch_id` stored with a seq above `seq` (a range of the primary key)."""
        mark = self._placeholder
        return int(self._read(f"SELECT COUNT(*) FROM events WHERE seq > {mark} "
                              f"AND batch_id = {mark}", (int(seq), batch_id))[0][0])

    def batch_rejected(self, batch_id: str) -> int:
        """Dead-letter rows of `batch_id`."""
        return int(self._read("SELECT COUNT(*) FROM rejected_events WHERE batch_id = "
                              f"{self._placeholder}", (batch_id,))[0][0])

    def product_ids(self) -> set[str]:
        """Ids of every product in the catalogue."""
        return {row[0] for row in self._read("SELECT product_id FROM products")}

    def products(self) -> pd.DataFrame:
        """The catalogue: `PRODUCT_COLUMNS` plus `extra` (JSON text of the other columns)."""
        return products_frame(self._read(f"SELECT {_PRODUCT_SELECT} FROM products "
                                         "ORDER BY product_id"))

    def customers(self) -> pd.DataFrame:
        """Pseudonymous customers: `CUSTOMER_COLUMNS` plus `extra`; signup_date tz-aware UTC."""
        return customers_frame(self._read(f"SELECT {self._customer_select} FROM customers "
                                          "ORDER BY customer_id"))
