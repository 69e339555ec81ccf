"""The HTTP collector against a real SQLite store file (and PostgreSQL for the happy path).

Each refusal is checked for its status code and a message that names the problem;
accepted events are read back from the store, never from the collector's own answer alone.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.requests import Request

with warnings.catch_warnings():  # Starlette now suggests httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient
from typer.testing import CliRunner

from tailor.cli import app as cli_app
from tailor.config import Settings
from tailor.events.collector.app import create_collector_app
from tailor.events.collector.enrichment import clock_skew_seconds, device_type_from_user_agent
from tailor.events.collector.requests import RequestError, read_capped_body
from tailor.events.key_ring import load_key_ring
from tailor.events.keys import create_key, hash_key, keys_file_path
from tailor.events.store import EventStore, open_event_store

from writer_groups import run_one_group

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

SHOP = "https://shop.example"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


def make_event(**fields: Any) -> dict[str, Any]:
    """A valid product_view from a minute ago; keyword arguments replace or add fields."""
    event = {
        "event_id": uuid.uuid4().hex,
        "customer_id": "c-1",
        "event_type": "product_view",
        "product_id": "p-1",
        "timestamp": (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)).isoformat(),
        "session_id": "s-1",
        "properties": {"anonymous_id": "anon-1"},
    }
    event.update(fields)
    return {key: value for key, value in event.items() if value is not ...}


def post(client: TestClient, key: str | None, events: Any, *, sent_at: str | None = None,
         origin: str | None = None, **headers: str):
    """POST a batch the way a server would (key in the header, JSON body)."""
    if key is not None:
        headers["X-Tailor-Key"] = key
    if origin is not None:
        headers["Origin"] = origin
    body = {"events": events} if sent_at is None else {"sent_at": sent_at, "events": events}
    return client.post("/v1/events", json=body, headers=headers)


# -- accepted batches ----------------------------------------------------------------------


def test_a_valid_batch_is_stored_and_counted(client: TestClient, secret_key: str,
                                             store: EventStore) -> None:
    events = [make_event(customer_id=f"c-{n}", price=9.5, quantity=2) for n in range(3)]
    response = post(client, secret_key, events)
    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    stored = store.events_after(0, 10).set_index("event_id")
    assert set(stored.index) == {event["event_id"] for event in events}
    assert set(stored["customer_id"]) == {"c-0", "c-1", "c-2"}
    assert (stored["price"] == 9.5).all() and (stored["quantity"] == 2).all()
    assert json.loads(stored["properties"].iloc[0]) == {"anonymous_id": "anon-1"}


def test_a_bare_list_is_accepted_too(client: TestClient, secret_key: str,
                                     store: EventStore) -> None:
    response = client.post("/v1/events", json=[make_event()], headers={"X-Tailor-Key": secret_key})
    assert response.json()["accepted"] == 1
    assert store.count_events() == 1


def test_a_retried_batch_stores_nothing_twice(client: TestClient, secret_key: str,
                                              store: EventStore) -> None:
    events = [make_event() for _ in range(4)]
    first = post(client, secret_key, events)
    again = post(client, secret_key, events + [make_event()])
    assert first.json()["accepted"] == 4
    assert again.json() == {"accepted": 1, "duplicates": 4, "rejected": []}
    assert store.count_events() == 5


def test_good_events_beside_bad_ones_are_stored_and_the_bad_kept_in_dead_letter(
        client: TestClient, secret_key: str, store: EventStore) -> None:
    good = [make_event(), make_event(event_type="search", product_id=None, query="shirt")]
    bad = make_event(event_type="teleport")
    response = post(client, secret_key, [good[0], bad, good[1]])
    body = response.json()
    assert response.status_code == 200
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [(item["index"], item["reason"], item["field"]) for item in body["rejected"]] == [
        (1, "malformed_row", "event_type")]
    assert "'teleport' is not one of" in body["rejected"][0]["detail"]
    assert set(store.events_after(0, 10)["event_id"]) == {event["event_id"] for event in good}
    dead = store.rejected_rows()
    assert len(dead) == 1 and dead["reason"][0] == "malformed_row"
    assert json.loads(dead["raw"][0])["event_type"] == "teleport"  # kept as the client sent it
    assert dead["source"][0] == "collector"


@pytest.mark.parametrize(
    ("fields", "reason", "field", "words"),
    [
        ({"customer_id": {"id": 7}}, "malformed_row", "customer_id",
         "expected a string, got object"),
        ({"product_id": ["p-1"]}, "malformed_row", "product_id", "expected a string, got array"),
        ({"quantity": True}, "malformed_row", "quantity", "expected a number, got boolean"),
        ({"price": "cheap"}, "malformed_row", "price", "not a number"),
        ({"quantity": -1}, "malformed_row", "quantity", "whole number above 0"),
        ({"properties": [1, 2]}, "malformed_row", "properties", "must be a JSON object"),
        ({"timestamp": "yesterday-ish"}, "malformed_row", "timestamp", "cannot parse"),
        ({"timestamp": {"at": 1}}, "malformed_row", "timestamp", "expected an ISO 8601"),
        ({"event_type": "teleport"}, "malformed_row", "event_type", "is not one of"),
        ({"customer_id": None}, "missing_customer_id", "customer_id", "missing"),
        ({"product_id": None}, "missing_product_id", "product_id", "product_view"),
        ({"price": 0}, "nonpositive_price", "price", "not above 0"),
    ],
)
def test_each_wrong_field_is_named_in_the_rejection(client: TestClient, secret_key: str,
                                                    store: EventStore, fields: dict[str, Any],
                                                    reason: str, field: str, words: str) -> None:
    response = post(client, secret_key, [make_event(**fields), make_event()])
    rejected = response.json()["rejected"]
    assert response.status_code == 200
    assert len(rejected) == 1 and rejected[0]["index"] == 0
    assert (rejected[0]["reason"], rejected[0]["field"]) == (reason, field)
    assert words in rejected[0]["detail"]
    assert store.count_events() == 1


def test_an_event_that_is_not_an_object_is_rejected_alone(client: TestClient, secret_key: str,
                                                          store: EventStore) -> None:
    response = post(client, secret_key, ["page_view", make_event(), 42])
    assert [(item["index"], item["field"]) for item in response.json()["rejected"]] == [
        (0, "event"), (2, "event")]
    assert "got string" in response.json()["rejected"][0]["detail"]
    assert store.count_events() == 1


def test_odd_but_legal_json_never_breaks_a_batch(client: TestClient, secret_key: str,
                                                 store: EventStore) -> None:
    odd = [
        make_event(properties={"nested": {"deep": [1, {"x": None}]}, "flag": True}),
        make_event(customer_id=10 ** 30, product_id=17),
        make_event(customer_id="  ", product_id="p-\u00e9\u4e2d\U0001f600"),
        make_event(timestamp=1_700_000_000.25, price="12.5", quantity="3"),
        make_event(properties="{\"as\": \"text\"}"),
        make_event(properties="not json"),
        make_event(event_id="", session_id=""),
        make_event(timestamp=10 ** 20),
        {},
        make_event(query="x" * 600, event_type="search", product_id=None),
    ]
    response = post(client, secret_key, odd)
    body = response.json()
    assert response.status_code == 200
    assert body["accepted"] + len(body["rejected"]) == len(odd)
    assert store.count_events() == body["accepted"] >= 4
    assert {item["index"] for item in body["rejected"]} >= {1, 2, 5, 7, 8, 9}
    too_big = next(item for item in body["rejected"] if item["index"] == 1)
    assert too_big["field"] == "customer_id" and "out of range" in too_big["detail"]


def test_a_future_timestamp_is_rejected(client: TestClient, secret_key: str,
                                        store: EventStore) -> None:
    future = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=2)).isoformat()
    response = post(client, secret_key, [make_event(timestamp=future)])
    assert response.json()["rejected"][0]["reason"] == "future_timestamp"
    assert "after the receive time" in response.json()["rejected"][0]["detail"]
    assert store.count_events() == 0


# -- refused requests ------------------------------------------------------------------------------


def test_malformed_json_gets_400_with_where(client: TestClient, secret_key: str) -> None:
    response = client.post("/v1/events", content=b'{"events": [{"event_id": "a",}]}',
                           headers={"X-Tailor-Key": secret_key, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")
    assert "line 1 column" in response.json()["error"]


@pytest.mark.parametrize(("body", "words"), [
    (b'{"events": [{"price": NaN}]}', "NaN is not a JSON number"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("{\"events\": []}".encode("utf-16"), "not UTF-8"),
])
def test_json_that_python_would_bend_gets_400(client: TestClient, secret_key: str, body: bytes,
                                              words: str) -> None:
    response = client.post("/v1/events", content=body, headers={
        "X-Tailor-Key": secret_key, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert words in response.json()["error"]


@pytest.mark.parametrize("body", [{"event": []}, {"events": "many"}, "just text", 7])
def test_a_body_of_the_wrong_shape_gets_400(client: TestClient, secret_key: str, body: Any) -> None:
    response = client.post("/v1/events", json=body, headers={"X-Tailor-Key": secret_key})
    assert response.status_code == 400
    assert "events" in response.json()["error"]


def test_an_unreadable_sent_at_gets_400(client: TestClient, secret_key: str) -> None:
    response = post(client, secret_key, [make_event()], sent_at="half past nine")
    assert response.status_code == 400
    assert response.json()["error"].startswith("sent_at: cannot parse")


def test_too_many_events_gets_413(client: TestClient, secret_key: str, store: EventStore) -> None:
    events = [{"event_type": "click"}] * 501
    response = post(client, secret_key, events)
    assert response.status_code == 413
    assert "501 events is over the limit of 500" in response.json()["error"]
    assert store.count_events() == 0


def test_a_body_over_the_byte_limit_gets_413(client: TestClient, secret_key: str) -> None:
    padding = "x" * 500
    events = [make_event(properties={"padding": padding}) for _ in range(2_200)]  # > 1 MiB
    response = client.post("/v1/events", content=json.dumps(events).encode(),
                           headers={"X-Tailor-Key": secret_key, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "1,048,576 bytes" in response.json()["error"]


def test_a_lying_content_length_cannot_get_a_big_body_read(client: TestClient,
                                                           secret_key: str) -> None:
    big = json.dumps([make_event(properties={"padding": "y" * 1_000}) for _ in range(1_200)])
    response = client.post("/v1/events", content=big.encode(), headers={
        "X-Tailor-Key": secret_key, "Content-Type": "application/json", "Content-Length": "100"})
    assert response.status_code == 413


def test_body_reading_stops_at_the_cap_without_a_content_length() -> None:
    chunks_sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal chunks_sent
        chunks_sent += 1
        return {"type": "http.request", "body": b"z" * 1_000, "more_body": True}  # endless

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    import asyncio

    with pytest.raises(RequestError) as refused:
        asyncio.run(read_capped_body(request, max_bytes=10_000))
    assert refused.value.status == 413
    assert chunks_sent == 11  # the first chunk over 10,000 bytes, and not one more


def test_a_wrong_content_type_gets_415(client: TestClient, secret_key: str) -> None:
    response = client.post("/v1/events", content=b"events=1", headers={
        "X-Tailor-Key": secret_key, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_a_missing_key_gets_401(client: TestClient, store: EventStore) -> None:
    response = post(client, None, [make_event()])
    assert response.status_code == 401
    assert "X-Tailor-Key" in response.json()["error"]
    assert store.count_events() == 0


def test_an_unknown_key_gets_403(client: TestClient, store: EventStore) -> None:
    response = post(client, "tlr_pk_" + "0" * 40, [make_event()])
    assert response.status_code == 403
    assert "unknown key" in response.json()["error"]
    assert store.count_events() == 0


def test_a_secret_key_in_the_url_gets_403(client: TestClient, secret_key: str) -> None:
    response = client.post(f"/v1/events?key={secret_key}", json=[make_event()])
    assert response.status_code == 403
    assert "never in a URL" in response.json()["error"]


def test_a_bearer_token_works_like_the_key_header(client: TestClient, secret_key: str) -> None:
    response = client.post("/v1/events", json=[make_event()],
                           headers={"Authorization": f"Bearer {secret_key}"})
    assert response.json()["accepted"] == 1


# -- public keys, origins and CORS -----------------------------------------------------------------


def test_a_beacon_with_the_public_key_in_the_query_is_stored(client: TestClient, public_key: str,
                                                             store: EventStore) -> None:
    body = json.dumps({"sent_at": pd.Timestamp.now(tz="UTC").isoformat(), "events": [make_event()]})
    response = client.post(f"/v1/events?key={public_key}", content=body.encode(), headers={
        "Content-Type": "text/plain;charset=UTF-8", "Origin": SHOP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert store.count_events() == 1


def test_a_public_key_from_another_origin_gets_403(client: TestClient, public_key: str,
                                                   store: EventStore) -> None:
    response = post(client, public_key, [make_event()], origin="https://evil.example")
    assert response.status_code == 403
    assert "https://evil.example" in response.json()["error"]
    assert "access-control-allow-origin" not in response.headers
    assert store.count_events() == 0


def test_an_allowed_origin_gets_cors_headers(client: TestClient, public_key: str) -> None:
    response = post(client, public_key, [make_event()], origin=SHOP)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert response.headers["vary"] == "Origin"


def test_an_allowed_origin_can_read_a_refusal_too(client: TestClient, public_key: str) -> None:
    response = client.post("/v1/events", content=b"{oops", headers={
        "X-Tailor-Key": public_key, "Origin": SHOP, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == SHOP


def test_a_secret_key_works_from_any_origin_without_cors(client: TestClient,
                                                         secret_key: str) -> None:
    response = post(client, secret_key, [make_event()], origin="https://backoffice.example")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_the_preflight_answers_allowed_origins_only(client: TestClient) -> None:
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type, x-tailor-key"}
    allowed = client.options("/v1/events", headers={"Origin": SHOP, **asked})
    refused = client.options("/v1/events", headers={"Origin": "https://evil.example", **asked})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "X-Tailor-Key" in allowed.headers["access-control-allow-headers"]
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers


# -- enrichment and privacy -----------------------------------------------------------------


def test_a_skewed_client_clock_is_corrected_and_its_time_kept(client: TestClient, secret_key: str,
                                                              store: EventStore) -> None:
    now = pd.Timestamp.now(tz="UTC")
    client_clock = now - pd.Timedelta(hours=1)  # the shopper's clock is an hour slow
    client_time = (client_clock - pd.Timedelta(seconds=30)).isoformat()
    post(client, secret_key, [make_event(timestamp=client_time)], sent_at=client_clock.isoformat())
    stored = store.events_after(0, 1).iloc[0]
    assert abs((stored["timestamp"] - (now - pd.Timedelta(seconds=30))).total_seconds()) < 5
    properties = json.loads(stored["properties"])
    assert properties["client_timestamp"] == client_time
    assert properties["clock_skew_seconds"] == pytest.approx(3600, abs=5)


def test_skew_correction_works_on_epoch_seconds_too(client: TestClient, secret_key: str,
                                                   store: EventStore) -> None:
    now = pd.Timestamp.now(tz="UTC")
    client_clock = now - pd.Timedelta(minutes=10)
    response = post(client, secret_key, [make_event(timestamp=int(client_clock.timestamp()))],
                    sent_at=client_clock.timestamp())
    assert response.json()["accepted"] == 1
    stored = store.events_after(0, 1).iloc[0]
    assert abs((stored["timestamp"] - now).total_seconds()) < 5
    assert json.loads(stored["properties"])["client_timestamp"] == int(client_clock.timestamp())


def test_a_fast_client_clock_does_not_make_events_future(client: TestClient, secret_key: str,
                                                         store: EventStore) -> None:
    client_clock = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=20)
    response = post(client, secret_key, [make_event(timestamp=client_clock.isoformat())],
                    sent_at=client_clock.isoformat())
    assert response.json()["accepted"] == 1
    assert store.events_after(0, 1)["timestamp"].iloc[0] <= pd.Timestamp.now(tz="UTC")


def test_a_time_the_skew_would_carry_out_of_range_fails_only_its_event(
        client: TestClient, secret_key: str, store: EventStore) -> None:
    client_clock = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=2)
    edge = make_event(timestamp="2262-04-11T23:47:16Z")  # + 2 h is past pandas' last time
    good = make_event(timestamp=(client_clock - pd.Timedelta(minutes=1)).isoformat())
    response = post(client, secret_key, [edge, good], sent_at=client_clock.isoformat())
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1 and [item["index"] for item in body["rejected"]] == [0]
    assert body["rejected"][0]["reason"] == "future_timestamp"
    assert store.events_after(0, 10)["event_id"].tolist() == [good["event_id"]]


def test_clock_skew_is_ignored_within_tolerance_and_when_absurd() -> None:
    received = pd.Timestamp.now(tz="UTC").to_pydatetime()
    assert clock_skew_seconds(None, received) == 0.0
    assert clock_skew_seconds(received - pd.Timedelta(seconds=1), received) == 0.0
    assert clock_skew_seconds(received - pd.Timedelta(days=400), received) == 0.0
    assert clock_skew_seconds(received - pd.Timedelta(seconds=90), received) == pytest.approx(90)


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        (IPHONE, "mobile"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 "
         "Mobile Safari/537.36",
         "mobile"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
         "tablet"),
        ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
         "tablet"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
         "desktop"),
        ("", None),
    ],
)
def test_device_type_from_user_agent(user_agent: str, device: str | None) -> None:
    assert device_type_from_user_agent(user_agent) == device


def test_browser_events_get_the_device_of_their_user_agent(client: TestClient, public_key: str,
                                                           secret_key: str,
                                                           store: EventStore) -> None:
    from_phone = make_event()
    says_tablet = make_event(device_type="tablet")
    from_server = make_event()
    post(client, public_key, [from_phone, says_tablet], origin=SHOP, **{"User-Agent": IPHONE})
    post(client, secret_key, [from_server], **{"User-Agent": IPHONE})
    device = store.events_after(0, 10).set_index("event_id")["device_type"]
    assert device[from_phone["event_id"]] == "mobile"
    assert device[says_tablet["event_id"]] == "tablet"  # the event's own value wins
    assert device[from_server["event_id"]] is None  # a server's User-Agent is not the shopper's


def test_no_ip_address_is_stored_only_a_coarse_region(client: TestClient, public_key: str,
                                                      settings: Settings,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    address = "203.0.113.77"
    headers = {"X-Forwarded-For": address, "X-Real-IP": address, "CF-IPCountry": "de",
               "User-Agent": IPHONE}
    caplog.set_level("DEBUG")
    post(client, public_key, [make_event(), make_event(event_type="teleport")], origin=SHOP,
         **headers)
    with sqlite3.connect(settings.event_store_url.removeprefix("sqlite:///")) as connection:
        dump = "\n".join(connection.iterdump())
        properties = connection.execute("SELECT properties FROM events").fetchone()[0]
    assert "teleport" in dump  # the dump holds both tables' rows...
    assert address not in dump and "testclient" not in dump  # ...and no client address
    assert address not in caplog.text
    assert json.loads(properties)["region"] == "DE"


# -- operations ------------------------------------------------------------------------------------


def test_metrics_count_accepted_rejected_duplicates_and_latency(client: TestClient,
                                                                secret_key: str) -> None:
    events = [make_event(), make_event(), make_event(price=-3)]
    post(client, secret_key, events)
    post(client, secret_key, events)
    post(client, None, events)
    text = client.get("/metrics", headers={"X-Tailor-Key": secret_key}).text

    def value(line_start: str) -> float:
        return float(next(line for line in text.splitlines() if line.startswith(line_start + " "))
                     .split()[-1])

    assert value("tailor_collector_events_accepted_total") == 2
    assert value("tailor_collector_events_duplicate_total") == 2
    assert value('tailor_collector_events_rejected_total{reason="nonpositive_price"}') == 2
    assert value('tailor_collector_requests_total{status="200"}') == 2
    assert value('tailor_collector_requests_total{status="401"}') == 1
    assert value("tailor_collector_request_duration_seconds_count") == 3


def test_each_app_has_its_own_metrics(settings: Settings, secret_key: str) -> None:
    first, second = create_collector_app(settings), create_collector_app(settings)
    assert first.state.collector.metrics.registry is not second.state.collector.metrics.registry


def test_an_ingest_run_sums_the_batches(settings: Settings, secret_key: str,
                                        store: EventStore) -> None:
    events = [make_event(), make_event(event_type="teleport")]
    with TestClient(create_collector_app(settings)) as test_client:
        post(test_client, secret_key, events)
        post(test_client, secret_key, events)
    runs = store.ingest_runs()
    assert len(runs) == 1
    run = runs.iloc[0]
    assert (run["source"], run["received"], run["accepted"], run["duplicates"]) == (
        "collector", 4, 1, 1)
    assert run["rejected"] == {"malformed_row": 2}
    with sqlite3.connect(settings.event_store_url.removeprefix("sqlite:///")) as connection:
        event_batches = connection.execute("SELECT DISTINCT batch_id FROM events").fetchall()
        dead_batches = connection.execute(
            "SELECT DISTINCT batch_id FROM rejected_events").fetchall()
    assert event_batches == dead_batches == [(run["batch_id"],)]  # the run explains every row


def test_healthz_and_tracker_script(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    script = client.get("/tailor.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert "sendBeacon" in script.text


def test_the_served_tracker_ends_sessions_after_the_configured_gap(
        settings: Settings, public_key: str) -> None:
    """tailor.js idles out a session after `events.session_gap_minutes`, the gap the
    warehouse's sessions and the session features use: the collector writes it in."""
    default = TestClient(create_collector_app(settings)).get("/tailor.js").text
    assert "const SESSION_GAP_MINUTES = 30;" in default
    assert "const SESSION_IDLE_MS = SESSION_GAP_MINUTES * 60 * 1000;" in default
    longer = settings.replace(events_session_gap_minutes=45)
    served = TestClient(create_collector_app(longer)).get("/tailor.js")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/javascript")
    assert "const SESSION_GAP_MINUTES = 45;" in served.text
    assert "SESSION_GAP_MINUTES = 30" not in served.text
    assert served.text.replace("= 45;", "= 30;", 1) == default  # nothing else changed


