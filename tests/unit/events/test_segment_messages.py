"""Segment messages as events: the fast path for the common shape gives exactly what the
general path gives, on generated messages (Hypothesis) and on the shapes the libraries send."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings, strategies as st

from tailor.events.segment_consent import ConsentRule
from tailor.events.segment_mapping import SPEC_EVENTS
from tailor.events.segment_messages import (
    MappedBatch,
    fast_event,
    general_events,
    map_messages,
)

RECEIVED = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
NAMES = [spec.name for spec in SPEC_EVENTS] + ["Video Played", " Product Viewed", "product viewed"]
KEYS = st.sampled_from(["product_id", "productId", "sku", "id", "price", "quantity", "order_id",
                        "orderId", "query", "path", "category", "email", "Name", "value",
                        "products", "title"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.text(max_size=8))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2),
                   st.dictionaries(st.sampled_from(["product_id", "email", "x"]), SCALARS,
                                   max_size=2))
IDS = st.one_of(st.none(), st.text(max_size=6), st.integers(0, 99), st.just(" c-1 "))
CONTEXTS = st.fixed_dictionaries({}, optional={
    "sessionId": st.one_of(st.text(max_size=5), st.integers(0, 9), st.none()),
    "session_id": st.text(max_size=5),
    "userAgent": st.sampled_from(["Mozilla/5.0 (iPhone; CPU iPhone OS 17_4)", ""]),
    "device": st.fixed_dictionaries({"type": st.sampled_from(["ios", "mobile", "tv"])}),
    "identity_signature": st.text(max_size=4),
    "page": st.fixed_dictionaries({"path": st.sampled_from(["/a", "/b"])}),
    "library": st.just({"name": "analytics-python"})})
MESSAGES = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "page", "screen"])},
    optional={"event": st.one_of(st.sampled_from(NAMES), st.integers()),
              "messageId": IDS, "userId": IDS, "anonymousId": IDS, "name": st.text(max_size=5),
              "timestamp": st.sampled_from(["2026-03-01T09:59:00Z", ""]),
              "originalTimestamp": st.just("2026-03-01T09:58:00Z"),
              "properties": st.one_of(st.dictionaries(KEYS, VALUES, max_size=5),
                                      st.just("not an object")),
              "context": CONTEXTS})


def general(message: dict[str, Any]) -> list[Any]:
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    return general_events(message, message["type"], context, RECEIVED, MappedBatch())


@settings(max_examples=400, deadline=None, database=None)
@given(message=MESSAGES)
def test_the_fast_path_gives_what_the_general_path_gives(message: dict[str, Any]) -> None:
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    fast = fast_event(message, message["type"], context, RECEIVED)
    if fast is not None:
        assert [fast] == general(message)


def test_the_libraries_common_calls_take_the_fast_path() -> None:
    common = [
        {"type": "track", "event": "Product Viewed", "userId": "c-1", "anonymousId": "v-1",
         "messageId": "m-1", "timestamp": "2026-03-01T09:59:00.000+00:00",
         "properties": {"product_id": "p-1", "price": 9.5, "category": "shirts"},
         "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
         "integrations": {}},
        {"type": "page", "userId": "c-1", "messageId": "m-2", "name": "Home",
         "properties": {"path": "/", "title": "Shop"}, "integrations": {"All": True},
         "context": {"sessionId": 1717, "library": {"name": "analytics-python"}}},
    ]
    for message in common:
        fast = fast_event(message, message["type"], message["context"], RECEIVED)
        assert fast is not None and [fast] == general(message)
    mapped = map_messages(common, RECEIVED, ConsentRule.parse("Personalization"))
    assert [event["event_type"] for event in mapped.events] == ["product_view", "page_view"]
    assert mapped.events[1]["session_id"] == "1717"
