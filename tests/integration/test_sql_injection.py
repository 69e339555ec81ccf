"""SQL-injection strings in every id and text field, through every store: file import and the
collector into the event store (SQLite and PostgreSQL) and the PII store, the lake export
and the DuckDB warehouse reads, deleting a customer, and `tailor forget` of one. Each string
is stored literally (it reads back the same everywhere) or refused as a malformed row; none
is ever executed: the tables are intact, the canary tables the strings try to create do not
exist, and the file a `COPY ... TO PROGRAM` would make is not there."""

from __future__ import annotations

import json
import sqlite3
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

with warnings.catch_warnings():  # Starlette suggests httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from tailor.config import Settings, load_settings
from tailor.events.collector.app import create_collector_app
from tailor.events.ingest.job import ingest_files
from tailor.events.keys import create_key, keys_file_path
from tailor.events.lake import export_lake
from tailor.events.pii import PiiStore, load_pii_key
from tailor.events.store import open_event_store
from tailor.warehouse.duckdb_warehouse import query_warehouse, refresh_warehouse

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

CANARY = "pwned_canary"


def injections(marker: Path) -> list[str]:
    """Strings that would do harm if any store formatted them into SQL."""
    return [
        f"x'); CREATE TABLE {CANARY}(x int); --",
        f"'; DROP TABLE events; CREATE TABLE {CANARY}(x int); --",
        "\" OR 1=1 --",
        "' OR '1'='1",
        "1; DELETE FROM events; --",
        "' UNION SELECT customer_id FROM customer_pii --",
        f"'; COPY (SELECT 1) TO PROGRAM 'touch {marker}'; --",
        "Robert'); DROP TABLE customer_pii;--",
        "%' OR '%'='",
        "\\'; DROP TABLE products; --",
        "$1 ? :name %s {0}",
        "NULL",
        "/* comment */ SELECT",
        "'; ATTACH DATABASE '/tmp/x.db' AS x; --",
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tailor_home: Path) -> Settings:
    base = load_settings(home=tailor_home, env={})
    if request.param == "sqlite":
        return base
    url = request.getfixturevalue("postgres_url")
    return base.replace(database_url=url, pii_database_url=url)


def _write_files(folder: Path, texts: list[str]) -> dict[str, Path]:
    """Products, customers and events whose every id and text field is an injection."""
    now = datetime.now(timezone.utc) - timedelta(hours=1)
    folder.mkdir(parents=True, exist_ok=True)
    products = pd.DataFrame({"product_id": texts, "name": texts, "category": texts,
                             "price": 9.5, "rating": 4.0, "inventory": 3, "seasonal": False})
    customers = pd.DataFrame({"customer_id": texts, "signup_date": "2025-01-01",
                              "location": texts, "device_type": "mobile",
                              "email": [f"{number}@x.example" for number in range(len(texts))],
                              "name": texts})
    events = pd.DataFrame({
        "event_id": [f"imp-{text}" for text in texts], "customer_id": texts,
        "event_type": "purchase", "product_id": texts,
        "timestamp": [(now - timedelta(minutes=number)).isoformat()
                      for number in range(len(texts))],
        "session_id": texts, "price": 9.5, "quantity": 1, "order_id": texts,
        "device_type": texts, "query": texts,
        "properties": [json.dumps({text: text}) for text in texts]})
    paths = {"products": folder / "products.csv", "customers": folder / "customers.csv",
             "events": folder / "events.csv"}
    products.to_csv(paths["products"], index=False)
    customers.to_csv(paths["customers"], index=False)
    events.to_csv(paths["events"], index=False)
    return paths


def _collector_batch(texts: list[str]) -> list[dict]:
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    return [{"event_id": f"col-{text}", "customer_id": text, "event_type": "search",
             "timestamp": now.isoformat(), "session_id": text, "query": text,
             "order_id": text, "device_type": text, "properties": {text: [text]}}
            for text in texts]