def test_a_tracker_without_its_session_gap_line_fails_loudly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tailor.events.collector import tracker

    edited = tmp_path / "tailor.js"
    edited.write_text("const SESSION_IDLE_MS = 30 * 60 * 1000;\n")
    monkeypatch.setattr(tracker, "TRACKER_FILE", edited)
    tracker.render_tracker_script.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="SESSION_GAP_MINUTES"):
            tracker.render_tracker_script(30)
    finally:
        tracker.render_tracker_script.cache_clear()


def test_a_store_that_cannot_open_answers_503(tmp_path: Path, secret_key: str,
                                              settings: Settings) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    broken = settings.replace(database_url=f"sqlite:///{blocker / 'events.db'}")
    test_client = TestClient(create_collector_app(broken))  # no lifespan: starts on first batch
    response = post(test_client, secret_key, [make_event()])
    assert response.status_code == 503
    assert "retry" in response.json()["error"]
    assert test_client.get("/healthz").status_code == 503


def test_the_demo_shop_is_off_unless_asked_for(settings: Settings) -> None:
    plain = TestClient(create_collector_app(settings))
    assert plain.get("/shop/").status_code == 404
    own_origin = "http://testserver"  # where the shop is served: the test client's origin
    with TestClient(create_collector_app(settings, demo_shop=True,
                                         shop_origins=frozenset({own_origin}))) as shop:
        page = shop.get("/shop/")
        assert page.status_code == 200 and "tailor.js" in page.text
        config = shop.get("/shop/config.js").text
        demo_key = json.loads(config.split("=", 1)[1].rstrip(";\n"))["key"]
        response = post(shop, demo_key, [make_event()], origin=own_origin)
        assert response.status_code == 200, response.text
    assert create_collector_app(settings).state.collector.key_ring.kind_of(demo_key) is None


