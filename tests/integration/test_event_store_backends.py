"""One behaviour suite for every EventStore backend: SQLite (a temp file) and PostgreSQL (a
fresh schema). Each protocol method is exercised against the real database."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from pathlib import Path

import pandas as pd
import pytest

from tailor.events.schema import EVENT_COLUMNS
from tailor.events.store import EventStore, IngestRun, open_event_store

NOW = pd.Timestamp("2026-03-01T12:00:00Z")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty store: a SQLite file in a not-yet-existing folder, or a fresh schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not' / 'yet' / 'events.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> EventStore:
    opened = open_event_store(store_url)
    yield opened
    opened.close()


def events(*rows: dict) -> pd.DataFrame:
    """Events in the store's input shape; each row names its event_id, customer and time."""
    frame = pd.DataFrame([{"event_type": "page_view", **row} for row in rows],
                         columns=None if rows else list(EVENT_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame


def simple(event_id: str, customer_id: str | None = "c1", at: str = "2026-02-01T10:00:00Z",
           **extra: object) -> dict:
    return {"event_id": event_id, "customer_id": customer_id, "timestamp": at, **extra}


def test_the_store_implements_the_protocol(store: EventStore) -> None:
    assert isinstance(store, EventStore)
    assert store.count_events() == 0 and store.max_seq() == 0
    assert store.latest_event_time() is None


def test_opening_twice_is_safe_and_both_see_committed_rows(store: EventStore,
                                                           store_url: str) -> None:
    second = open_event_store(store_url)  # initialize runs again on existing tables
    try:
        assert store.insert_events(events(simple("e1")), "b1") == 1
        assert second.count_events() == 1  # committed before insert_events returned
        assert second.insert_events(events(simple("e1"), simple("e2")), "b2") == 1
        assert store.count_events() == 2
    finally:
        second.close()


def test_duplicates_within_a_chunk_and_across_chunks_are_stored_once(store: EventStore) -> None:
    first = events(simple("e1"), simple("e2"), simple("e2"), simple("e3"))
    assert store.insert_events(first, "b1") == 3  # e2 repeated inside the chunk
    second = events(simple("e3"), simple("e4"), simple("e1"))
    assert store.insert_events(second, "b2") == 1  # only e4 is new
    assert store.count_events() == 4
    stored = store.events_after(0, 100)
    assert sorted(stored["event_id"]) == ["e1", "e2", "e3", "e4"]
    assert store.insert_events(events(), "b3") == 0


@pytest.mark.parametrize("array_insert_max_rows", [100, 2_000])
def test_a_large_chunk_whose_late_rows_are_stored_already_keeps_each_event_once(
        store: EventStore, monkeypatch: pytest.MonkeyPatch, array_insert_max_rows: int) -> None:
    # Statements of several rows (SQLite), COPY blocks or one insert from arrays (PostgreSQL,
    # by size) that meet a stored id only after earlier rows went through: each row once.
    monkeypatch.setattr("tailor.events.postgres_store.COPY_BLOCK_ROWS", 64)
    monkeypatch.setattr("tailor.events.postgres_store.ARRAY_INSERT_MAX_ROWS",
                        array_insert_max_rows)
    rows = [simple(f"e{number:04d}", at=f"2026-02-01T10:{number % 60:02d}:00Z")
            for number in range(1_000)]
    assert store.insert_events(events(*rows[990:], rows[5]), "b1") == 11
    assert store.insert_events(events(*rows, rows[7]), "b2") == 989  # rows[7] sent twice
    stored = store.events_after(0, 2_000)["event_id"]
    assert store.count_events() == 1_000 and sorted(stored) == [row["event_id"] for row in rows]


def test_seq_increases_and_events_after_pages_through_everything(store: EventStore) -> None:
    for batch in range(3):
        rows = [simple(f"e{batch}-{i}", at=f"2026-02-0{batch + 1}T10:{i:02d}:00Z")
                for i in range(9)]
        store.insert_events(events(*rows), f"b{batch}")
    pages, after = [], 0
    while True:
        page = store.events_after(after, 10)
        if page.empty:
            break
        pages.append(page)
        after = int(page["seq"].iloc[-1])
    assert [len(page) for page in pages] == [10, 10, 7]
    everything = pd.concat(pages, ignore_index=True)
    assert everything["seq"].is_monotonic_increasing and everything["seq"].is_unique
    assert everything["event_id"].tolist() == [f"e{b}-{i}" for b in range(3) for i in range(9)]
    assert store.max_seq() == int(everything["seq"].iloc[-1])
    assert list(everything.columns) == ["seq", *EVENT_COLUMNS, "received_at"]
    empty = store.events_after(store.max_seq(), 10)
    assert empty.empty and list(empty.columns) == list(everything.columns)


def test_a_deleted_seq_is_never_handed_out_again(store: EventStore) -> None:
    store.insert_events(events(simple("e1", "keep"), simple("e2", "leaver")), "b1")
    top = store.max_seq()
    assert store.delete_customer("leaver") == 1
    store.insert_events(events(simple("e3", "new")), "b2")
    newest = store.events_after(0, 10)
    assert int(newest["seq"].iloc[-1]) > top  # the export watermark cannot skip it


def test_timestamps_round_trip_as_tz_aware_utc(store: EventStore) -> None:
    frame = events(simple("e1", at="2026-02-01T10:00:00.123456+02:00"),
                   simple("e2", at="2026-02-01T23:59:59Z"))
    before = pd.Timestamp.now(tz="UTC")
    store.insert_events(frame, "b1")
    stored = store.events_after(0, 10)
    assert str(stored["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert stored["timestamp"].tolist() == [pd.Timestamp("2026-02-01T08:00:00.123456Z"),
                                            pd.Timestamp("2026-02-01T23:59:59Z")]
    assert str(stored["received_at"].dtype) == "datetime64[ns, UTC]"
    assert (stored["received_at"] >= before.floor("ms")).all()
    assert store.latest_event_time() == pd.Timestamp("2026-02-01T23:59:59Z")


def test_contract_values_round_trip(store: EventStore) -> None:
    row = simple("e1", event_type="purchase", product_id="p1", session_id="s1", price=9.5,
                 quantity=2.0, order_id="o1", device_type="mobile",
                 query='red "shoes", size 42\nwide', properties='{"coupon":"WINTER"}')
    store.insert_events(events(row, simple("e2")), "b1")
    stored = store.events_after(0, 10).set_index("event_id")
    first = stored.loc["e1"]
    assert first["query"] == 'red "shoes", size 42\nwide'
    assert json.loads(first["properties"]) == {"coupon": "WINTER"}
    assert (first["price"], first["quantity"], first["order_id"]) == (9.5, 2.0, "o1")
    second = stored.loc["e2"]
    assert second["product_id"] is None and pd.isna(second["price"]) and second["query"] is None


def test_dead_letter_keeps_raw_rows_verbatim(store: EventStore) -> None:
    raws = ['{"customer_id": "c9", "price": "abc"}', 'e3,c2,purchase,"unterminated\\N\tä€',
            "", None]
    rejected = pd.DataFrame({"row_number": [4, 7, 8, 9], "reason": ["malformed_row"] * 2
                             + ["missing_customer_id", "malformed_row"],
                             "field": ["price", "row", "customer_id", "row"],
                             "detail": ["price: not a number", "row: expected 5 fields, found 4",
                                        "customer_id: missing", "row: withheld"],
                             "raw": raws})
    store.insert_rejected(rejected, "b1", "events.csv")
    rows = store.rejected_rows(limit=10)
    assert rows["raw"].tolist()[::-1][:3] == raws[:3] and rows["raw"].tolist()[0] is None
    assert rows["row_number"].tolist() == [9, 8, 7, 4]  # newest first
    assert set(rows["source"]) == {"events.csv"} and set(rows["batch_id"]) == {"b1"}
    assert str(rows["received_at"].dtype) == "datetime64[ns, UTC]"
    assert store.rejected_rows("missing_customer_id")["row_number"].tolist() == [8]
    assert len(store.rejected_rows(limit=2)) == 2
    assert store.rejected_counts() == {"malformed_row": 3, "missing_customer_id": 1}
    assert store.rejected_counts(since=pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)) == {}
    store.insert_rejected(rejected.iloc[0:0], "b2", "events.csv")  # nothing to keep: no error


def test_ingest_runs_are_recorded_oldest_first(store: EventStore) -> None:
    early = IngestRun("b1", "a.csv", NOW - pd.Timedelta(hours=2), NOW - pd.Timedelta(hours=1),
                      received=10, accepted=7, duplicates=1, rejected={"malformed_row": 2})
    late = IngestRun("b2", "collector", NOW, NOW, received=3, accepted=3)
    store.record_ingest(late)
    store.record_ingest(early)
    runs = store.ingest_runs()
    assert runs["batch_id"].tolist() == ["b1", "b2"]
    assert runs["rejected"].tolist() == [{"malformed_row": 2}, {}]
    assert runs[["received", "accepted", "duplicates"]].iloc[0].tolist() == [10, 7, 1]
    assert runs["started_at"].iloc[0] == NOW - pd.Timedelta(hours=2)
    late.accepted, late.received = 5, 5  # the collector re-records its running batch
    store.record_ingest(late)
    runs = store.ingest_runs()
    assert len(runs) == 2 and runs["accepted"].tolist() == [7, 5]


def test_an_aborted_run_keeps_its_status_and_reason(store: EventStore) -> None:
    store.record_ingest(IngestRun("b1", "a.csv", NOW, NOW, received=4, accepted=4))
    store.record_ingest(IngestRun("b2", "b.csv", NOW, NOW + pd.Timedelta(seconds=1), received=2,
                                  accepted=2, status="aborted",
                                  abort_reason="StoreUnavailable: connection dropped"))
    runs = store.ingest_runs()
    assert runs[["status", "abort_reason"]].values.tolist() == [
        ["finished", ""], ["aborted", "StoreUnavailable: connection dropped"]]


def test_a_sqlite_store_from_before_the_status_column_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE ingest_runs (batch_id TEXT PRIMARY KEY, source TEXT "
                           "NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, "
                           "received INTEGER NOT NULL, accepted INTEGER NOT NULL, duplicates "
                           "INTEGER NOT NULL, rejected TEXT NOT NULL)")
        connection.execute("INSERT INTO ingest_runs VALUES ('old', 'a.csv', 0, 0, 3, 3, 0, '{}')")
    connection.close()
    store = open_event_store(f"sqlite:///{path}")
    try:
        assert store.ingest_runs()[["batch_id", "status", "abort_reason"]].values.tolist() == [
            ["old", "finished", ""]]
        store.record_ingest(IngestRun("new", "b.csv", NOW, NOW, status="aborted",
                                      abort_reason="interrupted"))
        assert store.ingest_runs()["status"].tolist() == ["finished", "aborted"]
    finally:
        store.close()
    assert open_event_store(f"sqlite:///{path}").ingest_runs()["status"].size == 2  # re-open


def test_products_upsert_keeps_extra_columns(store: EventStore) -> None:
    catalogue = pd.DataFrame({"product_id": ["p1", "p2"], "name": ["Shoe", "Hat"],
                              "category": ["shoes", "hats"], "price": ["19.90", "5"],
                              "rating": [4.5, None], "inventory": ["3", "0"],
                              "seasonal": ["true", "no"], "colour": ["red", None]})
    assert store.upsert_products(catalogue) == 2
    assert store.product_ids() == {"p1", "p2"}
    stored = store.products().set_index("product_id")
    assert stored.loc["p1", "price"] == 19.9 and stored.loc["p1", "inventory"] == 3
    assert bool(stored.loc["p1", "seasonal"]) is True
    assert bool(stored.loc["p2", "seasonal"]) is False
    assert json.loads(stored.loc["p1", "extra"]) == {"colour": "red"}
    assert pd.isna(stored.loc["p2", "rating"])
    store.upsert_products(pd.DataFrame({"product_id": ["p2", "p3"], "price": [6.0, 1.0]}))
    stored = store.products().set_index("product_id")
    assert sorted(stored.index) == ["p1", "p2", "p3"] and stored.loc["p2", "price"] == 6.0


def test_customers_take_no_pii(store: EventStore) -> None:
    customers = pd.DataFrame({"customer_id": ["c1", "c2", "c1"],
                              "signup_date": ["2025-05-01", None, "2025-06-01"],
                              "location": ["DE", "FR", "AT"],
                              "device_type": ["mobile", None, "desktop"],
                              "segment": ["a", "b", "c"]})
    assert store.upsert_customers(customers) == 2  # the last row for c1 wins
    stored = store.customers().set_index("customer_id")
    assert stored.loc["c1", "location"] == "AT"
    assert stored.loc["c1", "signup_date"] == pd.Timestamp("2025-06-01", tz="UTC")
    assert pd.isna(stored.loc["c2", "signup_date"])
    assert json.loads(stored.loc["c1", "extra"]) == {"segment": "c"}
    assert not {"email", "name"} & set(store.customers().columns)
    with pytest.raises(ValueError, match="email"):
        store.upsert_customers(customers.assign(email="a@example.com"))
    with pytest.raises(ValueError, match="Name"):
        store.upsert_customers(customers.assign(Name="Ann"))


def test_daily_counts_group_by_utc_day(store: EventStore) -> None:
    store.insert_events(events(simple("e1", at="2026-02-01T23:30:00-02:00"),  # 02-02 01:30 UTC
                               simple("e2", at="2026-02-01T23:30:00Z"),
                               simple("e3", at="2026-02-01T00:00:00Z"),
                               simple("e4", at="2026-02-03T12:00:00+05:00")), "b1")
    counts = store.daily_counts()
    assert counts["date"].tolist() == [dt.date(2026, 2, day) for day in (1, 2, 3)]
    assert counts["events"].tolist() == [2, 1, 1]


def test_stored_violations_count_rows_other_writers_let_through(store: EventStore) -> None:
    store.insert_events(events(simple("ok", price=3.0), simple("no-customer", None),
                               simple("free", price=0.0),
                               simple("future", at="2026-03-02T00:00:00Z"),
                               simple("blank", "  ")), "b1")
    assert store.stored_violations(NOW) == {"missing_customer_id": 2, "nonpositive_price": 1,
                                            "future_timestamp": 1}


def test_delete_customer_removes_their_events_dead_letters_and_row(store: EventStore) -> None:
    store.insert_events(events(simple("e1", "leaver"), simple("e2", "leaver"),
                               simple("e3", "stay")), "b1")
    store.upsert_customers(pd.DataFrame({"customer_id": ["leaver", "stay"]}))
    raws = ['{"customer_id": "leaver"}', '{"customer_id": "stay"}']
    store.insert_rejected(pd.DataFrame({"row_number": [1, 2], "reason": ["malformed_row"] * 2,
                                        "field": ["price"] * 2, "detail": ["x"] * 2, "raw": raws}),
                          "b1", "f.csv")
    assert store.delete_customer("leaver") == 2
    assert store.events_after(0, 10)["customer_id"].tolist() == ["stay"]
    assert store.customers()["customer_id"].tolist() == ["stay"]
    assert store.rejected_rows()["raw"].tolist() == ['{"customer_id": "stay"}']
    assert store.delete_customer("nobody") == 0


def test_forget_customer_counts_each_table_and_knows_the_sessions(store: EventStore) -> None:
    store.insert_events(events(simple("e1", "leaver", session_id="s1"),
                               simple("e2", "leaver", session_id="s2"),
                               simple("e3", "leaver", session_id="s1"),
                               simple("e4", "stay", session_id="s9")), "b1")
    store.upsert_customers(pd.DataFrame({"customer_id": ["leaver", "stay"]}))
    assert sorted(store.customer_sessions("leaver")) == ["s1", "s2"]
    assert store.forget_customer("leaver") == {"events": 3, "dead_letters": 0, "customers": 1,
                                               "predictions": 0}
    assert store.customer_sessions("leaver") == []
    assert store.forget_customer("leaver") == {"events": 0, "dead_letters": 0, "customers": 0,
                                               "predictions": 0}


def test_concurrent_writers_store_each_event_once(store_url: str) -> None:
    stores = [open_event_store(store_url) for _ in range(2)]
    inserted: list[int] = []

    def write(target: EventStore) -> None:
        for start in range(0, 200, 20):
            rows = [simple(f"e{i}", at="2026-02-01T10:00:00Z") for i in range(start, start + 20)]
            inserted.append(target.insert_events(events(*rows), "b"))

    threads = [threading.Thread(target=write, args=(target,)) for target in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(inserted) == 200 and stores[0].count_events() == 200
    for target in stores:
        target.close()


def test_sqlite_is_durable_on_commit(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "events.db"
    store = open_event_store(f"sqlite:///{path}")
    store.insert_events(events(simple("e1")), "b1")
    connection = sqlite3.connect(path)  # another connection, as a restarted process would open
    try:
        assert connection.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()
    synchronous = store._connect().execute("PRAGMA synchronous").fetchone()[0]  # noqa: SLF001
    assert synchronous == 2  # FULL: the WAL is synced at every commit
    store.close()


def import_settings(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    chunk_rows: int):
    """Settings that import files into `store_url` (events and the PII store), in small chunks."""
    from tailor.config import load_settings

    monkeypatch.delenv("TAILOR_PII_KEY", raising=False)
    return load_settings(home=tmp_path / "home", env={}).replace(
        database_url=store_url, pii_database_url=store_url, ingest_chunk_rows=chunk_rows)


def test_file_import_gives_the_same_counts_on_both_backends(
        store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tailor.events.ingest.job import ingest_files
    from tailor.events.pii import open_pii_store

    settings = import_settings(store_url, tmp_path, monkeypatch, chunk_rows=4)
    header = "event_id,customer_id,event_type,product_id,timestamp,price,query"
    rows = [f"e{i},c{i % 3},product_view,p1,2026-02-0{1 + i % 3}T10:00:00+01:00,{i + 1}.5,"
            for i in range(10)]
    rows[3] = "e3,c0,product_view"                                   # malformed line
    rows[6] = 'e6,c0,search,,2026-02-01T10:00:00Z,,"a ""quoted"", multi\nline query"'
    rows[8] = "e8,c2,purchase,p1,2026-02-01T10:00:00Z,-1,"          # nonpositive price
    (tmp_path / "events.csv").write_text("\n".join([header, *rows, rows[0]]) + "\n")
    (tmp_path / "customers.csv").write_text("customer_id,email,location\nc1,c1@example.com,DE\n")
    report = ingest_files(settings, tmp_path / "events.csv",
                          customers_path=tmp_path / "customers.csv", now=NOW, progress=False)
    assert report.to_dict()["accepted"] == 8 and report.duplicates == 1
    assert report.rejected == {"malformed_row": 1, "nonpositive_price": 1}
    store = open_event_store(store_url)
    stored = store.events_after(0, 100).set_index("event_id")
    assert stored.loc["e6", "query"] == 'a "quoted", multi\nline query'
    assert stored.loc["e1", "timestamp"] == pd.Timestamp("2026-02-02T09:00:00Z")
    assert store.customers()["customer_id"].tolist() == ["c1"]
    assert dict(zip(store.rejected_rows()["row_number"], store.rejected_rows()["reason"])) == {
        4: "malformed_row", 9: "nonpositive_price"}
    store.close()
    pii = open_pii_store(settings)
    assert pii.get("c1") == {"email": "c1@example.com"}
    pii.close()


def test_catalogue_and_customer_rows_with_a_nul_are_skipped_and_named(
        store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL text cannot hold NUL: such a row would fail its whole upsert."""
    from tailor.events.ingest.job import ingest_files

    settings = import_settings(store_url, tmp_path, monkeypatch, chunk_rows=2)
    pq_rows = pd.DataFrame({"product_id": ["p1", "p2\x00", "p3", "p4"],
                            "name": ["Shoe", "Hat", "Bag\x00x", "Cap"],
                            "category": ["shoes", "hats", "bags", "hats"],
                            "colour": ["red", "blue", "a\x00b", None]})  # extra: kept as JSON
    pq_rows.to_parquet(tmp_path / "products.parquet")
    pd.DataFrame({"customer_id": ["c1", "c2", "c3"], "location": ["DE", "F\x00R", "AT"],
                  "email": ["a@example.com", "b@example.com", "c\x00@example.com"]}
                 ).to_parquet(tmp_path / "customers.parquet")
    (tmp_path / "events.csv").write_text(
        "event_id,customer_id,event_type,product_id,timestamp\n"
        "e1,c1,product_view,p1,2026-02-01T10:00:00Z\n"
        "e2,c3,product_view,p4,2026-02-01T10:00:00Z\n")
    report = ingest_files(settings, tmp_path / "events.csv",
                          products_path=tmp_path / "products.parquet",
                          customers_path=tmp_path / "customers.parquet", now=NOW,
                          progress=False)
    assert report.accepted == 2 and (report.products, report.customers) == (2, 2)
    assert any("product row(s) with a NUL character in product_id (1), name (1)" in warning
               for warning in report.warnings), report.warnings
    assert any("customer row(s) with a NUL character in location (1)" in warning
               for warning in report.warnings), report.warnings
    assert not any("example.com" in warning for warning in report.warnings)
    store = open_event_store(store_url)
    assert sorted(store.product_ids()) == ["p1", "p4"]
    assert sorted(store.customers()["customer_id"]) == ["c1", "c3"]
    store.close()


def test_a_nul_character_is_rejected_and_the_rest_of_the_batch_is_stored(store: EventStore
                                                                         ) -> None:
    # PostgreSQL text cannot hold NUL: stored as is, the row would fail its batch at every retry.
    from tailor.events.records import validate_records

    now = pd.Timestamp("2026-02-01T12:00:00Z")
    batch = [{"event_id": "ok-1", "customer_id": "c1", "event_type": "search",
              "timestamp": "2026-02-01T10:00:00Z", "query": "linen shirt"},
             {"event_id": "bad-1", "customer_id": "c\x002", "event_type": "page_view",
              "timestamp": "2026-02-01T10:00:00Z"},
             {"event_id": "bad-2", "customer_id": "c3", "event_type": "search",
              "timestamp": "2026-02-01T10:00:00Z", "query": "linen\x00shirt"}]
    result = validate_records(batch, now=now)
    assert result.valid["event_id"].tolist() == ["ok-1"]
    assert result.rejected[["reason", "field"]].values.tolist() == [
        ["malformed_row", "customer_id"], ["malformed_row", "query"]]
    assert result.rejected["detail"].str.contains("NUL").all()
    assert store.insert_events(result.valid, "b-nul") == 1
    assert store.count_events() == 1
    store.insert_rejected(result.rejected, "b-nul", "collector")  # dead letters store too
    kept = store.rejected_rows(reason="malformed_row")
    assert len(kept) == 2 and kept["raw"].str.contains("u0000").all()
