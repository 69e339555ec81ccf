"""`DELETE /v1/customers/{id}` on the collector: admin keys only; the tombstone is written before
the answer (so the collector stores nothing more of the id at once) and the job is started
with the id on its standard input, not on its command line. Hypothesis drives the admin
routes (forget, opt-out, opt-in) with an admin key over arbitrary ids."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings as hypothesis_settings, strategies as st
from starlette.testclient import TestClient

from tailor.config import load_settings
from tailor.events.collector import forget_route
from tailor.events.collector.app import create_collector_app
from tailor.events.keys import ADMIN, create_key, keys_file_path
from tailor.events.tombstones import (
    TombstoneSet,
    load_tombstone_key,
    read_tombstones,
    tombstone_of,
    tombstones_path,
)
from tailor.privacy.excluded_customers import exclusion_reasons
from tailor.privacy.opt_out_list import OptOutList


@pytest.fixture
def admin_routes(tmp_path, monkeypatch):
    """The collector with the opt-out list, an admin key, and the forget job recorded, not run."""
    settings = load_settings(home=tmp_path / "admin-home", env={})
    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(forget_route, "start_forget_job",
                        lambda _s, customer, stone, actor: started.append((customer, stone, actor)))
    admin = create_key("secret", keys_file_path(settings), "dpo", scopes=[ADMIN])
    app = create_collector_app(settings, opt_outs=OptOutList(settings))
    with TestClient(app) as client:
        yield client, settings, started, admin


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


def test_the_jobs_status_says_running_stopped_and_done(collector, monkeypatch) -> None:
    from tailor.privacy import forget

    client, settings, started, admin, secret = collector
    stone = client.delete("/v1/customers/c000042",
                          headers={"X-Tailor-Key": admin}).json()["tombstone"]
    path = f"/v1/forget-jobs/{stone}"
    running = client.get(path, headers={"X-Tailor-Key": admin})
    assert running.status_code == 200, running.text
    assert running.json() == {"tombstone": stone, "status": "running", "started_at": None,
                              "steps_done": []}

    def broken(_context):
        raise OSError("the disk is gone")

    steps_before = forget.STEPS
    steps = tuple((name, broken if name == "lake" else step) for name, step in steps_before)
    monkeypatch.setattr(forget, "STEPS", steps)
    with pytest.raises(OSError):
        forget.forget_customer(settings, "c000042", resume=True)
    stopped = client.get(path, headers={"X-Tailor-Key": admin}).json()
    assert stopped["status"] == "stopped" and stopped["step"] == "lake"
    assert stopped["error"] == "OSError" and "disk" not in str(stopped)
    assert stopped["steps_done"] == ["tombstone", "event_store", "campaign_mails"]

    # While the resumed run works, it is running again, with the steps done so far.
    seen_during = []
    lake = dict(steps_before)["lake"]

    def watched_lake(context):
        seen_during.append(client.get(path, headers={"X-Tailor-Key": admin}).json())
        return lake(context)

    monkeypatch.setattr(forget, "STEPS", tuple(
        (name, watched_lake if name == "lake" else step) for name, step in steps_before))
    forget.forget_customer(settings, "c000042", resume=True)
    assert [(seen["status"], seen["steps_done"]) for seen in seen_during] == [
        ("running", ["tombstone", "event_store", "campaign_mails"])]
    done = client.get(path, headers={"X-Tailor-Key": admin}).json()
    assert done["status"] == "done" and done["files_left"] == 0
    assert set(done["removed"]) == set(forget.STEP_NAMES) and "c000042" not in str(done)


def test_the_jobs_status_needs_an_admin_key_and_a_known_tombstone(collector) -> None:
    client, settings, started, admin, secret = collector
    stone = client.delete("/v1/customers/c7", headers={"X-Tailor-Key": admin}).json()["tombstone"]
    assert client.get(f"/v1/forget-jobs/{stone}").status_code == 401
    assert client.get(f"/v1/forget-jobs/{stone}",
                      headers={"X-Tailor-Key": secret}).status_code == 403
    for unknown in ("0" * 64, stone.upper(), stone[:-1], "c7", ".." + stone[2:]):
        answer = client.get(f"/v1/forget-jobs/{unknown}", headers={"X-Tailor-Key": admin})
        assert answer.status_code == 404, (unknown, answer.text)
        assert answer.json()["error"].startswith("tombstone: ")
    traversal = client.get("/v1/forget-jobs/..%2F..%2Fkeys.json", headers={"X-Tailor-Key": admin})
    assert traversal.status_code == 404 and traversal.json()["error"].startswith("tombstone: ")


def test_other_keys_and_bad_ids_change_nothing(collector) -> None:
    client, settings, started, admin, secret = collector
    assert client.delete("/v1/customers/c1").status_code == 401
    assert client.delete("/v1/customers/c1", headers={"X-Tailor-Key": secret}).status_code == 403
    for bad, problem in (("%20", "empty"), ("a%00b", "NUL"), ("x" * 513, "longer than 512")):
        answer = client.delete(f"/v1/customers/{bad}", headers={"X-Tailor-Key": admin})
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["error"].startswith("customer_id: ") and problem in answer.text
    assert started == [] and not (settings.home_path / "privacy" / "tombstones.csv").exists()


def test_an_id_with_control_characters_the_collector_stored_can_be_forgotten(collector) -> None:
    """The event contract stores such ids (only a NUL is refused), so the route takes them."""
    client, settings, started, admin, _secret = collector
    odd = "c\x01odd\tid\x1b[31m"
    answer = client.delete(f"/v1/customers/{quote(odd, safe='')}", headers={"X-Tailor-Key": admin})
    assert answer.status_code == 202, answer.text
    assert started[0][0] == odd and TombstoneSet(settings.home_path).contains(odd)


IDS = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=600),
    st.sampled_from(["'; DROP TABLE events; --", "a/b", "a/../b", "x/opt-out", " c1 ",
                     "c\x00", "x" * 512, "x" * 513, "anon-1", "\x7f", "?key=1#x"]))


@given(customer=IDS, action=st.sampled_from(["forget", "opt-out", "opt-in"]))
@hypothesis_settings(max_examples=120, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))
def test_the_admin_routes_with_an_admin_key_never_5xx_and_refusals_change_nothing(
        admin_routes, customer: str, action: str) -> None:
    """Hypothesis over the ids of the admin endpoints, called with a key that may use them:
    an answer below 500; a refusal leaves the tombstones, the jobs and the list as they were;
    an acceptance changed exactly the id sent (stripped), read literally."""
    client, settings, started, admin = admin_routes
    assume(customer not in (".", ".."))  # dot segments: the client rewrites the path
    # Starlette's test client decodes the path twice (httpx's decoded path, unquoted again),
    # so "%21" would arrive as "!"; a real server (uvicorn) decodes once.
    assume("%" not in customer)
    path = f"/v1/customers/{quote(customer, safe='')}"
    stones = tombstones_path(settings.home_path)
    before = (read_tombstones(stones), len(started), exclusion_reasons(settings))
    if action == "forget":
        answer = client.delete(path, headers={"X-Tailor-Key": admin})
    else:
        answer = client.post(f"{path}/{action}", headers={"X-Tailor-Key": admin})
    assert answer.status_code < 500, (customer, action, answer.status_code, answer.text)
    expected = customer.strip()
    if answer.status_code >= 300:
        # (an id with a newline matches no route: the router's plain 404, not a JSON error)
        assert (read_tombstones(stones), len(started), exclusion_reasons(settings)) == before, \
            (customer, action, answer.status_code)
        return
    if action == "forget":
        assert answer.status_code == 202 and started[-1][0] == expected
        stone = tombstone_of(load_tombstone_key(settings.home_path), expected)
        assert answer.json()["tombstone"] == stone and stone in read_tombstones(stones)
        return
    change = answer.json()
    assert change["customer_id"] == expected, (customer, change)
    if change["status"] == "deleted":  # forgotten earlier in the run: the list is not written
        assert exclusion_reasons(settings) == before[2], (customer, action)
    else:
        assert exclusion_reasons(settings).get(expected) == (
            "opted_out" if action == "opt-out" else None), (customer, action)
