"""The databases `tailor forget` cleans: event store, campaign mails, PII store, online
feature store and the DuckDB warehouse.

Reads and writes, for one customer id:
* the event store (`database_url`): events, dead letters, the customer row, and the
  customer's id and session cleared from the prediction log (`EventStore.forget_customer`);
* `campaign_sends` beside it: the customer's planned and sent mails;
* the PII store (`pii_database_url`): the encrypted record;
* the online store: the customer's Redis hash (Feast's key: serialized entity key + project)
  or the rows of every table of Feast's SQLite store (`<home>/feature_repo/data/online_store.db`);
* the warehouse file: its tables copied without the customer's rows into a new file that
  replaces it (a DELETE would leave the rows' bytes in free blocks of the old file), the lake
  views made again on the copy.
Each function returns counts per table; running it again finds nothing and returns zeros.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from typing import Any

from tailor.config import Settings

# Feast's SQLite online store (`tailor.features.repo.online_store_path`, whose module loads
# pandas and DuckDB: seconds a forget need not spend).
ONLINE_STORE_FILE = "feature_repo/data/online_store.db"
WAREHOUSE_RETRY_SECONDS = 30.0  # DuckDB allows one writer: wait this long for a busy file


def forget_in_event_store(settings: Settings, customer_id: str) -> dict[str, int]:
    """Events, dead letters, the customer row and the prediction log's ids."""
    from tailor.events.store import open_event_store

    store = open_event_store(settings.event_store_url)
    try:
        return store.forget_customer(customer_id)
    finally:
        store.close()


def forget_campaign_mails(settings: Settings, customer_id: str) -> dict[str, int]:
    """The customer's planned and sent campaign mails."""
    from tailor.events.campaign_store import open_campaign_store

    store = open_campaign_store(settings.event_store_url)
    try:
        return {"mails": store.delete_customer(customer_id)}
    finally:
        store.close()


def pii_values(settings: Settings, customer_id: str) -> list[str]:
    """The customer's PII values (e-mail, name, ...), to search the files for; empty when
    the PII store holds none."""
    from tailor.events.pii import open_pii_store

    store = open_pii_store(settings)
    try:
        record = store.get(customer_id) or {}
    finally:
        store.close()
    return sorted({value.strip() for value in record.values() if len(value.strip()) >= 3})


def forget_pii(settings: Settings, customer_id: str) -> dict[str, int]:
    """The encrypted PII record."""
    from tailor.events.pii import open_pii_store

    store = open_pii_store(settings)
    try:
        return {"records": int(store.delete(customer_id))}
    finally:
        store.close()


def forget_online_features(settings: Settings, customer_id: str) -> dict[str, int]:
    """The customer's online features: the Redis hash, or the SQLite online store's rows."""
    from tailor.features.entity_keys import redis_entity_key, serialized_string_key

    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        try:
            key = redis_entity_key("customer_id", customer_id, settings.features_project)
            removed: Any = client.delete(key)  # the sync client: an int
            return {"redis_keys": int(removed)}
        finally:
            client.close()
    path = settings.home_path / ONLINE_STORE_FILE
    if not path.exists():
        return {"sqlite_rows": 0}
    return {"sqlite_rows": _delete_sqlite_entity(
        str(path), serialized_string_key("customer_id", customer_id))}


def _delete_sqlite_entity(path: str, entity_key: bytes) -> int:
    """Rows of one entity key in every table of Feast's SQLite online store, bytes overwritten."""
    with contextlib.closing(sqlite3.connect(path, timeout=60.0, isolation_level=None)) as db:
        db.execute("PRAGMA secure_delete=ON")
        tables = [row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        removed = 0
        for table in tables:
            columns = {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}
            if "entity_key" in columns:
                removed += db.execute(f'DELETE FROM "{table}" WHERE entity_key = ?',
                                      (entity_key,)).rowcount
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return removed


def forget_in_warehouse(settings: Settings, customer_id: str) -> dict[str, int]:
    """The warehouse's tables without the customer, in a new file that replaces the old.

    Views over the lake need nothing: the lake step rewrote the files they read.

    Returns:
        Rows removed per table that has a `customer_id` column.
    """
    import duckdb

    path = settings.warehouse_file
    if not path.exists():
        return {}
    return wait_for(lambda: _rebuild_without(duckdb, path, customer_id, settings.lake_root),
                    (duckdb.IOException,))


def _rebuild_without(duckdb: Any, path: Any, customer_id: str, lake_root: str) -> dict[str, int]:
    """Copy the warehouse at `path` without the customer and rename the copy over it.

    Raises:
        duckdb.IOException: another process holds the file for writing (tried again).
    """
    from tailor.warehouse.duckdb_warehouse import attach_lake, create_lake_views

    fresh = path.with_name(f".{path.name}.forget-tmp")
    fresh.unlink(missing_ok=True)
    connection = duckdb.connect(str(fresh))
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute(f"ATTACH '{_quoted(path)}' AS old (READ_ONLY)")
        counts = _copy_tables(connection, customer_id)
        connection.execute("DETACH old")
        attach_lake(connection, lake_root)
        create_lake_views(connection, lake_root)
        connection.execute("CHECKPOINT")
    except BaseException:
        connection.close()
        fresh.unlink(missing_ok=True)
        raise
    connection.close()
    os.replace(fresh, path)
    return counts


def _quoted(path: Any) -> str:
    return str(path).replace("'", "''")


def _copy_tables(connection: Any, customer_id: str) -> dict[str, int]:
    """Copy every base table of `old` into the new file, without the customer's rows."""
    tables = [row[0] for row in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'old' "
        "AND table_type = 'BASE TABLE'").fetchall()]
    counts = {}
    for table in tables:
        columns = {row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'old' "
            "AND table_name = ?", [table]).fetchall()}
        before = connection.execute(f'SELECT count(*) FROM old."{table}"').fetchone()[0]
        if "customer_id" in columns:
            connection.execute(f'CREATE TABLE "{table}" AS SELECT * FROM old."{table}" '
                               "WHERE customer_id IS DISTINCT FROM ?", [customer_id])
            after = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            counts[table] = int(before - after)
        else:
            connection.execute(f'CREATE TABLE "{table}" AS SELECT * FROM old."{table}"')
    return counts


def wait_for(action: Any, retry_on: tuple[type[BaseException], ...],
             seconds: float = WAREHOUSE_RETRY_SECONDS) -> Any:
    """`action()`, tried again every half second while it raises one of `retry_on`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except retry_on:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
