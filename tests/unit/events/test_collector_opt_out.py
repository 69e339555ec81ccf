"""Opt-out at the collector: an opted-out customer's or browser's events are dropped before
anything is stored (and counted), the admin routes need a secret key, and a browser may
only change the ids it proves are its own.

The app runs with the real `OptOutList` on a fresh home and a SQLite store; what was stored
is read back from the store, the list from its file.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient
from typer.testing import CliRunner

from tailor.cli import app as cli_app
from tailor.config import Settings
from tailor.events.collector.app import create_collector_app
from tailor.events.identity import create_identity_secret, identity_secret_path, sign_customer_id
from tailor.events.keys import ADMIN, create_key, keys_file_path
from tailor.events.store import EventStore
from tailor.events.tombstones import add_tombstone, load_tombstone_key, tombstone_of
from tailor.privacy.excluded_customers import exclusion_reasons
from tailor.privacy.opt_out import opt_out
from tailor.privacy.opt_out_audit import audit_entries
from tailor.privacy.opt_out_list import OptOutList

from waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

SHOP = "https://shop.example"
ANON = "anon-" + "ab" * 16


def _event(customer_id: str, anonymous_id: str | None = None) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "customer_id": customer_id,
            "event_type": "page_view",
            "timestamp": (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)).isoformat(),
            "session_id": "s-1", "properties": {"anonymous_id": anonymous_id or ANON}}


@pytest.fixture
def admin_key(settings: Settings) -> str:
    return create_key("secret", keys_file_path(settings), "admin test", scopes=[ADMIN])


@pytest.fixture
def app_client(settings: Settings, public_key: str, secret_key: str,
               admin_key: str) -> Iterator[TestClient]:
    # A look at the list on every batch: the tests change it from "another process" and post
    # at once (the default 50 ms interval is measured in bench/bench_opt_out.py).
    app = create_collector_app(settings, opt_outs=OptOutList(settings, recheck_seconds=0))
    with TestClient(app) as test_client:
        yield test_client


def _post_events(client: TestClient, key: str, events: list[dict[str, Any]]):
    return client.post("/v1/events", json={"events": events}, headers={"X-Tailor-Key": key})


def _stored_customers(store: EventStore) -> set[str]:
    return set(store.events_after(0, 1000)["customer_id"])


def _metric(client: TestClient, key: str, name: str) -> float:
    text = client.get("/metrics", headers={"X-Tailor-Key": key}).text
    lines = [line for line in text.splitlines() if line.startswith(name + " ")
             or line.startswith(name + "_total ")]
    return float(lines[0].split()[-1]) if lines else 0.0


# -- events of opted-out ids -------------------------------------------------------------------


def test_an_opted_out_customers_events_are_dropped_and_counted_never_stored(
        app_client: TestClient, settings: Settings, secret_key: str, store: EventStore) -> None:
    opt_out(settings, "c-out")
    response = _post_events(app_client, secret_key, [_event("c-out", "anon-" + "1" * 32),
                                                     _event("c-in", "anon-" + "2" * 32)])
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": [], "opted_out": 1}
    assert _stored_customers(store) == {"c-in"}
    assert _metric(app_client, secret_key, "tailor_collector_events_opted_out") == 1


def test_a_browser_opted_out_by_its_anonymous_id_is_not_tracked_even_once_identified(
        app_client: TestClient, settings: Settings, public_key: str, store: EventStore) -> None:
    opt_out(settings, ANON)
    response = app_client.post("/v1/events", json={"events": [_event(ANON), _event("c-5")]},
                               headers={"X-Tailor-Key": public_key, "Origin": SHOP})
    assert response.json()["opted_out"] == 2  # the anonymous id rides in every event
    assert store.count_events() == 0


def test_a_cli_opt_out_reaches_a_running_collector_and_opt_in_undoes_it(
        app_client: TestClient, settings: Settings, secret_key: str, store: EventStore) -> None:
    home = ["--home", str(settings.home_path)]
    assert CliRunner().invoke(cli_app, ["opt-out", "c-7", *home]).exit_code == 0
    wait_until(lambda: _post_events(app_client, secret_key, [_event("c-7")]).json()
               .get("opted_out") == 1, 10, "the collector to drop c-7's events")
    assert store.count_events() == 0
    assert CliRunner().invoke(cli_app, ["opt-in", "c-7", *home]).exit_code == 0
    wait_until(lambda: _post_events(app_client, secret_key, [_event("c-7")]).json()
               ["accepted"] == 1, 10, "the collector to store c-7's events again")


def _forget(settings: Settings, customer_id: str) -> None:
    """Tombstone an id as `tailor forget`'s first step does."""
    add_tombstone(settings.home_path,
                  tombstone_of(load_tombstone_key(settings.home_path), customer_id))


