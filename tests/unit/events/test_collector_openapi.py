"""Hostile requests against the collector app in-process: schemathesis from its own OpenAPI
spec (`GET /openapi.json`), valid and invalid requests, none a 5xx and none that stores
anything when refused; Hypothesis over bad, revoked, expired and wrong-scope keys, wrong
content types and bodies that are not a batch: each a 4xx with the store unchanged."""

from __future__ import annotations

import json
import uuid
import warnings
from datetime import datetime, timezone
from typing import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from schemathesis import GenerationMode

with warnings.catch_warnings():  # Starlette suggests httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from tailor.config import Settings
from tailor.events.collector.app import create_collector_app
from tailor.events.collector.segment_routes import PATHS as SEGMENT_PATHS
from tailor.events.keys import (
    ADMIN,
    RECOMMENDATIONS_READ,
    create_key,
    keys_file_path,
    read_key_entries,
    revoke_key,
)
from tailor.events.store import EventStore
from tailor.privacy.excluded_customers import exclusion_reasons
from tailor.privacy.opt_out_list import OptOutList

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

EXAMPLES = 60
SHOP = "https://shop.example"


def stored(store: EventStore) -> tuple[int, int]:
    """(events, dead letters) in the store: what a refused request must leave alone."""
    return store.count_events(), sum(store.rejected_counts().values())


def valid_event() -> dict:
    return {"event_id": uuid.uuid4().hex, "customer_id": "c-1", "event_type": "page_view",
            "timestamp": datetime.now(timezone.utc).isoformat()}


@pytest.fixture
def bad_keys(settings: Settings) -> dict[str, str]:
    """Keys the collector must refuse for events, each for its own reason."""
    path = keys_file_path(settings)
    revoked = create_key("secret", path, "revoked")
    revoke_key(path, read_key_entries(path)[-1]["id"])
    expired = create_key("secret", path, "expired", expires_in_days=1)
    entries = read_key_entries(path)
    entries[-1]["expires_at"] = "2021-01-01T00:00:00+00:00"
    path.write_text(json.dumps({"keys": entries}))
    return {"revoked": revoked, "expired": expired,
            "admin only": create_key("secret", path, "ops", scopes=[ADMIN]),
            "read only": create_key("secret", path, "reader", scopes=[RECOMMENDATIONS_READ]),
            "unknown": "tlr_sk_" + "0" * 40}


@pytest.fixture
def guarded(settings: Settings, public_key: str, secret_key: str,
            bad_keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_collector_app(settings)) as client:
        yield client


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_no_request_generated_from_the_spec_gets_a_5xx(settings: Settings, secret_key: str,
                                                       store: EventStore,
                                                       mode: GenerationMode) -> None:
    app = create_collector_app(settings, opt_outs=OptOutList(settings))
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = {f"{result.ok().method.upper()} {result.ok().path}"
                  for result in api.get_all_operations()}
    assert {"POST /v1/events", "GET /metrics", "GET /t/c/{token}", "POST /v1/opt-out",
            "POST /v1/customers/{customer_id}/opt-out"} <= operations
    called: set[str] = set()

    @given(case=api.as_strategy(mode))
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    def call(case) -> None:
        before = stored(store)
        response = case.call(headers={"X-Tailor-Key": secret_key})
        called.add(f"{case.method.upper()} {case.path}")
        assert response.status_code < 500, (f"{case.method} {case.path} {case.body!r:.300} -> "
                                             f"{response.status_code}: {response.text[:300]}")
        if case.path == "/v1/events" and response.status_code != 200:
            assert stored(store) == before, "a refused batch left rows behind"

    call()
    assert "POST /v1/events" in called


KEY_PLACES = st.sampled_from(["header", "bearer", "query"])


@given(which=st.sampled_from(["revoked", "expired", "admin only", "read only", "unknown",
                              "none", "garbage"]),
       place=KEY_PLACES, garbage=st.text(st.characters(exclude_categories=("Cc", "Cs")),
                                          max_size=80))
@hypothesis_settings(max_examples=80, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_bad_keys_get_4xx_and_change_nothing(guarded: TestClient, bad_keys: dict[str, str],
                                             store: EventStore, which: str, place: str,
                                             garbage: str) -> None:
    key = {"none": "", "garbage": garbage}.get(which) or bad_keys.get(which, "")
    headers, params = {"Content-Type": "application/json"}, {}
    if key and place == "header":
        headers["X-Tailor-Key"] = key.encode("utf-8")  # type: ignore[assignment]
    elif key and place == "bearer":
        headers["Authorization"] = b"Bearer " + key.encode("utf-8")  # type: ignore[assignment]
    elif key:
        params["key"] = key
    before = stored(store)
    answer = guarded.post("/v1/events", content=json.dumps({"events": [valid_event()]}),
                          headers=headers, params=params)
    assert answer.status_code in (401, 403), (which, place, answer.status_code, answer.text)
    assert "error" in answer.json()
    assert stored(store) == before


BODIES = st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda children: st.lists(children, max_size=4)
                 | st.dictionaries(st.text(max_size=8), children, max_size=4),
                 max_leaves=20).map(lambda value: json.dumps(value).encode()),
    st.integers(1, 60_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 60_000).map(lambda depth: b'{"events":' + b"[" * depth + b"]" * depth
                               + b"}"),
)
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "application/xml",
                                 "multipart/form-data; boundary=x", "", "application/json; "
                                 "charset=utf-16", "image/gif"])


