"""The server under trouble, over HTTP (the session's real `bentoml serve`, two workers):
Redis killed mid-test gives fallback answers with status 200, and personalised ones once
it is back; a moved `champion` alias switches versions while a client keeps calling, with
no failed request; a version that cannot load leaves the old one serving."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from serving_home import metric_total
from waiting import wait_until

pytestmark = pytest.mark.slow

LOAD_ALLOWANCE_SECONDS = 60  # how long to wait before declaring a switch missing (a loaded
# 2-core machine took over 20 s to load a version in each of two workers)


def _homepage(serving) -> httpx.Response:
    return serving.post("/homepage", {"customer_id": serving.home.known_buyer, "k": 5})


def _cart_body(serving) -> dict:
    return {"customer_id": serving.home.known_buyer, "session_id": "s-outage",
            "cart": [{"product_id": product, "price": price}
                     for product, price in serving.home.cart_products]}


def test_redis_down_gives_fallbacks_then_personalised_answers_again(serving) -> None:
    from tailor.features.repo import materialize

    assert _homepage(serving).json()["personalised"]
    metrics = serving.get("/metrics", key=serving.secret_key).text
    fallbacks_before = metric_total(metrics, "tailor_fallbacks_total", endpoint="homepage",
                                    reason="feature_store")
    serving.redis.kill()
    try:
        answers = [_homepage(serving) for _ in range(8)]
        offer = serving.post("/checkout_offer", _cart_body(serving))
        metrics = serving.get("/metrics", key=serving.secret_key).text
    finally:
        serving.redis.start()
        materialize(serving.home.settings)  # it came back empty (no persistence)
    assert [response.status_code for response in answers] == [200] * 8
    for body in (response.json() for response in answers):
        assert body["fallback"] and not body["personalised"], body
        assert "feature store" in body["fallback_reason"] and len(body["items"]) == 5
    assert offer.status_code == 200
    assert offer.json()["fallback"] and offer.json()["offer"] == "none"
    assert metric_total(metrics, "tailor_fallbacks_total", endpoint="homepage",
                        reason="feature_store") - fallbacks_before == 8

    # Each worker and feature service retries the store a second after its last failure.
    for call in (lambda: _homepage(serving),
                 lambda: serving.post("/checkout_offer", _cart_body(serving))):
        _until_personalised_again(call, in_a_row=6, timeout=30)
    assert _homepage(serving).json()["personalised"]


def _until_personalised_again(call, in_a_row: int, timeout: float) -> None:
    """Call until `in_a_row` answers in a row are no fallback; every answer must be a 200."""
    deadline, streak = time.monotonic() + timeout, 0
    while streak < in_a_row:
        response = call()
        assert response.status_code == 200, response.text
        streak = 0 if response.json()["fallback"] else streak + 1
        assert time.monotonic() < deadline, f"still falling back: {response.json()}"
        time.sleep(0.1)


@dataclass
class Caller:
    """A client thread calling /homepage until stopped; new connection per request, so
    both workers are asked."""

    serving: object
    answers: list[tuple[float, int, dict]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                response = _homepage(self.serving)
                body = response.json() if response.status_code == 200 else {}
                self.answers.append((time.monotonic(), response.status_code, body))
            except httpx.HTTPError as error:
                self.answers.append((time.monotonic(), 0, {"error": repr(error)}))

    def versions_since(self, moment: float) -> list[str | None]:
        return [body.get("model_version") for when, _, body in list(self.answers)
                if when >= moment]


def _load_failures(serving) -> float:
    """Failed homepage model loads so far, both workers together."""
    metrics = serving.get("/metrics", key=serving.secret_key).text
    return metric_total(metrics, "tailor_model_load_failures_total", model="homepage")


def _register_copy(client, name: str, source_version: str) -> str:
    """A new registry version of the same artifact: what a retrain registers, minus the work."""
    original = client.get_model_version(name, source_version)
    return str(client.create_model_version(name, original.source, run_id=original.run_id).version)


def test_an_alias_move_switches_versions_without_a_failed_request(serving, tmp_path: Path
                                                                 ) -> None:
    from mlflow.tracking import MlflowClient

    uri = serving.home.settings.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name, old = "tailor-homepage", serving.champion("homepage")
    new = _register_copy(client, name, old)
    caller = Caller(serving)
    thread = threading.Thread(target=caller.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(caller.answers) >= 5, 30, "five answers before the move")
        moved_at = time.monotonic()
        client.set_registered_model_alias(name, "champion", new)
        # A wide ceiling against a switch that never happens; how fast a version loads is a
        # machine's figure, not this test's.
        wait_until(lambda: new in caller.versions_since(moved_at),
                   serving.reload_seconds + LOAD_ALLOWANCE_SECONDS, f"an answer from v{new}")
        # Both workers switched once the last answers all come from the new version.
        wait_until(lambda: caller.versions_since(time.monotonic() - 1.5)[-10:] == [new] * 10,
                   serving.reload_seconds + LOAD_ALLOWANCE_SECONDS,
                   f"ten answers in a row from v{new} (both workers switched)")

        broken = tmp_path / "broken-model"
        broken.mkdir()
        (broken / "MLmodel").write_text("this is not a model\n")
        bad = str(client.create_model_version(name, str(broken)).version)
        failures_before = _load_failures(serving)
        bad_at = time.monotonic()
        client.set_registered_model_alias(name, "champion", bad)
        # Every worker tries the alias's version at each reload and counts a failure: wait
        # for two rounds' worth, then for answers given after them.
        wait_until(lambda: _load_failures(serving) - failures_before >= 2 * serving.workers,
                   2 * serving.reload_seconds + LOAD_ALLOWANCE_SECONDS,
                   f"two failed loads of v{bad} per worker")
        tried_at = time.monotonic()
        wait_until(lambda: len(caller.versions_since(tried_at)) >= 10, 30,
                   "ten answers after the failed loads")
        after_bad = caller.versions_since(bad_at)
    finally:
        caller.stop.set()
        thread.join(timeout=30)
        client.set_registered_model_alias(name, "champion", new)

    failed = [(status, body) for _, status, body in caller.answers
              if status != 200 or body.get("fallback")]
    assert not failed, failed[:3]
    versions = caller.versions_since(moved_at)
    assert set(versions) <= {old, new} and versions[-1] == new
    assert after_bad and set(after_bad) == {new}, "the broken version must not replace it"
    metrics = serving.get("/metrics", key=serving.secret_key).text
    assert metric_total(metrics, "tailor_model_load_failures_total", model="homepage") >= 1
    assert metric_total(metrics, "tailor_model_info", model="homepage", version=new) >= 1
    assert metric_total(metrics, "tailor_model_info", model="homepage", version=old) == 0