def test_a_batch_drops_forgotten_ids_first_then_opted_out_ones_and_says_both(
        settings: Settings, secret_key: str, admin_key: str, store: EventStore) -> None:
    _forget(settings, "c-gone")
    _forget(settings, "anon-" + "4" * 32)  # a browser's id forgotten: identified events too
    opt_out(settings, "c-out")
    app = create_collector_app(settings, opt_outs=OptOutList(settings, recheck_seconds=0))
    with TestClient(app) as client:
        response = _post_events(client, secret_key, [
            _event("c-gone", "anon-" + "1" * 32), _event("c-out", "anon-" + "2" * 32),
            _event("c-in", "anon-" + "3" * 32), _event("c-other", "anon-" + "4" * 32)])
        assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": [],
                                   "forgotten": 2, "opted_out": 1}
        assert _metric(client, secret_key, "tailor_collector_events_opted_out") == 1
        only_dropped = _post_events(client, secret_key, [_event("c-gone"), _event("c-out")])
        assert only_dropped.json() == {"accepted": 0, "duplicates": 0, "rejected": [],
                                       "forgotten": 1, "opted_out": 1}
        # An opt-out asked for a forgotten id answers `deleted` and writes nothing.
        answer = client.post("/v1/customers/c-gone/opt-out", headers={"X-Tailor-Key": admin_key})
        assert answer.json() == {"customer_id": "c-gone", "action": "opt_out",
                                 "status": "deleted", "changed": False}
    assert _stored_customers(store) == {"c-in"}
    assert exclusion_reasons(settings) == {"c-out": "opted_out"}


# -- the admin routes ---------------------------------------------------------------------------