def _tables_intact(settings: Settings) -> None:
    """The canary was never created in either store, and the event tables still answer."""
    url = settings.event_store_url
    if url.startswith("sqlite"):
        for path in (settings.home_path / "events.db", settings.home_path / "pii.db"):
            with sqlite3.connect(path) as connection:
                names = {row[0] for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert CANARY not in names, path
    else:
        import psycopg

        with psycopg.connect(url) as connection:
            found = connection.execute("SELECT to_regclass(%s)", (CANARY,)).fetchone()[0]
            assert found is None
            assert connection.execute("SELECT to_regclass('events')").fetchone()[0] is not None


def test_injection_strings_are_stored_literally_everywhere(settings: Settings,
                                                           tmp_path: Path) -> None:
    marker = tmp_path / "program-ran"
    texts = injections(marker)
    paths = _write_files(tmp_path / "files", texts)
    report = ingest_files(settings, paths["events"], products_path=paths["products"],
                          customers_path=paths["customers"], progress=False)
    assert report.accepted == len(texts) and not report.rejected, report.rejected

    key = create_key("secret", keys_file_path(settings), "injection test")
    with TestClient(create_collector_app(settings)) as client:
        answer = client.post("/v1/events", json={"events": _collector_batch(texts)},
                             headers={"X-Tailor-Key": key})
    assert answer.status_code == 200 and answer.json()["accepted"] == len(texts), answer.text

    store = open_event_store(settings.event_store_url)
    try:
        assert store.count_events() == 2 * len(texts)
        stored = store.events_after(0, 10_000)
        for column in ("customer_id", "session_id", "order_id", "device_type", "query"):
            assert set(stored[column]) == set(texts), column
        assert set(stored["product_id"].dropna()) == set(texts)
        assert set(stored["event_id"]) == {f"{side}-{text}" for side in ("imp", "col")
                                           for text in texts}
        assert store.product_ids() == set(texts)
        assert set(store.customers()["customer_id"]) == set(texts)
        pii = PiiStore(settings.pii_store_url, load_pii_key(settings.home_path))
        for number, text in enumerate(texts):
            assert pii.get(text)["email"] == f"{number}@x.example"
        _tables_intact(settings)

        export_lake(settings, progress=False)
        refresh_warehouse(settings)
        read = query_warehouse(settings, "SELECT customer_id, query, order_id FROM events")
        assert set(read["customer_id"]) == set(texts) and set(read["query"]) == set(texts)
        for text in texts:  # a parameterized read finds exactly that customer's two events
            found = query_warehouse(settings, "SELECT count(*) AS n FROM events "
                                              "WHERE customer_id = ?", [text])
            assert int(found["n"].iloc[0]) == 2, text

        # Deleting one injection-named customer removes that customer only.
        victim = texts[4]  # "1; DELETE FROM events; --"
        assert store.delete_customer(victim) == 2
        assert pii.delete(victim) and pii.get(victim) is None
        assert store.count_events() == 2 * len(texts) - 2
        assert pii.get(texts[0]) is not None
        pii.close()
    finally:
        store.close()
    _tables_intact(settings)
    assert not marker.exists(), "an injected COPY ... TO PROGRAM ran"

    # `tailor forget` of another injection-named customer (every store: event store, lake,
    # warehouse copy, PII, files) removes that customer only, and runs none of the strings.
    from tailor.privacy.forget import forget_customer

    victim, deleted = texts[1], texts[4]  # "'; DROP TABLE events; CREATE TABLE pwned_canary…"
    result = forget_customer(settings, victim)
    assert result.complete and result.removed["event_store"]["events"] == 2, result.removed
    assert result.removed["lake"]["events"] == 2 and result.removed["pii_store"] == {"records": 1}
    store = open_event_store(settings.event_store_url)
    pii = PiiStore(settings.pii_store_url, load_pii_key(settings.home_path))
    try:
        assert store.count_events() == 2 * len(texts) - 4
        assert set(store.customers()["customer_id"]) == set(texts) - {victim, deleted}
        assert pii.get(victim) is None and pii.get(texts[0])["email"] == "0@x.example"
    finally:
        store.close()
        pii.close()
    for text in texts:  # the lake still holds the customer only deleted from the store
        found = query_warehouse(settings, "SELECT count(*) AS n FROM events "
                                          "WHERE customer_id = ?", [text])
        assert int(found["n"].iloc[0]) == (0 if text == victim else 2), text
    _tables_intact(settings)
    assert not marker.exists(), "an injected COPY ... TO PROGRAM ran"
