"""Segment's HTTP Tracking API on the collector, against a real SQLite store and PII store.

Every accepted call is read back from the stores, not from the answer alone. Refusals are
checked for Segment's status codes and a message naming the problem.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from tailor.config import Settings
from tailor.events.collector.app import create_collector_app
from tailor.events.identity import create_identity_secret, identity_secret_path, sign_customer_id
from tailor.events.pii import open_pii_store
from tailor.events.segment_mapping import mapping_table_markdown
from tailor.events.store import EventStore
from tailor.events.tombstones import add_tombstone, load_tombstone_key, tombstone_of
from tailor.privacy.opt_out_list import OptOutList

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

REPO = Path(__file__).resolve().parents[3]
SHOP = "https://shop.example"


def basic(key: str) -> dict[str, str]:
    """Segment's authentication: the write key as the HTTP Basic user, no password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def minutes_ago(minutes: float) -> str:
    return (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=minutes)).isoformat()


def track(event: str, properties: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    message = {"type": "track", "event": event, "userId": "c-1", "anonymousId": "v-1",
               "messageId": uuid.uuid4().hex, "timestamp": minutes_ago(1),
               "properties": properties or {}}
    message.update(fields)
    return {key: value for key, value in message.items() if value is not ...}


def post_batch(client: TestClient, key: str, messages: list[Any], **extra: Any):
    return client.post("/v1/batch", json={"batch": messages, **extra}, headers=basic(key))


def rows(store: EventStore) -> pd.DataFrame:
    frame = store.events_after(0, 10_000)
    frame["props"] = [json.loads(text) if text else {} for text in frame["properties"]]
    return frame.sort_values("seq").reset_index(drop=True)


# -- every call, and what it stores ------------------------------------------------------------


def test_each_call_endpoint_stores_its_event(client: TestClient, secret_key: str,
                                             store: EventStore) -> None:
    calls = {
        "track": track("Product Viewed", {"product_id": "p-1", "price": 9.5}),
        "page": {"userId": "c-1", "name": "Home", "properties": {"path": "/", "title": "Shop"}},
        "screen": {"userId": "c-1", "name": "Basket"},
        "identify": {"userId": "c-1", "anonymousId": "v-1", "traits": {"plan": "gold"}},
        "alias": {"userId": "c-1", "previousId": "v-9"},
        "group": {"userId": "c-1", "groupId": "acme", "traits": {"email": "a@acme.example"}},
    }
    for call, message in calls.items():
        response = client.post(f"/v1/{call}", json=message, headers=basic(secret_key))
        assert response.status_code == 200, response.text
        assert response.json()["success"] is True
    assert client.post("/v1/group", json=calls["group"], headers=basic(secret_key)).json()[
        "skipped"] == {"group": 1}
    browser_call = {**track("Product Viewed", {"product_id": "p-9"}, type=...),
                    "writeKey": secret_key}  # analytics.js: short path, key in the body
    short = client.post("/v1/t", content=json.dumps(browser_call),
                        headers={"Content-Type": "text/plain"})
    assert short.status_code == 200 and short.json()["accepted"] == 1
    stored = rows(store)
    assert list(stored["event_type"]) == ["product_view", "page_view", "page_view", "click",
                                          "click", "product_view"]
    assert stored["product_id"][0] == "p-1" and stored["price"][0] == 9.5
    assert stored["props"][1]["page_name"] == "Home" and stored["props"][1]["page"] == "/"
    assert stored["props"][2]["screen"] == "Basket"
    assert stored["props"][3] == {"action": "identify", "anonymous_id": "anon-v-1"}
    # the join; the trait is not kept
    assert stored["props"][4]["action"] == "alias"
    assert stored["props"][4]["anonymous_id"] == "anon-v-9"
    assert "acme" not in json.dumps(list(stored["props"]))  # group calls are not stored


def test_the_e_commerce_spec_maps_onto_event_types_and_columns(
        client: TestClient, secret_key: str, store: EventStore) -> None:
    messages = [
        track("Product Viewed", {"product_id": "p-1", "price": 20, "category": "shirts"},
              userId=..., anonymousId="v-7"),
        track("Products Searched", {"query": "linen shirt"}),
        track("Product Clicked", {"product_id": "p-2"}),
        track("Product Added", {"product_id": "p-1", "price": 20, "quantity": 2}),
        track("Product Removed", {"sku": "p-1", "quantity": 1}),
        track("Cart Viewed", {"cart_id": "k-1", "products": [{"product_id": "p-1"}]}),
        track("Checkout Started", {"order_id": "o-1", "value": 40}),
        track("Order Completed", {"order_id": "o-1", "revenue": 40, "currency": "EUR",
                                  "products": [{"product_id": "p-1", "price": 20, "quantity": 1},
                                               {"sku": "p-3", "price": 10, "quantity": 2,
                                                "category": "socks"}]},
              messageId="order-1"),
        track("Video Played", {"video_id": "v-88"}),
    ]
    response = post_batch(client, secret_key, messages)
    assert response.json()["accepted"] == 10 and response.json()["rejected"] == []
    stored = rows(store)
    assert list(stored["event_type"]) == [
        "product_view", "search", "click", "add_to_cart", "remove_from_cart", "page_view",
        "checkout_start", "purchase", "purchase", "click"]
    assert stored["customer_id"][0] == "anon-v-7" and stored["customer_id"][1] == "c-1"
    assert stored["props"][0]["category"] == "shirts"
    assert stored["query"][1] == "linen shirt"
    assert (stored["product_id"][3], stored["quantity"][3]) == ("p-1", 2)
    assert stored["product_id"][4] == "p-1"  # the sku when there is no product_id
    assert stored["order_id"][6] == "o-1" and stored["props"][6]["value"] == 40
    orders = stored[stored["event_type"] == "purchase"]
    assert list(orders["event_id"]) == ["order-1:1", "order-1:2"]
    assert list(orders["product_id"]) == ["p-1", "p-3"]
    assert list(orders["quantity"]) == [1, 2] and set(orders["order_id"]) == {"o-1"}
    assert orders["props"].iloc[1]["category"] == "socks"
    assert orders["props"].iloc[0]["revenue"] == 40 and "products" not in orders["props"].iloc[0]
    custom = stored["props"][9]
    assert custom["event"] == "Video Played" and custom["custom_event"] is True
    assert custom["video_id"] == "v-88" and stored["product_id"][9] is None


def test_the_mapping_table_in_the_docs_is_the_one_in_code() -> None:
    assert mapping_table_markdown() in (REPO / "docs" / "collector.md").read_text()


def test_bad_messages_are_rejected_by_their_position_and_the_rest_stored(
        client: TestClient, secret_key: str, store: EventStore) -> None:
    messages = [
        track("Order Completed", {"order_id": "o-1", "products": [{"product_id": "p-1"},
                                                                  {"product_id": "p-2"}]}),
        {"type": "teleport", "userId": "c-1"},
        track("Product Viewed", {}),  # no product
        track(""),  # a track without a name
        "not an object",
        track("Product Viewed", {"product_id": "p-9"}, userId=..., anonymousId=...),
        track("Product Viewed", {"product_id": "p-1"}),
    ]
    body = post_batch(client, secret_key, messages).json()
    assert body["accepted"] == 3
    assert [(item["index"], item["reason"]) for item in body["rejected"]] == [
        (1, "malformed_row"), (2, "missing_product_id"), (3, "malformed_row"),
        (4, "malformed_row"), (5, "missing_customer_id")]
    assert "teleport" in body["rejected"][0]["detail"]
    assert len(store.rejected_rows()) == 5


# -- keys, bodies and Segment's limits -----------------------------------------------------------


def test_keys_are_read_from_basic_auth_tailor_headers_or_the_body(
        client: TestClient, secret_key: str, store: EventStore) -> None:
    message = track("Product Viewed", {"product_id": "p-1"})
    assert client.post("/v1/track", json=message, headers={"X-Tailor-Key": secret_key}) \
        .status_code == 200
    assert client.post("/v1/track", json={**track("Product Viewed", {"product_id": "p-2"}),
                                          "writeKey": secret_key}).status_code == 200
    assert store.count_events() == 2


@pytest.mark.parametrize("headers, body_key, status, code", [
    ({}, None, 401, "missing_write_key"),
    (basic("tlr_sk_" + "0" * 40), None, 403, "invalid_write_key"),
    ({}, "tlr_pk_" + "1" * 40, 403, "invalid_write_key"),
    ({"Authorization": "Basic %%%"}, None, 401, "missing_write_key"),
])
def test_missing_or_unknown_keys_are_refused_and_nothing_is_stored(
        client: TestClient, store: EventStore, headers: dict, body_key: str | None,
        status: int, code: str) -> None:
    body = {"batch": [track("Product Viewed", {"product_id": "p-1"})]}
    if body_key:
        body["writeKey"] = body_key
    response = client.post("/v1/batch", json=body, headers=headers)
    assert response.status_code == status
    assert response.json()["code"] == code and "key" in response.json()["message"]
    assert store.count_events() == 0


def test_a_public_key_works_from_an_allowed_origin_only(client: TestClient, public_key: str,
                                                        store: EventStore) -> None:
    message = track("Product Viewed", {"product_id": "p-1"}, userId=...)
    allowed = client.post("/v1/track", content=json.dumps(message),
                          headers={**basic(public_key), "Origin": SHOP,
                                   "Content-Type": "text/plain"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP
    other = client.post("/v1/track", json=message,
                        headers={**basic(public_key), "Origin": "https://evil.example"})
    assert other.status_code == 403 and "allowed_origins" in other.json()["message"]
    preflight = client.options("/v1/batch", headers={"Origin": SHOP,
                                                     "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert store.count_events() == 1


def test_gzip_bodies_are_unpacked_and_bad_ones_refused(client: TestClient, secret_key: str,
                                                       store: EventStore) -> None:
    packed = gzip.compress(json.dumps({"batch": [track("Product Viewed",
                                                       {"product_id": "p-1"})]}).encode())
    headers = {**basic(secret_key), "Content-Type": "application/json",
               "Content-Encoding": "gzip"}
    assert client.post("/v1/batch", content=packed, headers=headers).json()["accepted"] == 1
    broken = client.post("/v1/batch", content=b"not gzip at all", headers=headers)
    assert broken.status_code == 400 and "gzip" in broken.json()["message"]
    truncated = client.post("/v1/batch", content=packed[:-12], headers=headers)
    assert truncated.status_code == 400
    bomb = gzip.compress(b'{"batch": [' + b" " * 600_000 + b"]}")  # 600 KB unpacked, ~1 KB sent
    refused = client.post("/v1/batch", content=bomb, headers=headers)
    assert refused.status_code == 400 and "500 KB" in refused.json()["message"]
    deflate = client.post("/v1/batch", content=packed, headers={**headers,
                                                                "Content-Encoding": "br"})
    assert deflate.status_code == 415
    assert store.count_events() == 1


def test_segment_size_limits_answer_400(client: TestClient, secret_key: str,
                                        store: EventStore) -> None:
    big = track("Product Viewed", {"product_id": "p-1", "blob": "x" * 33_000})
    single = client.post("/v1/track", json=big, headers=basic(secret_key))
    assert single.status_code == 400 and "32 KB" in single.json()["message"]
    small = [track("Product Viewed", {"product_id": "p-1"}) for _ in range(3)]
    inside = post_batch(client, secret_key, [*small, big])
    assert inside.status_code == 400 and "batch[3]" in inside.json()["message"]
    many = [track("Product Viewed", {"product_id": "p-1", "blob": "y" * 20_000})
            for _ in range(30)]  # each under 32 KB, together over 500 KB
    over = post_batch(client, secret_key, many)
    assert over.status_code == 400 and "500 KB" in over.json()["message"]
    malformed = client.post("/v1/batch", content=b'{"batch": [', headers={
        **basic(secret_key), "Content-Type": "application/json"})
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["message"]
    assert store.count_events() == 0


# -- ids, time, consent, privacy -------------------------------------------------------------------


def test_a_retried_batch_is_stored_once_by_message_id(client: TestClient, secret_key: str,
                                                      store: EventStore) -> None:
    messages = [track("Product Viewed", {"product_id": f"p-{n}"}) for n in range(3)]
    messages.append({"type": "track", "event": "Product Added", "userId": "c-1",
                     "properties": {"product_id": "p-1"}})  # no messageId, no timestamp
    first = post_batch(client, secret_key, messages, sentAt=minutes_ago(0))
    again = post_batch(client, secret_key, messages, sentAt=minutes_ago(0))
    assert (first.json()["accepted"], first.json()["duplicates"]) == (4, 0)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 4)
    assert store.count_events() == 4
    assert {message["messageId"] for message in messages[:3]} <= set(rows(store)["event_id"])


def test_timestamps_are_corrected_for_the_senders_clock_as_segment_does(
        client: TestClient, secret_key: str, store: EventStore) -> None:
    now = pd.Timestamp.now(tz="UTC")
    slow_clock = now - pd.Timedelta(hours=2)  # the sender's clock is two hours behind
    skewed = track("Product Viewed", {"product_id": "p-1"},
                   timestamp=(slow_clock - pd.Timedelta(seconds=30)).isoformat())
    post_batch(client, secret_key, [skewed], sentAt=slow_clock.isoformat())
    own_sent_at = track("Product Viewed", {"product_id": "p-2"},
                        timestamp=(slow_clock - pd.Timedelta(seconds=10)).isoformat(),
                        sentAt=slow_clock.isoformat())
    on_time = track("Product Viewed", {"product_id": "p-3"},
                    timestamp=(now - pd.Timedelta(seconds=5)).isoformat())
    post_batch(client, secret_key, [own_sent_at, on_time], sentAt=now.isoformat())
    stored = rows(store).set_index("product_id")
    # timestamp = receivedAt - (sentAt - timestamp): 30 s (10 s) before it was received
    for product, before in (("p-1", 30), ("p-2", 10)):
        corrected = stored.loc[product, "timestamp"]
        assert abs((now - pd.Timedelta(seconds=before) - corrected).total_seconds()) < 5
        assert abs(stored.loc[product, "props"]["clock_skew_seconds"] - 7200) < 5
    assert stored.loc["p-3", "timestamp"] == now - pd.Timedelta(seconds=5)  # within 2 s: as sent
    assert "clock_skew_seconds" not in stored.loc["p-3", "props"]


@pytest.mark.parametrize("context, kept", [
    ({}, True),
    ({"consent": {"categoryPreferences": {"Personalization": True, "Advertising": False}}}, True),
    ({"consent": {"categoryPreferences": {"Personalization": False}}}, False),
    ({"consent": {"categoryPreferences": {"Analytics": True}}}, False),  # not consented to ours
    ({"consentManagement": {"deniedConsentIds": ["Personalization"]}}, False),
    ({"consentManagement": {"allowedConsentIds": ["Personalization"], "deniedConsentIds": []}},
     True),
])
def test_consent_categories_decide_whether_a_call_is_stored(
        client: TestClient, secret_key: str, store: EventStore, context: dict,
        kept: bool) -> None:
    body = post_batch(client, secret_key, [track("Product Viewed", {"product_id": "p-1"},
                                                 context=context)]).json()
    assert store.count_events() == (1 if kept else 0)
    assert body["skipped"] == ({} if kept else {"consent": 1})


def test_integrations_that_leave_tailor_out_are_honoured(client: TestClient, secret_key: str,
                                                         store: EventStore) -> None:
    messages = [track("Product Viewed", {"product_id": "p-1"}, integrations=integrations)
                for integrations in ({"Tailor": False}, {"All": False},
                                     {"All": False, "Tailor": True}, {"All": True})]
    body = post_batch(client, secret_key, messages).json()
    assert body["accepted"] == 2 and body["skipped"] == {"integrations": 2}


def test_events_of_opted_out_ids_are_dropped(settings: Settings, secret_key: str,
                                            store: EventStore) -> None:
    opt_outs = OptOutList(settings, recheck_seconds=0)
    for customer_id in ("c-out", "anon-v-out"):
        opt_outs.opt_out(customer_id, "cli")
    with TestClient(create_collector_app(settings, opt_outs=opt_outs)) as client:
        body = post_batch(client, secret_key, [
            track("Product Viewed", {"product_id": "p-1"}, userId="c-out", anonymousId=...),
            track("Product Viewed", {"product_id": "p-1"}, userId=..., anonymousId="v-out"),
            {"type": "identify", "userId": "c-out", "traits": {"email": "out@example.com"}},
            track("Product Viewed", {"product_id": "p-1"}, userId="c-in")]).json()
    assert body["skipped"] == {"opted_out": 2} and body["accepted"] == 1
    assert list(rows(store)["customer_id"]) == ["c-in"]
    pii = open_pii_store(settings)
    assert pii.get("c-out") is None  # nor are their traits written
    pii.close()


def test_events_and_traits_of_forgotten_ids_are_dropped_before_opted_out_ones(
        settings: Settings, secret_key: str, store: EventStore) -> None:
    key = load_tombstone_key(settings.home_path)
    for customer_id in ("c-gone", "anon-v-gone"):  # as `tailor forget` tombstones them
        add_tombstone(settings.home_path, tombstone_of(key, customer_id))
    opt_outs = OptOutList(settings, recheck_seconds=0)
    opt_outs.opt_out("c-out", "cli")
    with TestClient(create_collector_app(settings, opt_outs=opt_outs)) as client:
        body = post_batch(client, secret_key, [
            track("Product Viewed", {"product_id": "p-1"}, userId="c-gone", anonymousId=...),
            track("Product Viewed", {"product_id": "p-1"}, userId=..., anonymousId="v-gone"),
            {"type": "identify", "userId": "c-gone", "traits": {"email": "gone@example.com"}},
            track("Product Viewed", {"product_id": "p-1"}, userId="c-out", anonymousId=...),
            track("Product Viewed", {"product_id": "p-1"}, userId="c-in")]).json()
        alone = client.post("/v1/identify", headers=basic(secret_key), json={
            "userId": "c-gone", "traits": {"name": "Gone Person"}})
    assert body["skipped"] == {"forgotten": 2, "opted_out": 1} and body["accepted"] == 1
    assert alone.status_code == 200
    assert list(rows(store)["customer_id"]) == ["c-in"]
    pii = open_pii_store(settings)
    assert pii.get("c-gone") is None  # nor are their traits written
    pii.close()


def test_identify_traits_go_to_the_pii_store_only(client: TestClient, secret_key: str,
                                                  settings: Settings, store: EventStore) -> None:
    first = {"userId": "c-5", "anonymousId": "v-5", "traits": {
        "email": "ada@example.com", "firstName": "Ada", "plan": "gold-tier-x7", "age": 417319}}
    later = {"userId": "c-5", "traits": {"name": "Ada Lovelace"}, "context": {
        "traits": {"email": "other@example.com"}}}
    for message in (first, later):
        assert client.post("/v1/identify", json=message, headers=basic(secret_key)) \
            .status_code == 200
    pii = open_pii_store(settings)
    assert pii.get("c-5") == {"email": "ada@example.com", "first_name": "Ada",
                              "name": "Ada Lovelace"}  # merged; other traits kept nowhere
    pii.close()
    dump = json.dumps(rows(store).drop(columns=["timestamp"]).to_dict("records"), default=str)
    for value in ("ada@example.com", "Ada", "gold-tier-x7", "417319"):
        assert value not in dump
    assert store.count_events() == 1  # the join of v-5 to c-5; the second links nothing


def test_a_browser_cannot_write_a_known_customers_pii_without_a_signature(
        client: TestClient, public_key: str, settings: Settings) -> None:
    secret = create_identity_secret(identity_secret_path(settings))
    unsigned = {"userId": "c-6", "traits": {"email": "attacker@example.com"}}
    signed = {"userId": "c-7", "traits": {"email": "c7@example.com"},
              "context": {"identity_signature": sign_customer_id(secret, "c-7")}}
    anonymous = {"anonymousId": "v-8", "traits": {"email": "newsletter@example.com"}}
    for message in (unsigned, signed, anonymous):
        response = client.post("/v1/identify", json=message, headers=basic(public_key))
        assert response.status_code == 200
    pii = open_pii_store(settings)
    assert pii.get("c-6") is None
    assert pii.get("c-7") == {"email": "c7@example.com"}
    assert pii.get("anon-v-8") == {"email": "newsletter@example.com"}
    pii.close()


def test_personal_keys_in_properties_never_reach_an_event(client: TestClient, secret_key: str,
                                                          store: EventStore) -> None:
    message = track("Product Viewed", {"product_id": "p-1", "email": "x@example.com",
                                       "shipping": {"address": "1 Main St", "phone": "555"}},
                    context={"ip": "203.0.113.9", "traits": {"email": "x@example.com"}})
    post_batch(client, secret_key, [message])
    stored = rows(store)
    assert stored["props"][0]["shipping"] == {}
    dump = json.dumps(stored.drop(columns=["timestamp"]).to_dict("records"), default=str)
    assert "x@example.com" not in dump and "203.0.113.9" not in dump and "Main St" not in dump


def test_the_api_answers_under_a_mount_prefix_as_in_tailor_serve(
        settings: Settings, secret_key: str, store: EventStore) -> None:
    outer = Starlette(routes=[Mount("/collect", app=create_collector_app(settings))])
    with TestClient(outer) as client:
        response = client.post("/collect/v1/batch", json={"batch": [
            track("Product Viewed", {"product_id": "p-1"})]}, headers=basic(secret_key))
    assert response.status_code == 200 and response.json()["accepted"] == 1