# -- the writer groups batches without mixing them up -----------------------------------------


def test_batches_validated_together_are_answered_separately(settings: Settings,
                                                            store: EventStore) -> None:
    shared = make_event()
    results = run_one_group(settings, [
        [make_event(), make_event(price=-1), shared],
        ["bad", make_event(event_type="teleport")],
        [shared, make_event(), make_event(customer_id=None)],
    ])
    assert [(r.accepted, r.duplicates) for r in results] == [(2, 0), (0, 0), (1, 1)]
    assert [[(item["index"], item["reason"]) for item in r.rejected] for r in results] == [
        [(1, "nonpositive_price")],
        [(0, "malformed_row"), (1, "malformed_row")],
        [(2, "missing_customer_id")],
    ]
    assert store.count_events() == 3


def test_a_retry_grouped_with_new_batches_is_counted_per_batch(settings: Settings,
                                                               store: EventStore) -> None:
    stored_before = [make_event() for _ in range(3)]
    run_one_group(settings, [stored_before])
    fresh = [make_event() for _ in range(4)]
    results = run_one_group(settings, [fresh[:2], stored_before + [fresh[2]], [fresh[3]]])
    assert [(r.accepted, r.duplicates) for r in results] == [(2, 0), (1, 3), (1, 0)]
    assert store.count_events() == 7


