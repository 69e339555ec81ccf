"""The requests of the security probe against the real collector app and store.

Each test sends what the probe sent (raw bytes where the JSON matters: `"\\ud800"` is a lone
surrogate only when escaped like that) and checks the answer and what the store holds:
a bad value is a `malformed_row` of its own event naming the field, its neighbours are
stored, the dead letter keeps it, and no batch of anybody else fails. A Hypothesis run
mixes such values into otherwise valid batches.
"""

from __future__ import annotations

import json
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

with warnings.catch_warnings():  # Starlette now suggests httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

import tailor.events.collector.writer as writer_module
from tailor.config import Settings
from tailor.events.collector.access import bound_origins
from tailor.events.collector.app import create_collector_app
from tailor.events.schema import EVENT_COLUMNS, STRING_COLUMNS
from tailor.events.store import EventStore, open_event_store

from writer_groups import run_one_group

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

SHOP = "https://shop.example"
SURROGATE_FIELDS = ["customer_id", "product_id", "session_id", "event_id", "device_type",
                    "query", "order_id"]


def make_event(**fields: Any) -> dict[str, Any]:
    """A valid product_view from a minute ago; keyword arguments replace or add fields."""
    event = {"event_id": uuid.uuid4().hex, "customer_id": "c-1", "event_type": "product_view",
             "product_id": "p-1", "session_id": "s-1",
             "timestamp": (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)).isoformat()}
    event.update(fields)
    return event


def body_of(events: list[Any]) -> bytes:
    """A batch as JSON bytes the way a hostile client writes it (surrogates as \\u escapes)."""
    return json.dumps({"events": events}).encode("ascii")


def post_raw(client: TestClient, key: str, body: bytes, **headers: str):
    return client.post("/v1/events", content=body,
                       headers={"Content-Type": "application/json", "X-Tailor-Key": key,
                                **headers})


# -- lone surrogates -------------------------------------------------------------------


