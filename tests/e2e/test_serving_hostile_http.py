"""Hostile HTTP against the real server (`bentoml serve`, tests/e2e/conftest.py): deeply
nested and oversized JSON, wrong content types, a client that sends half a body and stalls
(408 from the server while others are answered), and keys of the wrong scope or revoked
while it runs. Every refusal is a 4xx with a JSON reason, never a 5xx."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from http_probe import send_raw
from waiting import wait_until
from tailor.events.keys import ADMIN, create_key, keys_file_path, read_key_entries, revoke_key

pytestmark = pytest.mark.slow

ENDPOINTS = ("/homepage", "/also_bought", "/checkout_offer", "/batch/homepage")


def _post_raw(serving, path: str, body: bytes, content_type: str) -> httpx.Response:
    return httpx.post(serving.url + path, content=body, timeout=30,
                      headers={"Content-Type": content_type,
                               "Authorization": f"Bearer {serving.secret_key}"})


@pytest.mark.parametrize("path", ENDPOINTS)
def test_nested_oversized_and_mistyped_bodies_are_4xx(serving, path: str) -> None:
    deep = 20_000
    bodies = [
        (b"[" * deep + b"]" * deep, "application/json"),
        (b'{"customer_id": ' + b"[" * deep + b"]" * deep + b"}", "application/json"),
        (b'{"customer_id": "c1", "context": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001,
         "application/json"),
        (json.dumps({"customer_id": "c" * 200_000}).encode(), "application/json"),
        (b'{"customer_id": "c1"}', "text/plain"),
        (b"<customer_id>c1</customer_id>", "application/xml"),
        (b"customer_id=c1", "application/x-www-form-urlencoded"),
        (b"--x\r\nContent-Disposition: form-data; name=\"customer_id\"\r\n\r\nc1\r\n--x--\r\n",
         "multipart/form-data; boundary=x"),
        (b"\xff\xfe\x00", "application/json"),
        (b"", "application/json"),
    ]
    for body, content_type in bodies:
        answer = _post_raw(serving, path, body, content_type)
        assert 400 <= answer.status_code < 500, (path, body[:60], content_type,
                                                 answer.status_code, answer.text[:200])
    assert serving.post("/homepage", {"customer_id": "c1"},
                        key=serving.secret_key).status_code == 200


def test_a_stalled_half_body_gets_408_while_others_are_answered(serving) -> None:
    body = json.dumps({"customer_id": "c1", "k": 5}).encode()
    head = (f"POST /homepage HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {serving.secret_key}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    stalled: dict = {}

    def stall() -> None:  # the probe's own timeout would give status 0, never a 408
        stalled["answer"] = send_raw(serving.url, head + body[:len(body) // 2], timeout=60)

    thread = threading.Thread(target=stall)
    thread.start()
    assert serving.post("/homepage", {"customer_id": "c1"},
                        key=serving.secret_key).status_code == 200
    thread.join(timeout=60)
    assert stalled["answer"].status == 408, stalled["answer"]  # the server's read timeout


def test_wrong_scope_and_revoked_keys_are_refused_by_the_running_server(serving) -> None:
    keys_file = keys_file_path(serving.home.settings)
    admin = create_key("secret", keys_file, "ops", scopes=[ADMIN])
    reader = create_key("secret", keys_file, "rotating backend")
    wait_until(lambda: serving.post("/homepage", {"customer_id": "c1"},
                                    key=reader).status_code == 200, 15,
               "the running server to take the new key")
    refused = serving.post("/homepage", {"customer_id": "c1"}, key=admin)
    assert refused.status_code == 403 and "recommendations:read" in refused.json()["error"]
    revoke_key(keys_file, read_key_entries(keys_file)[-1]["id"])
    wait_until(lambda: serving.post("/homepage", {"customer_id": "c1"},
                                    key=reader).status_code == 403, 15,
               "the running server to refuse the revoked key")
    assert serving.post("/homepage", {"customer_id": "c1"},
                        key=serving.secret_key).status_code == 200
