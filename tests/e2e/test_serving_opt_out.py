"""Opt-out through the real server (`bentoml serve`, the collector under `/collect`): an admin
key opts a known buyer out, every worker then answers their homepage unpersonalised and the
collector drops their events; opt-in brings the personal list back.

Uses the session's trained home and server (`tests/e2e/conftest.py`); the buyer is opted
back in at the end, whatever happens, for the other tests of the session.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from waiting import wait_until

pytestmark = pytest.mark.slow


def _homepage(serving, customer: str) -> dict:
    response = serving.post("/homepage", {"customer_id": customer, "k": 5})
    assert response.status_code == 200, response.text
    return response.json()


def _all_answers(serving, customer: str, want: bool) -> bool:
    """Several asks (the workers take turns): all personalised, or all not, as wanted."""
    return all(_homepage(serving, customer)["personalised"] is want for _ in range(6))


def test_an_admin_opt_out_through_the_server_reaches_every_worker_and_the_collector(
        serving) -> None:
    from tailor.events.keys import ADMIN, create_key, keys_file_path

    settings = serving.home.settings
    admin_key = create_key("secret", keys_file_path(settings), "opt-out test", scopes=[ADMIN])
    buyer = serving.home.known_buyer
    personal = [item["product_id"] for item in _homepage(serving, buyer)["items"]]
    assert _homepage(serving, buyer)["personalised"]
    try:
        answer = wait_until(lambda: (lambda r: r if r.status_code != 403 else None)(
            serving.post(f"/collect/v1/customers/{buyer}/opt-out", {}, key=admin_key)), 30,
            "the server to accept the new admin key")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "opted_out"
        wait_until(lambda: _all_answers(serving, buyer, want=False), 30,
                   "every worker to serve the opted-out buyer unpersonalised")
        event = {"event_id": uuid.uuid4().hex, "customer_id": buyer, "event_type": "page_view",
                 "timestamp": datetime.now(timezone.utc).isoformat()}
        stored = serving.post("/collect/v1/events", {"events": [event]})
        assert stored.status_code == 200 and stored.json().get("opted_out") == 1, stored.text
    finally:
        back = serving.post(f"/collect/v1/customers/{buyer}/opt-in", {}, key=admin_key)
    assert back.status_code == 200 and back.json()["status"] == "opted_in", back.text
    wait_until(lambda: _all_answers(serving, buyer, want=True), 30,
               "every worker to personalise the buyer again")
    assert [item["product_id"] for item in _homepage(serving, buyer)["items"]] == personal
