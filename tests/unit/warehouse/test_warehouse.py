"""The DuckDB warehouse over the lake: views and derived tables against hand-computed values,
an empty lake, read-only queries, and a non-local (memory://) lake."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from tailor.config import Settings, load_settings
from tailor.events.lake import export_lake
from tailor.events.schema import validate_events
from tailor.events.store import EventStore, IngestRun, open_event_store
from tailor.warehouse import open_warehouse, query_warehouse, refresh_warehouse

NOW = pd.Timestamp("2026-03-01T12:00:00Z")


def event(event_id: str, customer_id: str, event_type: str, timestamp: str,
          **extra: object) -> dict:
    return {"event_id": event_id, "customer_id": customer_id, "event_type": event_type,
            "timestamp": timestamp, **extra}


# Orders: o1 has two lines (2 x 10.0 and 1 x 5.0 with no quantity) -> revenue 25, 3 items;
# o2 one line 3 x 4.0 -> 12. Customer c3 buys twice in session s9 without order ids -> one
# derived order (7.5 + 2.5); c4 buys without order or session ids twice on Feb 10 and once
# on Feb 11 -> two derived orders by day.
PURCHASES = [
    event("o1a", "c1", "purchase", "2026-02-10T09:00:00Z", product_id="p1", price=10.0,
          quantity=2, order_id="o1", session_id="s1"),
    event("o1b", "c1", "purchase", "2026-02-10T09:00:05Z", product_id="p2", price=5.0,
          order_id="o1", session_id="s1"),
    event("o2a", "c2", "purchase", "2026-02-10T11:00:00Z", product_id="p1", price=4.0,
          quantity=3, order_id="o2", session_id="s2"),
    event("d1", "c3", "purchase", "2026-02-10T12:00:00Z", product_id="p1", price=7.5,
          session_id="s9"),
    event("d2", "c3", "purchase", "2026-02-10T12:01:00Z", product_id="p1", price=2.5,
          session_id="s9"),
    event("d3", "c4", "purchase", "2026-02-10T08:00:00Z", product_id="p2", price=1.0),
    event("d4", "c4", "purchase", "2026-02-10T20:00:00Z", product_id="p3", price=2.0,
          quantity=2),
    event("d5", "c4", "purchase", "2026-02-11T08:00:00Z", product_id="p3", price=3.0),
]
# Sessions with ids: s1 (c1) = a view, a search, add to cart, checkout, then the two o1 lines.
BROWSING = [
    event("s1a", "c1", "product_view", "2026-02-10T08:50:00Z", product_id="p1",
          session_id="s1", device_type="mobile"),
    event("s1b", "c1", "search", "2026-02-10T08:52:00Z", session_id="s1", query="red shoes"),
    event("s1c", "c1", "add_to_cart", "2026-02-10T08:55:00Z", product_id="p1", session_id="s1"),
    event("s1d", "c1", "checkout_start", "2026-02-10T08:58:00Z", session_id="s1"),
    # c5 sends no session ids: 10:00, 10:10, 10:40 (30 min gap: same session), 11:15 (35 min:
    # a new one), 11:20.
    event("n1", "c5", "page_view", "2026-02-12T10:00:00Z", device_type="desktop"),
    event("n2", "c5", "product_view", "2026-02-12T10:10:00Z", product_id="p2"),
    event("n3", "c5", "search", "2026-02-12T10:40:00Z"),
    event("n4", "c5", "product_view", "2026-02-12T11:15:00Z", product_id="p3",
          device_type="tablet"),
    event("n5", "c5", "add_to_cart", "2026-02-12T11:20:00Z", product_id="p3"),
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={})


def load_store(settings: Settings, rows: list[dict]) -> None:
    """Ingest rows into the settings' event store (plus a small catalogue) and export the lake."""
    store: EventStore = open_event_store(settings.event_store_url)
    try:
        result = validate_events(pd.DataFrame(rows), now=NOW)
        assert result.rejected.empty, result.rejected
        stored = store.insert_events(result.valid, "b1")
        store.record_ingest(IngestRun("b1", "test", NOW, NOW, len(rows), stored, 0))
        store.upsert_products(pd.DataFrame({"product_id": ["p1", "p2", "p3"],
                                            "category": ["shoes", "hats", "socks"],
                                            "price": [10.0, 5.0, 3.0]}))
        store.upsert_customers(pd.DataFrame({"customer_id": ["c1", "c2"],
                                             "location": ["Berlin", "Lyon"]}))
    finally:
        store.close()
    export_lake(settings, progress=False)