def test_the_probes_exact_request_is_a_malformed_row_not_a_503(client: TestClient,
                                                               public_key: str,
                                                               store: EventStore) -> None:
    body = (b'{"events":[{"event_id":"x","customer_id":"\\ud800","event_type":"page_view",'
            b'"timestamp":"2026-12-02T02:00:00Z"}]}')
    response = post_raw(client, public_key, body)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 0
    [rejected] = response.json()["rejected"]
    assert (rejected["index"], rejected["reason"], rejected["field"]) == (
        0, "malformed_row", "customer_id")
    assert "lone surrogate" in rejected["detail"]
    dead = store.rejected_rows()
    assert len(dead) == 1 and "\\ud800" in dead["raw"][0]  # kept, escaped
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("field", SURROGATE_FIELDS + ["properties"])
def test_a_lone_surrogate_in_any_text_field_refuses_that_event_only(
        client: TestClient, public_key: str, store: EventStore, field: str) -> None:
    value: Any = {"note": "bad \udfff"} if field == "properties" else "bad \ud800 text"
    good = [make_event(), make_event(event_type="search", product_id=None, query="shirt")]
    response = post_raw(client, public_key, body_of([good[0], make_event(**{field: value}),
                                                     good[1]]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [(item["index"], item["reason"], item["field"]) for item in body["rejected"]] == [
        (1, "malformed_row", field)]
    assert set(store.events_after(0, 10)["event_id"]) == {event["event_id"] for event in good}
    dead = store.rejected_rows()
    assert len(dead) == 1 and json.loads(dead["raw"][0])[field] == value  # nothing lost


def test_a_lone_surrogate_customer_id_is_kept_in_the_dead_letter_for_deletion(
        client: TestClient, secret_key: str, store: EventStore) -> None:
    response = post_raw(client, secret_key, body_of([make_event(customer_id="c-\ud800")]))
    assert response.status_code == 200
    assert store.rejected_rows()["reason"].tolist() == ["malformed_row"]


def test_postgres_takes_surrogate_batches_as_malformed_rows(postgres_url: str, settings: Settings,
                                                            secret_key: str) -> None:
    on_postgres = settings.replace(database_url=postgres_url)
    events = [make_event(), make_event(customer_id="\ud800", device_type="\udc00"),
              make_event(properties={"k\ud83d": 1})]
    with TestClient(create_collector_app(on_postgres)) as test_client:
        response = post_raw(test_client, secret_key, body_of(events))
    assert response.status_code == 200, response.text
    assert [(item["index"], item["field"]) for item in response.json()["rejected"]] == [
        (1, "customer_id"), (2, "properties")]
    store = open_event_store(postgres_url)
    try:
        assert store.events_after(0, 10)["event_id"].tolist() == [events[0]["event_id"]]
        dead = store.rejected_rows()
        assert len(dead) == 2 and dead["raw"].str.contains("\\ud", regex=False).all()
    finally:
        store.close()


class PoisonedStore:
    """A real store whose event inserts fail when they hold one event id (a stand-in for any
    fault one batch can cause), so the writer's grouping can be checked on its own."""

    def __init__(self, store: EventStore, poison: str) -> None:
        self._store, self.poison = store, poison

    def insert_events(self, events: pd.DataFrame, batch_id: str) -> int:
        if (events["event_id"] == self.poison).any():
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return self._store.insert_events(events, batch_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_one_batch_failing_its_commit_fails_none_of_its_neighbours(
        settings: Settings, store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    poison = make_event(event_id="poison")
    monkeypatch.setattr(writer_module, "open_event_store",
                        lambda url: PoisonedStore(open_event_store(url), "poison"))
    good = [[make_event(), make_event(price=-1)] for _ in range(6)]
    outcomes = run_one_group(settings, [*good[:3], [poison, make_event(event_type="x")],
                                        *good[3:]])
    assert isinstance(outcomes[3], UnicodeEncodeError)  # only the batch at fault
    results = outcomes[:3] + outcomes[4:]
    assert [(r.accepted, len(r.rejected)) for r in results] == [(1, 1)] * 6
    assert store.count_events() == 6
    # Dead letters of the group were written once, not again by the one-by-one retry.
    assert store.rejected_counts() == {"nonpositive_price": 6, "malformed_row": 1}


def test_surrogate_batches_beside_normal_senders_fail_nobody(settings: Settings,
                                                             store: EventStore) -> None:
    bad = [[make_event(customer_id="\ud800")] for _ in range(4)]
    normal = [[make_event(), make_event()] for _ in range(12)]
    outcomes = run_one_group(settings, [batch for pair in zip(normal, bad * 3)
                                        for batch in pair])
    assert all(not isinstance(outcome, BaseException) for outcome in outcomes)
    assert store.count_events() == 24
    assert sum(len(outcome.rejected) for outcome in outcomes) == 12


# -- numbers too large -----------------------------------------------------------------


@pytest.mark.parametrize(("fields_json", "field", "words"), [
    ('"quantity": 1000000000000000000000000000000', "quantity", "1e+30 is out of range"),
    ('"quantity": 1e400', "quantity", "inf is not a finite number"),
    ('"event_id": 10000000000000000000000000000000000000000', "event_id",
     "must be a string or an integer of at most 19 digits"),
    ('"customer_id": 1e300', "customer_id", "out of range"),
    ('"price": 1e300', "price", "1e+300 is out of range"),
    # Times past the storable range are implausible_timestamp (docs/architecture.md).
    ('"timestamp": 1000000000000000000000000000000', "timestamp", "after year 2261"),
    ('"timestamp": 1e300', "timestamp", "after year 2261"),
    ('"properties": {"n": 1000000000000000000000000000000}', "properties", "out of range"),
    ('"properties": {"n": 1e400}', "properties", "out of range"),
])
def test_a_number_too_large_is_named_not_an_internal_error(client: TestClient, secret_key: str,
                                                           store: EventStore, fields_json: str,
                                                           field: str, words: str) -> None:
    bad = json.dumps(make_event())[:-1] + ", " + fields_json + "}"
    good = make_event()
    body = ('{"events": [' + json.dumps(good) + ", " + bad + "]}").encode()
    response = post_raw(client, secret_key, body)
    assert response.status_code == 200, response.text
    [rejected] = response.json()["rejected"]
    reason = "implausible_timestamp" if field == "timestamp" else "malformed_row"
    assert (rejected["index"], rejected["reason"], rejected["field"]) == (1, reason, field)
    assert words in rejected["detail"] and "could not be checked" not in rejected["detail"]
    assert store.events_after(0, 10)["event_id"].tolist() == [good["event_id"]]


# -- a secret key in the URL -------------------------------------------------------------


def test_a_secret_key_in_the_url_is_refused_even_beside_a_public_header(
        client: TestClient, public_key: str, secret_key: str, store: EventStore) -> None:
    response = client.post(f"/v1/events?key={secret_key}", content=body_of([make_event()]),
                           headers={"Content-Type": "application/json",
                                    "X-Tailor-Key": public_key})
    assert response.status_code == 403
    assert "rotate" in response.json()["error"]
    also_secret_header = client.post(f"/v1/events?key={secret_key}",
                                     content=body_of([make_event()]),
                                     headers={"Content-Type": "application/json",
                                              "X-Tailor-Key": secret_key})
    assert also_secret_header.status_code == 403
    assert store.count_events() == 0


# -- the demo shop's own origin -------------------------------------------------------------


def test_the_demo_shop_does_not_trust_the_host_header(settings: Settings,
                                                      store: EventStore) -> None:
    served_at = f"http://127.0.0.1:{settings.serving_port}"
    with TestClient(create_collector_app(settings, demo_shop=True)) as shop:
        config = shop.get("/shop/config.js").text
        demo_key = json.loads(config.split("=", 1)[1].rstrip(";\n"))["key"]
        evil = {"Host": "evil.example", "Origin": "http://evil.example"}
        preflight = shop.options("/v1/events", headers={
            **evil, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 403
        assert "access-control-allow-origin" not in preflight.headers
        refused = post_raw(shop, demo_key, body_of([make_event()]), **evil)
        assert refused.status_code == 403
        own = shop.options("/v1/events", headers={"Origin": served_at,
                                                  "Access-Control-Request-Method": "POST"})
        assert own.status_code == 204
        assert own.headers["access-control-allow-origin"] == served_at
        assert post_raw(shop, demo_key, body_of([make_event()]),
                        Origin=served_at).status_code == 200
    assert store.count_events() == 1


def test_the_standalone_demo_shop_is_bound_to_its_own_address() -> None:
    assert bound_origins("127.0.0.1", 8700) == {
        "http://127.0.0.1:8700", "http://localhost:8700", "http://[::1]:8700"}
    assert bound_origins("shop.internal", 80) == {"http://shop.internal:80"}


# -- fuzzing: hostile values mixed into valid batches -----------------------------------------

LONE_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=20),
    st.builds(lambda head, bad, tail: head + bad + tail, st.text(max_size=5), LONE_SURROGATES,
              st.text(max_size=5)),
)
HUGE_INTEGERS = st.one_of(st.integers(min_value=2 ** 53, max_value=10 ** 400),
                          st.integers(min_value=-(10 ** 400), max_value=-(2 ** 53)))
HOSTILE_VALUE = st.one_of(HOSTILE_TEXT, HUGE_INTEGERS, st.floats(allow_nan=False,
                                                                 allow_infinity=False),
                          st.none(), st.booleans())
HOSTILE_PROPERTIES = st.dictionaries(HOSTILE_TEXT, st.one_of(HOSTILE_TEXT, HUGE_INTEGERS,
                                                             st.integers()), max_size=3)


@st.composite
def hostile_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with a few fields replaced by hostile values."""
    event: dict[str, Any] = make_event()
    for name in draw(st.lists(st.sampled_from([*EVENT_COLUMNS]), max_size=4, unique=True)):
        event[name] = draw(HOSTILE_PROPERTIES if name == "properties" else HOSTILE_VALUE)
    return event


@given(batch=st.lists(hostile_events(), min_size=1, max_size=8))
@hypothesis_settings(max_examples=60, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
def test_hostile_values_never_fail_a_batch_or_its_good_events(client: TestClient,
                                                              secret_key: str,
                                                              batch: list[dict[str, Any]]) -> None:
    sentinel = make_event()
    response = post_raw(client, secret_key, body_of([sentinel, *batch]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] + body["duplicates"] + len(body["rejected"]) == len(batch) + 1
    assert 0 not in {item["index"] for item in body["rejected"]}
    for item in body["rejected"]:
        assert item["field"] in (*STRING_COLUMNS, "timestamp", "price", "quantity",
                                 "properties", "event"), item
        assert "could not be checked" not in item["detail"], item
    assert client.get("/healthz").status_code == 200


def test_clock_skew_correction_survives_hostile_timestamps(client: TestClient, secret_key: str,
                                                           store: EventStore) -> None:
    sent_at = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=5)).isoformat()
    good = make_event()
    body = ('{"sent_at": "' + sent_at + '", "events": [' + json.dumps(good) + ", "
            + json.dumps(make_event())[:-1] + ', "timestamp": 1' + "0" * 400 + "}, "
            + json.dumps(make_event(timestamp="2026-01-01T00:00:00Z\ud800")) + "]}").encode()
    response = post_raw(client, secret_key, body)
    assert response.status_code == 200, response.text
    assert [(item["index"], item["field"]) for item in response.json()["rejected"]] == [
        (1, "timestamp"), (2, "timestamp")]
    assert store.events_after(0, 10)["event_id"].tolist() == [good["event_id"]]
