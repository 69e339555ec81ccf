"""Keys, rate limits and stalled requests against a real `tailor collect` (uvicorn, h11):
a key revoked with the CLI is refused by the running process within seconds while its
replacement works (rotation without downtime), a key over its rate gets 429 with
Retry-After, a client that sends half a body and stalls gets 408 while others are served
and nothing of its body is stored, and no plain key ever shows up in the collector's log or
in the output of the commands that do not create it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from collector_process import CollectorProcess, clean_environment, start_collector
from http_probe import send_raw
from tailor.config import load_settings
from tailor.events.keys import ADMIN, create_key, hash_key
from tailor.events.store import open_event_store
from waiting import wait_until

pytestmark = pytest.mark.slow

READ_TIMEOUT = 1.0
BURST = 5
IDENTITY_SECRET = "tlr_ik_" + "5" * 40  # from the environment only
ENV_ADMIN_KEY = "tlr_sk_" + "e" * 40    # configured by its hash in the environment


def tailor(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the `tailor` command line on `home`, as an operator would."""
    command = [str(Path(sys.executable).with_name("tailor")), *args, "--home", str(home)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env=clean_environment(home, settings=_env()))


def _env() -> dict[str, str]:
    return {"TAILOR_COLLECTOR_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
            "TAILOR_COLLECTOR_RATE_LIMIT_PER_SECOND": "0.2",
            "TAILOR_COLLECTOR_RATE_LIMIT_BURST": str(BURST),
            "TAILOR_COLLECTOR_ADMIN_KEY_HASHES": hash_key(ENV_ADMIN_KEY),
            "TAILOR_IDENTITY_SECRET": IDENTITY_SECRET}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    home = tmp_path_factory.mktemp("collector-keys") / "home"
    home.mkdir(parents=True)
    process = start_collector(home, settings=_env())
    yield process
    process.stop()


def event() -> dict:
    return {"event_id": uuid.uuid4().hex, "customer_id": "c-keys", "event_type": "page_view",
            "timestamp": datetime.now(timezone.utc).isoformat()}


def stored_events(home: Path) -> int:
    store = open_event_store(load_settings(home=home, env={}).event_store_url)
    try:
        return store.count_events()
    finally:
        store.close()


def post(collector: CollectorProcess, key: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{collector.url}/v1/events", json={"events": [event()]},
                      headers={"X-Tailor-Key": key}, timeout=10.0, **kwargs)


def accepted(collector: CollectorProcess, key: str) -> bool:
    """Whether the running collector takes `key` yet (it re-reads the keys file once a
    second); asks /metrics, which stores nothing."""
    return httpx.get(f"{collector.url}/metrics", headers={"X-Tailor-Key": key},
                     timeout=10.0).status_code == 200


def created_key(home: Path, *args: str) -> dict:
    result = tailor(home, "keys", "create", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_revoked_key_is_refused_within_seconds_and_its_replacement_works(
        collector: CollectorProcess) -> None:
    old = created_key(collector.home, "secret", "--label", "old backend")
    new = created_key(collector.home, "secret", "--label", "new backend")
    wait_until(lambda: accepted(collector, new["key"]), 10, "the new keys to be taken")
    assert post(collector, old["key"]).status_code == 200
    revoked = tailor(collector.home, "keys", "revoke", old["id"])
    assert revoked.returncode == 0, revoked.stderr
    wait_until(lambda: post(collector, old["key"]).status_code == 403, 10,
               "the running collector to refuse the revoked key")
    assert post(collector, new["key"]).status_code == 200


def test_a_key_over_its_rate_gets_429_and_others_go_on(collector: CollectorProcess) -> None:
    busy = created_key(collector.home, "secret", "--label", "busy")["key"]
    other = created_key(collector.home, "secret", "--label", "other")["key"]
    # `other` was written after `busy`: once it is taken, so is `busy`.
    wait_until(lambda: accepted(collector, other), 10, "the new keys to be taken")
    before = stored_events(collector.home)
    statuses = [post(collector, busy).status_code for _ in range(BURST + 2)]
    assert statuses[:BURST] == [200] * BURST and statuses[BURST:] == [429, 429]
    refused = post(collector, busy)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert stored_events(collector.home) == before + BURST  # nothing from the refused ones
    assert post(collector, other).status_code == 200


def test_a_stalled_half_body_gets_408_while_others_are_served(
        collector: CollectorProcess) -> None:
    key = create_key("secret", collector.home / "collector_keys.json", "stall test")
    wait_until(lambda: accepted(collector, key), 10, "the new key to be taken")
    before = stored_events(collector.home)
    body = json.dumps({"events": [event()]}).encode()
    head = (f"POST /v1/events HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\n"
            f"X-Tailor-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    stalled: dict = {}

    def stall() -> None:  # the probe's own timeout would give status 0, never a 408
        stalled["answer"] = send_raw(collector.url, head + body[:len(body) // 2], timeout=30)

    thread = threading.Thread(target=stall)
    thread.start()
    # Served while the other one stalls (its half body is in before this batch is sent).
    assert post(collector, key).status_code == 200
    thread.join(timeout=30)
    answer = stalled["answer"]
    assert answer.status == 408 and "not received in time" in answer.body.decode()
    assert stored_events(collector.home) == before + 1
    # A head that stops half-way is closed too (no answer is possible before a full head).
    half_head = send_raw(collector.url, b"POST /v1/events HTTP/1.1\r\nHost: pro", timeout=30)
    assert half_head.status in (0, 408)
    assert httpx.get(f"{collector.url}/healthz").status_code == 200


def test_no_plain_key_reaches_the_log_or_the_listing(collector: CollectorProcess) -> None:
    home = collector.home
    admin = created_key(home, "--scope", ADMIN, "--label", "ops")
    public = created_key(home, "public", "--label", "pages")
    secret = created_key(home, "secret", "--label", "backend")
    wait_until(lambda: accepted(collector, secret["key"]), 10, "the new keys to be taken")
    used = [admin["key"], public["key"], secret["key"], ENV_ADMIN_KEY]
    assert post(collector, public["key"]).status_code == 200
    assert post(collector, admin["key"]).status_code == 403  # admin keys do not send events
    # A secret key in a URL is refused and logged (without the key).
    in_url = httpx.post(f"{collector.url}/v1/events?key={secret['key']}",
                        json={"events": [event()]})
    assert in_url.status_code == 403
    assert httpx.get(f"{collector.url}/metrics",
                     headers={"Authorization": f"Bearer {secret['key']}"}).status_code == 200
    assert post(collector, secret["key"] + "x").status_code == 403
    outputs = [tailor(home, "keys", "list"), tailor(home, "keys", "list", "--json"),
               tailor(home, "config"), tailor(home, "keys", "revoke", admin["id"])]
    texts = [result.stdout + result.stderr for result in outputs]
    texts.append((home / "collector.log").read_text(errors="replace"))
    assert "refused a secret key sent in a URL" in texts[-1]
    listing = json.loads(outputs[1].stdout)["keys"]
    assert {admin["id"], public["id"], secret["id"]} <= {row["id"] for row in listing}
    for text in texts:
        for plain in used + [IDENTITY_SECRET]:
            assert plain not in text
            assert plain[7:] not in text  # nor its random part without the prefix