def test_refresh_counts_and_orders_match_hand_computed_values(settings: Settings) -> None:
    load_store(settings, PURCHASES + BROWSING)
    tables = refresh_warehouse(settings)

    # Sessions: s1, s2, s9, three derived for c4 (gaps of hours), two derived for c5.
    assert tables == {"events": 17, "products": 3, "customers": 2, "predictions": 0, "orders": 5,
                      "sessions": 8}
    orders = query_warehouse(settings, "SELECT * FROM orders").set_index("order_id")
    assert orders.loc["o1", ["customer_id", "n_items", "n_products"]].tolist() == ["c1", 3, 2]
    assert orders.loc["o1", "revenue"] == pytest.approx(25.0)
    assert orders.loc["o1", "order_time"] == pd.Timestamp("2026-02-10T09:00:00Z")
    assert orders.loc["o2", "revenue"] == pytest.approx(12.0)
    assert orders.loc["derived:c3:s9", "revenue"] == pytest.approx(10.0)
    assert orders.loc["derived:c4:2026-02-10", ["n_items", "revenue"]].tolist() == \
        pytest.approx([3.0, 5.0])
    assert orders.loc["derived:c4:2026-02-11", "revenue"] == pytest.approx(3.0)
    assert orders["order_id_derived"].sum() == 3


def test_sessions_with_and_without_session_ids(settings: Settings) -> None:
    load_store(settings, PURCHASES + BROWSING)
    refresh_warehouse(settings)
    sessions = query_warehouse(settings, "SELECT * FROM sessions").set_index("session_id")

    s1 = sessions.loc["s1"]
    assert (s1["customer_id"], s1["n_events"], s1["n_product_views"], s1["n_searches"]) == \
        ("c1", 6, 1, 1)
    assert (s1["added_to_cart"], s1["started_checkout"], s1["purchased"]) == (True, True, True)
    assert s1["duration_seconds"] == pytest.approx(10 * 60 + 5)
    assert s1["device_type"] == "mobile"
    derived = sessions[sessions["customer_id"] == "c5"].sort_values("started_at")
    assert derived.index.tolist() == ["derived:c5:1", "derived:c5:2"]
    assert derived["n_events"].tolist() == [3, 2]
    assert derived["duration_seconds"].tolist() == pytest.approx([40 * 60, 5 * 60])
    assert derived["device_type"].tolist() == ["desktop", "tablet"]
    assert derived["added_to_cart"].tolist() == [False, True]
    assert derived["session_id_derived"].all() and not sessions.loc["s1", "session_id_derived"]
    # c4's purchases carry no session id either: 08:00 and 20:00 on Feb 10, 08:00 on Feb 11.
    assert (sessions["customer_id"] == "c4").sum() == 3


def test_events_view_exposes_partitions_and_follows_new_exports(settings: Settings) -> None:
    load_store(settings, PURCHASES)
    refresh_warehouse(settings)
    hours = query_warehouse(
        settings, "SELECT event_date, event_hour, COUNT(*) AS n FROM events "
                  "WHERE customer_id = ? GROUP BY ALL ORDER BY ALL", ["c4"])
    assert hours.values.tolist() == [[pd.Timestamp("2026-02-10"), 8, 1],
                                     [pd.Timestamp("2026-02-10"), 20, 1],
                                     [pd.Timestamp("2026-02-11"), 8, 1]]
    load_store(settings, BROWSING)  # a later hourly export: the view sees it at once
    assert query_warehouse(settings, "SELECT COUNT(*) AS n FROM events")["n"].item() == 17


def test_empty_lake_gives_typed_empty_tables(settings: Settings) -> None:
    tables = refresh_warehouse(settings)

    assert tables == {"events": 0, "products": 0, "customers": 0, "predictions": 0, "orders": 0,
                      "sessions": 0}
    assert settings.warehouse_file.is_file()
    with open_warehouse(settings) as connection:
        types = dict(connection.execute("SELECT column_name, data_type FROM "
                                        "information_schema.columns WHERE table_name = 'events'"
                                        ).fetchall())
    assert types["timestamp"] == "TIMESTAMP WITH TIME ZONE" and types["price"] == "DOUBLE"
    assert types["event_date"] == "DATE"


