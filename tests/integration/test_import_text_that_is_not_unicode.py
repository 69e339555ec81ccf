"""File import of text no store can encode, on SQLite and PostgreSQL.

A Parquet file written by another tool can hold string values that are not valid UTF-8
(here the UTF-8 encoding of the lone surrogate U+D800, which a Python string would hold as
"\\ud800"). Before, pandas could not even convert such a batch; now the rows holding it are
refused alone (events: `malformed_row` naming the field, kept in the dead letter; products
and customers: skipped and named in a warning) and everything else is imported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tailor.events.store import open_event_store

NOW = pd.Timestamp("2026-03-01T12:00:00Z")
LONE_SURROGATE_BYTES = b"\xed\xa0\x80"  # what "\ud800" would be, were it allowed in UTF-8


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return request.getfixturevalue("postgres_url")


def text_column(values: list[bytes | None]) -> pa.Array:
    """A string column holding exactly these bytes, valid UTF-8 or not (as other tools write)."""
    return pa.array(values, type=pa.binary()).view(pa.string())


def write_files(folder: Path) -> dict[str, Path]:
    bad = b"c-" + LONE_SURROGATE_BYTES
    events = pa.table({
        "event_id": text_column([b"e1", b"e2", b"e3", b"e4"]),
        "customer_id": text_column([b"c1", bad, b"c3", b"c4"]),
        "event_type": ["page_view", "page_view", "search", "page_view"],
        "query": text_column([None, None, b"shirt " + LONE_SURROGATE_BYTES, None]),
        "timestamp": ["2026-02-01T10:00:00Z"] * 4,
    })
    products = pa.table({"product_id": text_column([b"p1", b"p2"]),
                         "name": text_column([b"Shoe", b"Hat " + LONE_SURROGATE_BYTES])})
    customers = pa.table({"customer_id": text_column([b"c1", b"c2"]),
                          "location": text_column([b"DE", b"FR"]),
                          "email": text_column([b"a@example.com",
                                                b"b" + LONE_SURROGATE_BYTES + b"@example.com"])})
    paths = {"events": folder / "events.parquet", "products": folder / "products.parquet",
             "customers": folder / "customers.parquet"}
    for name, table in (("events", events), ("products", products), ("customers", customers)):
        pq.write_table(table, paths[name])
    return paths


@pytest.mark.parametrize("chunk_rows", [2, 100], ids=["reader-process", "in-process"])
def test_invalid_utf8_in_a_parquet_file_refuses_only_its_rows(
        store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> None:
    from tailor.config import load_settings
    from tailor.events.ingest.job import ingest_files

    monkeypatch.delenv("TAILOR_PII_KEY", raising=False)
    settings = load_settings(home=tmp_path / "home", env={}).replace(
        database_url=store_url, pii_database_url=store_url, ingest_chunk_rows=chunk_rows)
    paths = write_files(tmp_path)
    report = ingest_files(settings, paths["events"], products_path=paths["products"],
                          customers_path=paths["customers"], now=NOW, progress=False)
    assert report.accepted == 2
    assert (report.products, report.customers) == (1, 1)
    assert any("product row(s) with text that is not valid UTF-8 in name (1)" in warning
               for warning in report.warnings), report.warnings
    assert any("customer row(s) with text that is not valid UTF-8 in email (1)" in warning
               for warning in report.warnings), report.warnings
    assert not any("example.com" in warning for warning in report.warnings)  # PII stays out
    store = open_event_store(store_url)
    try:
        assert sorted(store.events_after(0, 10)["event_id"]) == ["e1", "e4"]
        dead = store.rejected_rows().sort_values("row_number")
        assert dead["reason"].tolist() == ["malformed_row", "malformed_row"]
        assert dead["field"].tolist() == ["customer_id", "query"]
        assert dead["detail"].str.contains("lone surrogate").all()
        assert dead["raw"].str.contains("\\udced", regex=False).all()  # kept, escaped
        assert sorted(store.product_ids()) == ["p1"]
    finally:
        store.close()
