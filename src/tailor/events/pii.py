"""The PII store: customers' e-mail, name and other identifying columns, encrypted at rest.

Reads and writes a database of its own, apart from the event store (`pii_store_url`:
a SQLite file, default `<home>/pii.db`, or PostgreSQL), with one table
`customer_pii (customer_id, payload)`. `payload` is a Fernet token (AES-128-CBC +
HMAC-SHA256) of the customer's PII columns as JSON, so the file holds no readable
e-mail or name. The key comes from `TAILOR_PII_KEY` or the key file `<home>/pii.key`
(created with mode 0600 on first use). Values never go to logs: messages name
columns and counts only.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from cryptography.fernet import Fernet, InvalidToken

from tailor.errors import InputError
from tailor.events.schema import PII_COLUMNS

log = logging.getLogger(__name__)

KEY_ENV = "TAILOR_PII_KEY"
KEY_FILE_NAME = "pii.key"
_TABLE_SQL = ("CREATE TABLE IF NOT EXISTS customer_pii ("
              "customer_id TEXT PRIMARY KEY, payload TEXT NOT NULL)")


class PiiKeyError(InputError):
    """The PII key is malformed, or does not decrypt what the store holds."""


def pii_columns(columns: Any) -> list[str]:
    """The columns (as named in the input) that are PII, matched case-insensitively."""
    return [name for name in columns if str(name).strip().lower() in PII_COLUMNS]


def load_pii_key(home: Path, env: Mapping[str, str] | None = None) -> bytes:
    """The Fernet key from `TAILOR_PII_KEY`, else from `<home>/pii.key` (created if absent).

    Args:
        home: the Tailor home folder (created if needed when the key file is made).
        env: environment to read (default `os.environ`).

    Returns:
        The key as url-safe base64 bytes.

    Raises:
        PiiKeyError: the key is not a valid Fernet key (the message names its source).
    """
    env = os.environ if env is None else env
    if env.get(KEY_ENV):
        return _checked_key(env[KEY_ENV].strip().encode(), KEY_ENV)
    path = Path(home).expanduser() / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    return _checked_key(path.read_bytes().strip(), str(path))


def _create_key_file(path: Path) -> None:
    """Write a new random key readable by the owner only (0600, set at creation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(Fernet.generate_key() + b"\n")
    log.info("created PII key file %s (mode 0600); back it up: without it PII is unreadable", path)


def _checked_key(key: bytes, source: str) -> bytes:
    """The key if Fernet accepts it."""
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise PiiKeyError(f"{source}: not a valid PII key (expected 32 url-safe base64-encoded "
                          "bytes, as Fernet.generate_key() makes)") from None
    return key


class PiiStore:
    """Encrypted PII per customer in a SQLite file or a PostgreSQL database."""

    def __init__(self, url: str, key: bytes) -> None:
        """Open the store a URL names (`sqlite:///path` or `postgresql://…`) with a Fernet key."""
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise InputError(f"pii_database_url: unsupported scheme in {url.split('://')[0]!r}; "
                             "use sqlite:/// or postgresql://")
        self.url = url
        self._fernet = Fernet(_checked_key(key, "PII key"))
        self._is_sqlite = url.startswith("sqlite:///")
        self._lock = threading.RLock()
        self._connection: Any = None

    def _connect(self) -> Any:
        """The open connection, with the table created on first use."""
        if self._connection is None:
            if self._is_sqlite:
                from tailor.events.store import connect_sqlite, sqlite_path

                connection: Any = connect_sqlite(sqlite_path(self.url))
                connection.execute(_TABLE_SQL)
            else:
                import psycopg

                connection = psycopg.connect(self.url, autocommit=True)
                connection.execute(_TABLE_SQL)
            self._connection = connection
        return self._connection

    def _placeholder(self, sql: str) -> str:
        """SQL with `?` placeholders turned into psycopg's `%s` for PostgreSQL."""
        return sql if self._is_sqlite else sql.replace("?", "%s")

    def upsert(self, frame: pd.DataFrame) -> int:
        """Store (replace) each customer's PII columns; returns customers written.

        Args:
            frame: `customer_id` plus PII columns; other columns are ignored. Missing
                values are left out of the stored record; rows without a customer_id
                are skipped.
        """
        columns = pii_columns(frame.columns)
        if "customer_id" not in frame.columns or not columns or frame.empty:
            return 0
        values = frame[columns].astype(object).where(frame[columns].notna(), None)
        rows = []
        for customer_id, record in zip(frame["customer_id"].tolist(), values.to_dict("records")):
            if customer_id is None or pd.isna(customer_id) or not str(customer_id).strip():
                continue
            plain = {str(k).strip().lower(): str(v) for k, v in record.items() if v is not None}
            token = self._fernet.encrypt(json.dumps(plain, sort_keys=True).encode()).decode()
            rows.append((str(customer_id).strip(), token))
        sql = self._placeholder(
            "INSERT INTO customer_pii (customer_id, payload) VALUES (?, ?) "
            "ON CONFLICT (customer_id) DO UPDATE SET payload = excluded.payload")
        with self._lock:
            connection = self._connect()
            if self._is_sqlite:
                with connection:  # one transaction
                    connection.execute("BEGIN")
                    connection.executemany(sql, rows)
            else:
                with connection.transaction(), connection.cursor() as cursor:
                    cursor.executemany(sql, rows)
        log.info("PII store: wrote %d customer record(s) (columns: %s)", len(rows),
                 ", ".join(columns))
        return len(rows)

    def get(self, customer_id: str) -> dict[str, str] | None:
        """The customer's PII as a dict (column → value), or None when none is stored.

        Raises:
            PiiKeyError: the stored record was encrypted with another key.
        """
        with self._lock:
            row = self._connect().execute(
                self._placeholder("SELECT payload FROM customer_pii WHERE customer_id = ?"),
                (customer_id,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(self._fernet.decrypt(row[0].encode()))
        except InvalidToken:
            raise PiiKeyError("PII store: the key does not decrypt the stored records "
                              f"({self.url}); use the key they were written with") from None

    def delete(self, customer_id: str) -> bool:
        """Erase the customer's PII; True when there was a record. On SQLite the record's
        bytes are overwritten (`secure_delete`) and the write-ahead log emptied, so the
        file keeps no copy of the (encrypted) record."""
        with self._lock:
            connection = self._connect()
            if self._is_sqlite:
                connection.execute("PRAGMA secure_delete=ON")
            cursor = connection.execute(
                self._placeholder("DELETE FROM customer_pii WHERE customer_id = ?"), (customer_id,))
            removed = cursor.rowcount > 0
            if self._is_sqlite:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return removed

    def count(self) -> int:
        """Number of customers with stored PII."""
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM customer_pii").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def open_pii_store(settings: Any) -> PiiStore:
    """The PII store the settings name, with the key from the environment or the home folder."""
    return PiiStore(settings.pii_store_url, load_pii_key(settings.home_path))
