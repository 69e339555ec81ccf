"""Keys with scopes: old files migrate, public keys stay events-only, routes are guarded by
scope, revocation and expiry take effect in a running app, per-key rate limits answer 429."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tailor.cli import app as cli_app
from tailor.config import Settings
from tailor.errors import InputError
from tailor.events.collector.access import require_scope, scoped
from tailor.events.collector.app import create_collector_app
from tailor.events.key_ring import load_key_ring
from tailor.events.keys import (
    ADMIN,
    EVENTS_WRITE,
    RECOMMENDATIONS_READ,
    create_key,
    hash_key,
    keys_file_path,
    list_keys,
    read_key_entries,
    revoke_key,
)
from tailor.web.rate_limit import RateLimiter



def make_event() -> dict:
    """A valid product_view of now."""
    return {"event_id": uuid.uuid4().hex, "customer_id": "c-1", "event_type": "product_view",
            "product_id": "p-1", "timestamp": datetime.now(timezone.utc).isoformat()}


@scoped(ADMIN)
async def admin_only(request: Request) -> JSONResponse:
    return JSONResponse({"key_id": request.state.key_grant.key_id})


async def read_or_admin(request: Request) -> JSONResponse:
    grant = require_scope(request, RECOMMENDATIONS_READ, ADMIN)
    return JSONResponse({"scopes": sorted(grant.scopes)})


def collector_with_admin_route(settings: Settings) -> TestClient:
    app = create_collector_app(settings)
    app.router.routes.append(Route("/v1/admin-test", admin_only, methods=["POST"]))
    # Every change to the keys file counts at the next request (not after a second).
    app.state.collector.key_ring.keys_file_watch.recheck_seconds = 0.0
    return TestClient(app)


def test_an_old_keys_file_keeps_working_with_the_documented_scopes(settings: Settings) -> None:
    keys_file = keys_file_path(settings)
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    old = {"public": "tlr_pk_" + "a" * 40, "secret": "tlr_sk_" + "b" * 40}
    keys_file.write_text(json.dumps({"keys": [
        {"kind": kind, "sha256": hash_key(plain), "label": "old", "created_at": "2025-01-01"}
        for kind, plain in old.items()]}))
    entries = {entry["kind"]: entry for entry in read_key_entries(keys_file)}
    assert entries["public"]["scopes"] == [EVENTS_WRITE]
    assert entries["secret"]["scopes"] == [EVENTS_WRITE, RECOMMENDATIONS_READ]
    ring = load_key_ring(settings)
    assert ring.kind_of(old["public"]) == "public" and ring.kind_of(old["secret"]) == "secret"
    assert ADMIN not in ring.lookup(old["secret"]).scopes


def test_a_public_key_can_never_hold_more_than_events_write(settings: Settings) -> None:
    for scopes in ([ADMIN], [RECOMMENDATIONS_READ], [EVENTS_WRITE, ADMIN]):
        with pytest.raises(InputError, match="public key"):
            create_key("public", keys_file_path(settings), scopes=scopes)
    with pytest.raises(InputError, match="not one of"):
        create_key("secret", keys_file_path(settings), scopes=["root"])
    # Nor by editing the file: the entry is refused when read.
    keys_file = keys_file_path(settings)
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    keys_file.write_text(json.dumps({"keys": [{"kind": "public", "sha256": "0" * 64,
                                               "scopes": [ADMIN]}]}))
    with pytest.raises(InputError, match="entry 0"):
        read_key_entries(keys_file)


def test_a_route_guarded_by_scope_takes_only_keys_holding_it(settings: Settings) -> None:
    path = keys_file_path(settings)
    admin = create_key("secret", path, "ops", scopes=[ADMIN])
    server = create_key("secret", path, "backend")
    public = create_key("public", path, "pages")
    client = collector_with_admin_route(settings)
    ok = client.post("/v1/admin-test", headers={"X-Tailor-Key": admin})
    assert ok.status_code == 200 and ok.json()["key_id"] == hash_key(admin)[:12]
    for key in (server, public):
        refused = client.post("/v1/admin-test", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 403 and "needs admin" in refused.json()["error"]
    assert client.post("/v1/admin-test").status_code == 401
    # A public key in the URL gets the scope check; an admin key in a URL is refused outright.
    assert client.post(f"/v1/admin-test?key={public}").status_code == 403
    in_url = client.post(f"/v1/admin-test?key={admin}")
    assert in_url.status_code == 403 and "rotate" in in_url.json()["error"]
    # An admin key alone may not send events: scopes are not a ladder.
    events = client.post("/v1/events", headers={"X-Tailor-Key": admin},
                         json={"events": [make_event()]})
    assert events.status_code == 403 and "events:write" in events.json()["error"]


def test_a_revoked_key_is_refused_by_the_running_app_and_its_twin_still_works(
        settings: Settings) -> None:
    path = keys_file_path(settings)
    old, new = (create_key("secret", path, label, scopes=[ADMIN]) for label in ("old", "new"))
    client = collector_with_admin_route(settings)
    assert client.post("/v1/admin-test", headers={"X-Tailor-Key": old}).status_code == 200
    info = revoke_key(path, hash_key(old)[:12])
    assert info.status() == "revoked"
    refused = client.post("/v1/admin-test", headers={"X-Tailor-Key": old})
    assert refused.status_code == 403 and "revoked" in refused.json()["error"]
    assert client.post("/v1/admin-test", headers={"X-Tailor-Key": new}).status_code == 200
    with pytest.raises(InputError, match="no such key"):
        revoke_key(path, "ffffffffffff")


def test_an_expired_key_is_refused(settings: Settings) -> None:
    path = keys_file_path(settings)
    key = create_key("secret", path, scopes=[ADMIN], expires_in_days=1)
    entries = read_key_entries(path)
    entries[0]["expires_at"] = "2020-01-01T00:00:00+00:00"
    path.write_text(json.dumps({"keys": entries}))
    client = collector_with_admin_route(settings)
    refused = client.post("/v1/admin-test", headers={"X-Tailor-Key": key})
    assert refused.status_code == 403 and "expired" in refused.json()["error"]
    assert [info.status() for info in list_keys(settings)] == ["expired"]


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_do_not(
        settings: Settings) -> None:
    limited = settings.replace(collector_rate_limit_per_second=0.01, collector_rate_limit_burst=2)
    path = keys_file_path(settings)
    busy, quiet = (create_key("secret", path, label, scopes=[ADMIN]) for label in "ab")
    client = collector_with_admin_route(limited)
    answers = [client.post("/v1/admin-test", headers={"X-Tailor-Key": busy}).status_code
               for _ in range(3)]
    assert answers == [200, 200, 429]
    refused = client.post("/v1/admin-test", headers={"X-Tailor-Key": busy})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert client.post("/v1/admin-test", headers={"X-Tailor-Key": quiet}).status_code == 200


def test_a_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_second=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)
    now[0] = 0.5
    assert limiter.acquire("k") == 0.0
    assert RateLimiter(per_second=0, burst=1).acquire("k") == 0.0  # off


def test_the_cli_creates_lists_and_revokes_without_ever_showing_a_key_again(
        tailor_home: Path, settings: Settings) -> None:
    runner = CliRunner()
    home = ["--home", str(tailor_home)]
    created = runner.invoke(cli_app, ["keys", "create", "--scope", ADMIN, "--scope",
                                      RECOMMENDATIONS_READ, "--label", "ops", "--json", *home])
    assert created.exit_code == 0, created.output
    made = json.loads(created.stdout)
    assert made["scopes"] == [RECOMMENDATIONS_READ, ADMIN] and made["key"].startswith("tlr_sk_")
    listed = runner.invoke(cli_app, ["keys", "list", "--json", *home])
    assert listed.exit_code == 0 and made["key"] not in listed.output
    (row,) = json.loads(listed.stdout)["keys"]
    assert (row["id"], row["label"], row["status"]) == (made["id"], "ops", "active")
    assert row["hash_tail"] == hash_key(made["key"])[-4:]
    human = runner.invoke(cli_app, ["keys", "list", *home])
    assert human.exit_code == 0 and made["key"] not in human.output
    revoked = runner.invoke(cli_app, ["keys", "revoke", made["id"], "--json", *home])
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["status"] == "revoked"
    assert made["key"] not in revoked.output
    assert load_key_ring(settings).kind_of(made["key"]) is None
    public_admin = runner.invoke(cli_app, ["keys", "create", "public", "--scope", ADMIN, *home])
    assert public_admin.exit_code == 2 and "public key" in public_admin.output
    unknown = runner.invoke(cli_app, ["keys", "revoke", "000000000000", *home])
    assert unknown.exit_code == 2


def test_admin_keys_can_come_from_settings(settings: Settings) -> None:
    configured = settings.replace(collector_admin_key_hashes=hash_key("tlr_sk_from_env"))
    grant = load_key_ring(configured).lookup("tlr_sk_from_env")
    assert grant is not None and grant.scopes == {ADMIN}
    assert [info.source for info in list_keys(configured)] == ["settings"]


def test_keys_created_at_once_are_all_kept(settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = keys_file_path(settings)
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda n: create_key("secret", path, f"k{n}"), range(24)))
    ring = load_key_ring(settings)
    assert all(ring.kind_of(key) == "secret" for key in made)
    assert len(read_key_entries(path)) == 24