def test_the_admin_route_opts_out_and_in_idempotently(app_client: TestClient, settings: Settings,
                                                      admin_key: str) -> None:
    headers = {"X-Tailor-Key": admin_key}
    first = app_client.post("/v1/customers/c-9/opt-out", headers=headers)
    second = app_client.post("/v1/customers/c-9/opt-out", headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == {"customer_id": "c-9", "action": "opt_out", "status": "opted_out",
                            "changed": True}
    assert second.json()["changed"] is False
    assert exclusion_reasons(settings) == {"c-9": "opted_out"}
    back = app_client.post("/v1/customers/c-9/opt-in", headers=headers)
    assert back.json()["status"] == "opted_in" and exclusion_reasons(settings) == {}
    assert [entry["source"] for entry in audit_entries(settings)] == ["api"] * 3


def test_an_id_with_a_slash_or_spaces_reaches_the_list_literally(
        app_client: TestClient, settings: Settings, admin_key: str) -> None:
    response = app_client.post("/v1/customers/shop%2Fc%201/opt-out",
                               headers={"X-Tailor-Key": admin_key})
    assert response.status_code == 200, response.text
    assert exclusion_reasons(settings) == {"shop/c 1": "opted_out"}


@pytest.mark.parametrize("key_kind, status", [(None, 401), ("unknown", 403), ("public", 403),
                                             ("secret", 403)])
def test_the_admin_route_refuses_without_an_admin_key_and_changes_nothing(
        app_client: TestClient, settings: Settings, public_key: str, secret_key: str,
        key_kind: str | None, status: int) -> None:
    keys = {"public": public_key, "secret": secret_key, "unknown": "tlr_sk_" + "0" * 40}
    headers = {} if key_kind is None else {"X-Tailor-Key": keys[key_kind]}
    response = app_client.post("/v1/customers/c-1/opt-out", headers=headers)
    assert response.status_code == status
    assert "error" in response.json()
    assert exclusion_reasons(settings) == {} and audit_entries(settings) == []


def test_without_the_list_the_routes_answer_503(settings: Settings, admin_key: str) -> None:
    with TestClient(create_collector_app(settings)) as bare:
        response = bare.post("/v1/customers/c-1/opt-out", headers={"X-Tailor-Key": admin_key})
    assert response.status_code == 503 and "opt-out list" in response.json()["error"]


# -- the tracker's call -------------------------------------------------------------------------


def _browser(client: TestClient, key: str, action: str, body: dict[str, Any]):
    return client.post(f"/v1/{action}", json=body, headers={"X-Tailor-Key": key, "Origin": SHOP})


def test_a_browser_opts_its_anonymous_id_out_and_back_in(app_client: TestClient,
                                                          settings: Settings,
                                                          public_key: str) -> None:
    response = _browser(app_client, public_key, "opt-out", {"anonymous_id": ANON})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert [change["status"] for change in response.json()["changes"]] == ["opted_out"]
    assert exclusion_reasons(settings) == {ANON: "opted_out"}
    assert _browser(app_client, public_key, "opt-in", {"anonymous_id": ANON}).status_code == 200
    assert exclusion_reasons(settings) == {}
    assert {entry["source"] for entry in audit_entries(settings)} == {"browser"}


def test_an_unsigned_customer_id_may_be_opted_out_but_never_back_in_from_a_browser(
        app_client: TestClient, settings: Settings, public_key: str) -> None:
    out = _browser(app_client, public_key, "opt-out", {"anonymous_id": ANON, "customer_id": "c-3"})
    assert out.status_code == 200 and out.json()["refused"] == []
    assert exclusion_reasons(settings) == {ANON: "opted_out", "c-3": "opted_out"}
    back = _browser(app_client, public_key, "opt-in", {"customer_id": "c-3"})
    assert back.status_code == 403
    assert back.json()["refused"][0]["reason"].startswith("identity_signature: needed")
    assert "c-3" in exclusion_reasons(settings)


def test_with_signed_identities_a_browser_needs_the_signature_for_a_customer_id(
        settings: Settings, public_key: str) -> None:
    signed = settings.replace(collector_require_signed_identity=True)
    secret = create_identity_secret(identity_secret_path(signed))
    app = create_collector_app(signed, opt_outs=OptOutList(signed, recheck_seconds=0))
    with TestClient(app) as client:
        unsigned = _browser(client, public_key, "opt-out", {"customer_id": "c-4"})
        forged = _browser(client, public_key, "opt-out",
                          {"customer_id": "c-4", "identity_signature": "0" * 64})
        assert unsigned.status_code == forged.status_code == 403
        assert exclusion_reasons(signed) == {}
        good = {"customer_id": "c-4", "identity_signature": sign_customer_id(secret, "c-4")}
        assert _browser(client, public_key, "opt-out", good).status_code == 200
        assert exclusion_reasons(signed) == {"c-4": "opted_out"}
        assert _browser(client, public_key, "opt-in", good).status_code == 200
        assert exclusion_reasons(signed) == {}


@pytest.mark.parametrize("body, status", [
    ({}, 400), ({"customer_id": 5}, 400), ([ANON], 400), ({"anonymous_id": "not-anon"}, 403),
    ({"anonymous_id": "anon-" + "x" * 600}, 400)])
def test_a_bad_browser_call_is_refused_and_changes_nothing(app_client: TestClient,
                                                           settings: Settings, public_key: str,
                                                           body: Any, status: int) -> None:
    response = _browser(app_client, public_key, "opt-out", body)
    assert response.status_code == status
    assert exclusion_reasons(settings) == {}


@pytest.mark.parametrize("body, content_type, status, says", [
    (b"[" * 2000 + b"]" * 2000, "application/json", 400, "malformed JSON"),  # under the 4 KB cap
    (b"[" * 4000, "application/json", 400, "malformed JSON"),
    (b'{"anonymous_id": "' + b"x" * 5000 + b'"}', "application/json", 413,
     "an opt-out call's fixed limit"),
    (b'{"anonymous_id": "anon-1"}', "application/xml", 415, "Content-Type"),
], ids=["nested", "nested-unclosed", "oversized", "xml"])
@pytest.mark.parametrize("who", ["public", "admin"])
def test_nested_oversized_and_mistyped_bodies_are_4xx_and_change_nothing(
        app_client: TestClient, settings: Settings, public_key: str, admin_key: str,
        body: bytes, content_type: str, status: int, says: str, who: str) -> None:
    key = public_key if who == "public" else admin_key
    response = app_client.post("/v1/opt-out", content=body,
                               headers={"X-Tailor-Key": key, "Content-Type": content_type,
                                        "Origin": SHOP})
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    assert exclusion_reasons(settings) == {}


def test_a_page_from_an_unknown_origin_cannot_call_it(app_client: TestClient, settings: Settings,
                                                      public_key: str) -> None:
    response = app_client.post("/v1/opt-out", json={"anonymous_id": ANON},
                               headers={"X-Tailor-Key": public_key, "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert exclusion_reasons(settings) == {}


def test_an_events_key_from_a_server_gets_the_browser_rules_an_admin_key_is_trusted(
        app_client: TestClient, settings: Settings, secret_key: str, admin_key: str) -> None:
    signed = {"customer_id": "c-6"}
    refused = app_client.post("/v1/opt-in", json=signed, headers={"X-Tailor-Key": secret_key})
    assert refused.status_code == 403
    opt_out(settings, "c-6")
    trusted = app_client.post("/v1/opt-in", json=signed, headers={"X-Tailor-Key": admin_key})
    assert trusted.status_code == 200 and exclusion_reasons(settings) == {}
    assert audit_entries(settings)[-1]["source"] == "api"


def test_the_preflight_allows_the_shop_origin(app_client: TestClient) -> None:
    response = app_client.options("/v1/opt-out", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == SHOP



class ReadOnlyList(OptOutList):
    """The list on a home mounted read-only (serving pods): reading works, writing fails."""

    def opt_out(self, customer_id: str, source: str):
        raise PermissionError(13, "Read-only file system")


def test_a_home_that_cannot_be_written_answers_503_and_still_drops_events(
        settings: Settings, admin_key: str, secret_key: str, store: EventStore) -> None:
    opt_out(settings, "c-8")
    app = create_collector_app(settings, opt_outs=ReadOnlyList(settings, recheck_seconds=0))
    with TestClient(app) as client:
        response = client.post("/v1/customers/c-9/opt-out", headers={"X-Tailor-Key": admin_key})
        assert response.status_code == 503
        assert "cannot be written" in response.json()["error"]
        assert _post_events(client, secret_key, [_event("c-8")]).json()["opted_out"] == 1
    assert exclusion_reasons(settings) == {"c-8": "opted_out"} and store.count_events() == 0