# -- keys ------------------------------------------------------------------------------------------


def test_keys_are_stored_hashed_and_owner_readable(settings: Settings) -> None:
    keys_file = keys_file_path(settings)
    plain = create_key("secret", keys_file)
    text = keys_file.read_text()
    assert plain not in text and hash_key(plain) in text
    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    ring = load_key_ring(settings)
    assert ring.kind_of(plain) == "secret"
    assert ring.kind_of(plain + "x") is None


def test_key_hashes_can_come_from_settings(settings: Settings) -> None:
    configured = settings.replace(collector_public_key_hashes=hash_key("tlr_pk_from_env"))
    assert load_key_ring(configured).kind_of("tlr_pk_from_env") == "public"
    with pytest.raises(ValueError, match="public_key_hashes"):
        load_key_ring(settings.replace(collector_public_key_hashes="not-a-hash"))


def test_a_key_created_while_running_is_accepted(client: TestClient, settings: Settings,
                                                 store: EventStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The ring looks at the keys file at most once a second; here at every request.
    monkeypatch.setattr(client.app.state.collector.key_ring.keys_file_watch,
                        "recheck_seconds", 0.0)
    later_key = create_key("secret", keys_file_path(settings))
    assert post(client, later_key, [make_event()]).status_code == 200


def test_a_malformed_keys_file_is_refused_at_start(settings: Settings) -> None:
    keys_file = keys_file_path(settings)
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    keys_file.write_text('{"keys": [{"kind": "admin", "sha256": "00"}]}')
    with pytest.raises(ValueError, match="entry 0"):
        create_collector_app(settings)


def test_cli_creates_a_key_the_collector_accepts(tailor_home: Path, settings: Settings) -> None:
    result = CliRunner().invoke(cli_app, ["keys", "create", "public", "--json",
                                          "--home", str(tailor_home)])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["kind"] == "public" and created["key"].startswith("tlr_pk_")
    assert load_key_ring(settings).kind_of(created["key"]) == "public"
    refused = CliRunner().invoke(cli_app, ["keys", "create", "admin", "--home", str(tailor_home)])
    assert refused.exit_code == 2


# -- PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_stores_a_batch_once(postgres_url: str, settings: Settings,
                                      secret_key: str) -> None:
    on_postgres = settings.replace(database_url=postgres_url)
    events = [make_event(), make_event(), make_event(price=0)]
    with TestClient(create_collector_app(on_postgres)) as test_client:
        first = post(test_client, secret_key, events).json()
        again = post(test_client, secret_key, events).json()
    assert (first["accepted"], first["duplicates"], len(first["rejected"])) == (2, 0, 1)
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    store = open_event_store(postgres_url)
    try:
        assert set(store.events_after(0, 10)["event_id"]) == {e["event_id"] for e in events[:2]}
        assert store.rejected_counts() == {"nonpositive_price": 2}
        assert store.ingest_runs()["accepted"].sum() == 2
    finally:
        store.close()
