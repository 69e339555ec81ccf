"""Feature SQL against hand-computed values: windows, change points, the strict
before-the-stamp rule, sessions, products and the catalogue, on a tiny shop."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from tailor.config import Settings, load_settings
from tailor.events.ingest.job import ingest_files
from tailor.events.lake import export_lake
from tailor.features.compute import compute_features, read_manifest
from tailor.warehouse import refresh_warehouse

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=timezone.utc)
PRODUCTS = pd.DataFrame({
    "product_id": ["p1", "p2", "p3", "p4"],
    "name": ["Novel", "Atlas", "Encyclopedia", "Kite"],
    "category": ["books", "books", "books", "toys"],
    "price": [10.0, 20.0, 30.0, 5.0],
    "rating": [4.0, 3.5, None, 5.0],
    "inventory": [5, 0, 2, None],
    "seasonal": [False, False, False, True],
})
CUSTOMERS = pd.DataFrame({
    "customer_id": ["c1", "c2", "c4"],
    "signup_date": ["2026-01-01", "2026-02-20", "2026-01-15"],
    "location": ["north", "south", "east"],
    "device_type": ["desktop", "mobile", "desktop"],
    "email": ["c1@example.com", "c2@example.com", "c4@example.com"],
})


def ev(event_id: str, customer_id: str, event_type: str, timestamp: str, **extra: object) -> dict:
    return {"event_id": event_id, "customer_id": customer_id, "event_type": event_type,
            "timestamp": timestamp, **extra}


EVENTS = [
    # c1, session s1 on Feb 1: views p3 (high tier), adds it, buys it.
    ev("a1", "c1", "product_view", "2026-02-01T10:00:00Z", product_id="p3", price=30.0,
       session_id="s1", device_type="mobile"),
    ev("a2", "c1", "add_to_cart", "2026-02-01T10:05:00Z", product_id="p3", price=30.0,
       quantity=1, session_id="s1"),
    ev("a3", "c1", "purchase", "2026-02-01T10:10:00Z", product_id="p3", price=30.0,
       quantity=1, order_id="o1", session_id="s1"),
    # c1, session s2 on Feb 3: views p1 (low tier), adds two, leaves; an e-mail open at night.
    ev("b1", "c1", "product_view", "2026-02-03T09:00:00Z", product_id="p1", price=10.0,
       session_id="s2"),
    ev("b2", "c1", "add_to_cart", "2026-02-03T09:01:00Z", product_id="p1", price=10.0,
       quantity=2, session_id="s2"),
    ev("b3", "c1", "remove_from_cart", "2026-02-03T09:02:30Z", product_id="p1", price=10.0,
       quantity=1, session_id="s2"),
    ev("b4", "c1", "email_open", "2026-02-03T23:59:59Z"),
    # c1, session s3 on Mar 5 from a tablet.
    ev("c1", "c1", "page_view", "2026-03-05T12:00:00Z", session_id="s3", device_type="tablet"),
    # c4 views p1 just before and exactly at midnight of Feb 3.
    ev("d1", "c4", "product_view", "2026-02-02T23:59:59.999Z", product_id="p1", price=10.0,
       session_id="s4"),
    ev("d2", "c4", "product_view", "2026-02-03T00:00:00Z", product_id="p1", price=10.0,
       session_id="s4"),
    ev("d3", "c4", "page_view", "2026-03-05T13:00:00Z", session_id="s5"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, pd.DataFrame]]:
    folder = tmp_path_factory.mktemp("tiny_shop")
    settings = load_settings(home=folder / "home", env={})
    PRODUCTS.to_csv(folder / "products.csv", index=False)
    CUSTOMERS.to_csv(folder / "customers.csv", index=False)
    pd.DataFrame(EVENTS).to_csv(folder / "events.csv", index=False)
    report = ingest_files(settings, folder / "events.csv", products_path=folder / "products.csv",
                          customers_path=folder / "customers.csv", progress=False)
    assert report.accepted == len(EVENTS)
    export_lake(settings)
    refresh_warehouse(settings)
    build = compute_features(settings, now=NOW)
    frames = {table: pd.read_parquet(path) for table, path in build.files.items()}
    return settings, frames


def at(frame: pd.DataFrame, key: str, entity: str, day: str) -> dict:
    rows = frame[(frame[key] == entity) & (frame["event_timestamp"] == pd.Timestamp(day, tz="UTC"))]
    assert len(rows) == 1, f"{entity} has no single row at {day}"
    return rows.iloc[0].to_dict()


def stamps(frame: pd.DataFrame, key: str, entity: str) -> list[str]:
    rows = frame[frame[key] == entity].sort_values("event_timestamp")
    return [stamp.strftime("%m-%d") for stamp in rows["event_timestamp"]]


def test_rows_only_where_values_change(built) -> None:
    _, frames = built
    customers = frames["customer_features"]
    # Profile at the first snapshot (Feb 2), after each active day, when Feb 1 leaves the
    # 30-day window (Mar 4) and Feb 3 does (Mar 6, also the day after Mar 5).
    assert stamps(customers, "customer_id", "c1") == ["02-02", "02-04", "03-04", "03-06"]
    assert stamps(customers, "customer_id", "c2") == ["02-20"]  # profile only, at signup
    manifest = read_manifest(built[0].home_path)
    assert manifest["newest_snapshot"].startswith("2026-03-06")
    assert manifest["categories"] == ["books", "toys"]


def test_customer_values_by_hand(built) -> None:
    _, frames = built
    row = at(frames["customer_features"], "customer_id", "c1", "2026-02-04")
    assert (row["orders_lifetime"], row["orders_30d"], row["revenue_lifetime"]) == (1, 1, 30.0)
    assert row["purchase_frequency_trend"] == pytest.approx(2.0)
    assert (row["product_page_views_30d"], row["cart_adds_30d"], row["sessions_30d"]) == (2, 2, 2)
    assert row["active_days_30d"] == 2
    assert (row["carts_90d"], row["cart_abandonment_rate_90d"]) == (2, pytest.approx(0.5))
    assert (row["email_opens_90d"], row["email_open_trend"]) == (1, 1)
    assert row["email_open_rate_90d"] == pytest.approx(1 / 13)
    assert row["price_sensitivity"] == pytest.approx(2.0 - 1.0)  # bought high, viewed high+low
    assert row["avg_viewed_price_90d"] == pytest.approx(20.0)
    assert row["avg_purchase_price"] == pytest.approx(30.0)
    assert row["device_type"] == "mobile"  # newest event with a device before the stamp
    assert row["region"] == "north"
    assert row["last_purchase_at"] == pd.Timestamp("2026-02-01T10:10:00Z")
    assert row["is_returning_customer"]
    # Views, adds and purchases over 90 days are all books (p3 x3, p1 x2).
    assert (row["category_share_books"], row["category_share_toys"]) == (1.0, 0.0)
    assert row["top_category"] == "books"


def test_windows_drain_without_new_events(built) -> None:
    _, frames = built
    row = at(frames["customer_features"], "customer_id", "c1", "2026-03-04")
    assert (row["orders_30d"], row["orders_90d"], row["orders_lifetime"]) == (0, 1, 1)
    assert (row["revenue_30d"], row["revenue_90d"]) == (0.0, 30.0)
    # No order in the last 30 days, one in the 30 before: (0 + 1) / (1 + 1).
    assert row["purchase_frequency_trend"] == pytest.approx(0.5)
    assert row["sessions_30d"] == 1
    later = at(frames["customer_features"], "customer_id", "c1", "2026-03-06")
    assert later["device_type"] == "tablet"
    assert later["sessions_30d"] == 1  # s3 only: s2 (Feb 3) has left the window
    assert later["email_open_trend"] == -1  # no opens in 30 days, one in the 30 before
    assert later["last_seen_at"] == pd.Timestamp("2026-03-05T12:00:00Z")


def test_profile_row_before_any_event(built) -> None:
    _, frames = built
    row = at(frames["customer_features"], "customer_id", "c2", "2026-02-20")
    assert (row["orders_lifetime"], row["region"], row["device_type"]) == (0, "south", "mobile")
    assert row["signup_at"] == pd.Timestamp("2026-02-20T00:00:00Z")
    assert pd.isna(row["last_seen_at"]) and row["top_category"] == "unknown"


def test_an_event_at_the_stamp_is_not_in_the_row(built) -> None:
    _, frames = built
    products = frames["product_features"]
    # p1 was viewed at 23:59:59.999 on Feb 2 and at 00:00:00 on Feb 3 (and by c1 at 09:00):
    # the Feb 3 row holds only the first; in the Feb 4 row's one-day window are the
    # midnight view and c1's.
    assert at(products, "product_id", "p1", "2026-02-03")["product_views_1d"] == 1
    feb4 = at(products, "product_id", "p1", "2026-02-04")
    assert (feb4["product_views_1d"], feb4["product_views_7d"]) == (2, 3)


def test_product_activity_by_hand(built) -> None:
    _, frames = built
    row = at(frames["product_features"], "product_id", "p3", "2026-02-02")
    assert row["product_views_1d"] == row["product_purchases_1d"] == 1
    assert row["product_cart_adds_7d"] == 1
    assert row["product_trending_ratio"] == pytest.approx((1 + 1) / (1 / 7 + 1))
    assert row["product_conversion_rate_30d"] == pytest.approx(1.0)
    assert row["product_revenue_30d"] == pytest.approx(30.0)
    assert stamps(frames["product_features"], "product_id", "p3") == ["02-02", "02-03", "02-09",
                                                                      "03-04"]


def test_catalogue_tiers_stock_and_season(built) -> None:
    _, frames = built
    catalogue = frames["product_catalogue"]
    newest = catalogue[catalogue["event_timestamp"] == pd.Timestamp("2026-03-06", tz="UTC")]
    rows = newest.set_index("product_id")
    assert list(rows.loc[["p1", "p2", "p3", "p4"], "product_price_tier"]) == ["low", "medium",
                                                                              "high", "low"]
    assert list(rows.loc[["p1", "p2", "p4"], "product_in_stock"]) == [True, False, True]
    assert rows.loc["p3", "product_rating"] == 0.0 and bool(rows.loc["p4", "product_is_seasonal"])
    assert stamps(catalogue, "product_id", "p1") == ["02-02", "03-06"]


def test_session_state_after_each_event(built) -> None:
    _, frames = built
    sessions = frames["session_features"]
    c1 = sessions[sessions["customer_id"] == "c1"].sort_values("event_timestamp")
    assert "email_open" not in set(c1["session_id"])  # e-mail events belong to no session
    assert len(c1) == 7  # seven site events, one row each
    after_remove = c1[c1["session_id"] == "s2"].iloc[-1]
    assert after_remove["event_timestamp"] == pd.Timestamp("2026-02-03T09:02:30.000001Z")
    assert (after_remove["session_cart_items"], after_remove["session_cart_value"]) == (1.0, 10.0)
    assert after_remove["session_length_seconds"] == pytest.approx(150.0)
    assert list(after_remove["session_viewed_categories"]) == ["books"]
    assert after_remove["session_is_returning_visitor"]  # c1 had s1 before
    first = c1.iloc[0]
    assert not first["session_is_returning_visitor"] and first["session_device_type"] == "mobile"
