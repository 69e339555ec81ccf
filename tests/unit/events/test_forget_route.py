"""`DELETE /v1/customers/{id}` on the collector: admin keys only; the tombstone is written before
the answer (so the collector stores nothing more of the id at once) and the job is started
with the id on its standard input, not on its command line."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tailor.config import load_settings
from tailor.events.collector import forget_route
from tailor.events.collector.app import create_collector_app
from tailor.events.keys import ADMIN, create_key, keys_file_path
from tailor.events.tombstones import TombstoneSet


@pytest.fixture
def collector(tmp_path, monkeypatch):
    settings = load_settings(home=tmp_path / "home", env={})
    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(forget_route, "start_forget_job",
                        lambda _s, customer, stone, actor: started.append((customer, stone, actor)))
    admin = create_key("secret", keys_file_path(settings), "dpo", scopes=[ADMIN])
    secret = create_key("secret", keys_file_path(settings), "shop server")
    with TestClient(create_collector_app(settings)) as client:
        yield client, settings, started, admin, secret


def test_an_admin_key_tombstones_the_customer_and_starts_the_job(collector) -> None:
    client, settings, started, admin, secret = collector
    answer = client.delete("/v1/customers/c000042", headers={"X-Tailor-Key": admin})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "accepted" and "c000042" not in answer.text
    assert TombstoneSet(settings.home_path).contains("c000042")
    assert started == [("c000042", body["tombstone"], started[0][2])]
    assert started[0][2].startswith("key ") and admin not in started[0][2]
    event = {"customer_id": "c000042", "event_type": "page_view",
             "timestamp": "2026-01-05T10:00:00Z"}
    client.app.state.tombstones.watch.recheck_seconds = 0
    stored = client.post("/v1/events", json={"events": [event]}, headers={"X-Tailor-Key": secret})
    assert stored.json() == {"accepted": 0, "duplicates": 0, "rejected": [], "forgotten": 1}


def test_other_keys_and_bad_ids_change_nothing(collector) -> None:
    client, settings, started, admin, secret = collector
    assert client.delete("/v1/customers/c1").status_code == 401
    assert client.delete("/v1/customers/c1", headers={"X-Tailor-Key": secret}).status_code == 403
    assert client.delete("/v1/customers/%20", headers={"X-Tailor-Key": admin}).status_code == 400
    assert client.delete("/v1/customers/a%01b", headers={"X-Tailor-Key": admin}).status_code == 400
    assert started == [] and not (settings.home_path / "privacy" / "tombstones.csv").exists()
