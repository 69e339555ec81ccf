"""A simulated shop sent through the Segment API stores what the same shop sent through
`POST /v1/events` stores, in every column the models train on.

The simulator's events go to one collector as Tailor events (batches of 100) and to another
as the Segment calls a shop's existing tracking would make for them (page calls, the
e-commerce spec's track calls, one `Order Completed` per order with its products). The two
stores must then hold the same rows in the columns `tailor.models.data` reads, so
whatever trains on one trains identically on the other.
"""

from __future__ import annotations

import base64
import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from tailor.config import load_settings
from tailor.events.collector.app import create_collector_app
from tailor.events.keys import create_key, keys_file_path
from tailor.events.store import open_event_store
from tailor.simulate.config import ShopConfig
from tailor.simulate.shop import simulate_shop

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

# What the models read from the store (tailor.models.data.EVENTS_SQL), incentive included.
TRAINING_COLUMNS = ["customer_id", "event_type", "product_id", "timestamp", "session_id",
                    "order_id", "price", "quantity", "device_type", "incentive"]
SPEC_NAMES = {"product_view": "Product Viewed", "search": "Products Searched",
              "click": "Product Clicked", "add_to_cart": "Product Added",
              "remove_from_cart": "Product Removed", "checkout_start": "Checkout Started",
              "email_open": "Email Opened", "email_click": "Email Link Clicked"}


def _value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def native_events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The simulator's rows as `POST /v1/events` takes them."""
    events = []
    for row in frame.to_dict("records"):
        event = {key: _value(value) for key, value in row.items()}
        event["timestamp"] = row["timestamp"].isoformat()
        event["properties"] = json.loads(row["properties"]) if row["properties"] else None
        events.append(event)
    return events


def segment_messages(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The same behaviour as the Segment calls a shop's tracking would make."""
    messages: list[dict[str, Any]] = []
    orders: dict[str, dict[str, Any]] = {}
    for event in native_events(frame):
        properties = dict(event["properties"] or {})
        for name in ("product_id", "price", "quantity", "order_id", "query"):
            if event[name] is not None:
                properties[name] = event[name]
        message = {"userId": event["customer_id"], "messageId": event["event_id"],
                   "timestamp": event["timestamp"],
                   "context": {"sessionId": event["session_id"],
                               "device": {"type": event["device_type"]}}}
        if event["event_type"] == "page_view":
            messages.append({**message, "type": "page", "properties": properties})
        elif event["event_type"] == "purchase":
            item = {key: properties.pop(key) for key in ("product_id", "price", "quantity")
                    if key in properties}
            order = orders.get(event["order_id"])
            if order is None:
                order = {**message, "type": "track", "event": "Order Completed",
                         "properties": {**properties, "products": []}}
                orders[event["order_id"]] = order
                messages.append(order)
            order["properties"]["products"].append(item)
        else:
            messages.append({**message, "type": "track", "event": SPEC_NAMES[event["event_type"]],
                             "properties": properties})
    return messages


def training_rows(home: Path) -> pd.DataFrame:
    store = open_event_store(load_settings(home=home, env={}).event_store_url)
    try:
        frame = store.events_after(0, 1_000_000)
    finally:
        store.close()
    frame["incentive"] = [json.loads(text).get("incentive") if text else None
                          for text in frame["properties"]]
    frame = frame[TRAINING_COLUMNS].astype(object).where(frame[TRAINING_COLUMNS].notna(), None)
    return frame.sort_values(["timestamp", "customer_id", "event_type", "product_id"],
                             key=lambda column: column.astype(str)).reset_index(drop=True)


def post_all(home: Path, path: str, body_key: str, items: list[dict[str, Any]]) -> dict:
    settings = load_settings(home=home, env={})
    key = create_key("secret", keys_file_path(settings), label="parity")
    headers = {"X-Tailor-Key": key} if path == "/v1/events" else {
        "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    totals = {"accepted": 0, "rejected": 0}
    with TestClient(create_collector_app(settings)) as client:
        for start in range(0, len(items), 100):
            response = client.post(path, json={body_key: items[start:start + 100]},
                                   headers=headers)
            assert response.status_code == 200, response.text
            totals["accepted"] += response.json()["accepted"]
            totals["rejected"] += len(response.json()["rejected"])
    return totals


@pytest.fixture(scope="module")
def shop_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pd.DataFrame]:
    out = tmp_path_factory.mktemp("parity-shop")
    simulate_shop(ShopConfig(n_customers=80, n_products=40, n_days=14, seed=2), out)
    frame = pd.read_parquet(out / "events.parquet")
    # Recent enough for the collector's plausibility window, in the simulator's order.
    shift = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=20) - frame["timestamp"].min()
    frame["timestamp"] = frame["timestamp"] + shift
    yield frame


def test_the_segment_path_stores_the_training_rows_of_the_native_path(
        shop_events: pd.DataFrame, tmp_path: Path) -> None:
    native_home, segment_home = tmp_path / "native", tmp_path / "segment"
    messages = segment_messages(shop_events)
    assert {message.get("event") for message in messages} >= {
        "Product Viewed", "Product Added", "Checkout Started", "Order Completed"}

    native = post_all(native_home, "/v1/events", "events", native_events(shop_events))
    segment = post_all(segment_home, "/v1/batch", "batch", messages)

    assert native == {"accepted": len(shop_events), "rejected": 0}
    assert segment == native
    expected, got = training_rows(native_home), training_rows(segment_home)
    assert (expected["event_type"] == "purchase").sum() > 0
    pd.testing.assert_frame_equal(got, expected)