def test_queries_are_read_only(settings: Settings) -> None:
    load_store(settings, PURCHASES)
    refresh_warehouse(settings)
    with pytest.raises(ValueError, match="read-only"):
        query_warehouse(settings, "DROP TABLE orders")
    assert query_warehouse(settings, "SELECT COUNT(*) AS n FROM orders")["n"].item() == 5


def test_query_before_refresh_says_what_to_do(settings: Settings) -> None:
    with pytest.raises(FileNotFoundError, match="tailor warehouse"):
        query_warehouse(settings, "SELECT 1")


def test_memory_lake_through_fsspec(settings: Settings) -> None:
    memory = settings.replace(lake_url=f"memory://lake-{uuid.uuid4().hex[:8]}")
    load_store(memory, PURCHASES + BROWSING)
    tables = refresh_warehouse(memory)

    assert tables["events"] == 17 and tables["orders"] == 5 and tables["products"] == 3
    revenue = query_warehouse(memory, "SELECT SUM(revenue) AS revenue FROM orders")
    assert revenue["revenue"].item() == pytest.approx(25 + 12 + 10 + 5 + 3)


def test_one_session_gap_setting_rules_the_warehouse_and_the_models(tmp_path: Path) -> None:
    """c5's 35-minute pause ends a session at the default 30 minutes, not at 40; the models'
    session keys (built from the same events) follow the same setting."""
    from tailor.models.data import load_shop_data

    for minutes, expected in ((30, [3, 2]), (40, [5])):
        settings = load_settings(home=tmp_path / f"gap{minutes}",
                                 env={"TAILOR_EVENTS_SESSION_GAP_MINUTES": str(minutes)})
        load_store(settings, BROWSING)
        refresh_warehouse(settings)
        sessions = query_warehouse(
            settings, "SELECT n_events FROM sessions WHERE customer_id = 'c5' ORDER BY started_at")
        assert sessions["n_events"].tolist() == expected, minutes
        events = load_shop_data(settings).events
        keys = events.loc[events["customer_id"] == "c5", "session_key"]
        assert keys.value_counts(sort=False).tolist() == expected, minutes


def test_the_empty_predictions_view_has_every_column_of_the_lake_files(
        settings: Settings) -> None:
    """A reader of `predictions` (the experiments' analysis) works before the first export."""
    from tailor.events.prediction_lake import LAKE_PREDICTION_SCHEMA

    refresh_warehouse(settings)
    with open_warehouse(settings) as connection:
        columns = [row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'predictions' ORDER BY ordinal_position").fetchall()]
    assert columns == LAKE_PREDICTION_SCHEMA.names + ["served_date", "served_hour"]


def test_a_lake_of_predictions_older_than_their_latency_column_still_reads(
        settings: Settings) -> None:
    """Files written before latency_ms and fallback_kind existed, and none after them: the
    view gives typed NULLs (reading them by name would fail: no file holds them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tailor.events.prediction_lake import LAKE_PREDICTION_SCHEMA, PREDICTIONS_DIR

    old_schema = pa.schema([field for field in LAKE_PREDICTION_SCHEMA
                            if field.name not in ("latency_ms", "fallback_kind")])
    row = {name: None for name in old_schema.names} | {
        "seq": 1, "served_at": pd.Timestamp("2026-02-10 08:00", tz="UTC"), "request_id": "r1",
        "endpoint": "homepage", "fallback": False}
    folder = Path(settings.lake_root) / PREDICTIONS_DIR / "date=2026-02-10" / "hour=8"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=old_schema), folder / "part-0.parquet")
    refresh_warehouse(settings)
    answer = query_warehouse(settings, "SELECT request_id, latency_ms, fallback_kind "
                                       "FROM predictions")
    assert answer["request_id"].tolist() == ["r1"]
    assert answer["latency_ms"].isna().all() and answer["fallback_kind"].isna().all()
    with open_warehouse(settings) as connection:
        types = dict(connection.execute("SELECT column_name, data_type FROM "
                                        "information_schema.columns WHERE table_name = "
                                        "'predictions'").fetchall())
    assert types["latency_ms"] == "DOUBLE" and types["fallback_kind"] == "VARCHAR"