@given(body=BODIES, content_type=CONTENT_TYPES)
@hypothesis_settings(max_examples=100, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_bodies_that_are_not_batches_are_4xx_and_store_nothing(
        guarded: TestClient, secret_key: str, store: EventStore, body: bytes,
        content_type: str) -> None:
    before = stored(store)
    headers = {"X-Tailor-Key": secret_key}
    if content_type:
        headers["Content-Type"] = content_type
    answer = guarded.post("/v1/events", content=body, headers=headers)
    assert answer.status_code < 500, (body[:200], answer.status_code, answer.text)
    if answer.status_code != 200:
        assert stored(store) == before
    else:  # an empty list or a batch of non-events: each one dead-lettered, none stored
        result = answer.json()
        assert result["accepted"] == 0
        assert stored(store)[0] == before[0]


def test_an_oversized_body_is_413_and_stores_nothing(guarded: TestClient, secret_key: str,
                                                     settings: Settings,
                                                     store: EventStore) -> None:
    before = stored(store)
    padding = "x" * settings.collector_max_batch_bytes
    big = json.dumps({"events": [{**valid_event(), "query": padding}]})
    answer = guarded.post("/v1/events", content=big, headers={"X-Tailor-Key": secret_key,
                                                              "Content-Type": "application/json"})
    assert answer.status_code == 413 and stored(store) == before
    many = json.dumps({"events": [valid_event()
                                  for _ in range(settings.collector_max_batch_events + 1)]})
    answer = guarded.post("/v1/events", content=many, headers={"X-Tailor-Key": secret_key,
                                                               "Content-Type": "application/json"})
    assert answer.status_code == 413 and stored(store) == before


def test_answers_carry_no_store_and_hsts_when_configured(settings: Settings,
                                                         secret_key: str) -> None:
    with TestClient(create_collector_app(settings.replace(
            collector_hsts_max_age_seconds=600))) as client:
        for answer in (client.get("/healthz"), client.get("/openapi.json"),
                       client.post("/v1/events", json={"events": []})):
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["strict-transport-security"] == "max-age=600; includeSubDomains"
            assert answer.headers["x-content-type-options"] == "nosniff"
        # The tracker may be cached: its own Cache-Control is kept.
        assert client.get("/tailor.js").headers["cache-control"] == "public, max-age=300"
    with TestClient(create_collector_app(settings)) as client:
        assert "strict-transport-security" not in client.get("/healthz").headers


# Routes anyone may call: probes, the tracker, the spec, the mails' tracking links (their
# token is the secret), the CORS preflight, the demo shop.
OPEN_ROUTES = {"/healthz", "/readyz", "/livez", "/tailor.js", "/openapi.json",
               "/t/o/{token}.gif", "/t/c/{token}"}
# Public keys welcome: tailor.js's routes, and Segment's (analytics.js sends from pages).
BROWSER_ROUTES = ("/v1/events", "/v1/opt-out", "/v1/opt-in", *SEGMENT_PATHS)
HOSTILE_SEGMENTS = ["c1", "'; DROP TABLE events; --", "..%2f..%2fetc", "%00", "c" * 600]


def test_every_guarded_route_refuses_missing_and_wrong_keys(settings: Settings, public_key: str,
                                                            secret_key: str,
                                                            store: EventStore) -> None:
    """Also covers routes added later (the privacy endpoints): each one not open refuses a
    request without a key, and a route under /v1/customers refuses every key but an admin
    one, whatever its path holds; nothing is stored by a refused request."""
    import re

    from starlette.routing import Route

    events_only = create_key("secret", keys_file_path(settings), "events only",
                             scopes=["events:write"])
    app = create_collector_app(settings, opt_outs=OptOutList(settings))
    guarded_routes = [route for route in app.routes if isinstance(route, Route)
                      and route.path not in OPEN_ROUTES]
    assert {route.path for route in guarded_routes} >= {"/v1/events", "/metrics"}
    with TestClient(app) as client:
        for route in guarded_routes:
            wrong_keys: list[str | None] = [None]
            if route.path == "/metrics":
                wrong_keys += [public_key, events_only]
            if route.path.startswith("/v1/customers"):
                wrong_keys += [public_key, secret_key, events_only]
            for method in sorted((route.methods or {"GET"}) - {"HEAD", "OPTIONS"}):
                for segment in HOSTILE_SEGMENTS:
                    path = re.sub(r"\{[^}]+\}", segment, route.path)
                    before = stored(store)
                    for key in wrong_keys:
                        headers = {"X-Tailor-Key": key} if key else {}
                        answer = client.request(method, path, headers=headers,
                                                json={"events": [valid_event()]})
                        if route.path in BROWSER_ROUTES and key == public_key:
                            continue  # a public key may send events and opt its browser out
                        assert answer.status_code in (401, 403), (method, path, key,
                                                                  answer.status_code)
                    if route.path != "/v1/events" and route.path not in SEGMENT_PATHS:
                        # (a public key's call to an events route is stored, or dead-lettered)
                        assert stored(store) == before, (method, path)
                    if route.path.startswith("/v1/customers") and route.path.endswith("opt-out"):
                        assert exclusion_reasons(settings) == {}, (method, path)
