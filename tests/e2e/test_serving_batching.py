"""Adaptive batching on (`serving.adaptive_batching`): homepage and checkout scoring go
through the `TailorScorer` service's batchable methods, and a frozen scorer costs a request
its batching, not its answer. A second real server on the session's trained home."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import httpx
import psutil
import pytest

from collector_process import free_port
from serving_home import Serving, logged_rows, metric_total
from waiting import wait_until

pytestmark = pytest.mark.slow

SCORER_TIMEOUT_MS = 500  # serving.timeout_ms of this server: how long a frozen scorer costs


@pytest.fixture(scope="module")
def batching(serving: Serving) -> Iterator[tuple[Serving, psutil.Process]]:
    """A one-worker server with adaptive batching, and its scorer's worker process."""
    from tailor.server import start_server

    settings = serving.home.settings.replace(serving_adaptive_batching="true",
                                             serving_timeout_ms=str(SCORER_TIMEOUT_MS))
    log_path = settings.home_path / "server-batching.log"
    with log_path.open("ab") as log:
        server = start_server(settings, host="127.0.0.1", port=free_port(), workers=1, log=log)
    batched = Serving(url=server.url, home=serving.home, redis=serving.redis,
                      secret_key=serving.secret_key, public_key=serving.public_key,
                      log_path=log_path, reload_seconds=settings.serving_reload_seconds)
    try:
        if not server.wait_ready(timeout=240):
            raise RuntimeError(f"the batching server did not become ready:\n{batched.log_tail()}")
        scorers = [child for child in psutil.Process(server.process.pid).children(recursive=True)
                   if "TailorScorer" in " ".join(child.cmdline())]
        assert len(scorers) == 1, [child.cmdline() for child in scorers]
        yield batched, scorers[0]
    finally:
        server.stop()


def _homepage(serving: Serving, customer_id: str) -> httpx.Response:
    return serving.post("/homepage", {"customer_id": customer_id, "k": 3})


BURST_ROUNDS = 12  # bursts sent at most (the first that batches ends it); meeting in one
#                   batch is up to timing: a busy machine served six bursts without two
#                   requests ever waiting together


def _burst(serving: Serving, customers: list[str]) -> list[httpx.Response]:
    """The customers' homepage requests, released together from one thread each."""
    gate = threading.Barrier(len(customers))

    def call(customer: str) -> httpx.Response:
        gate.wait(timeout=30)
        return _homepage(serving, customer)

    with ThreadPoolExecutor(len(customers)) as pool:
        return list(pool.map(call, customers))


def test_concurrent_requests_are_scored_in_batches_by_the_scorer(batching) -> None:
    serving, _ = batching
    customers = [serving.home.known_buyer] * 16 + [f"visitor-{n}" for n in range(16)]
    for _ in range(BURST_ROUNDS):
        before = serving.get("/metrics", key=serving.secret_key).text
        answers = _burst(serving, customers)
        assert [answer.status_code for answer in answers] == [200] * len(customers)
        assert not any(answer.json()["fallback"] for answer in answers)
        assert all(answer.json()["personalised"] for answer in answers[:16])
        after = serving.get("/metrics", key=serving.secret_key).text

        def grew(name: str) -> float:
            return (metric_total(after, name, endpoint="homepage")
                    - metric_total(before, name, endpoint="homepage"))

        # Only the scorer's batch method records batch sizes. BentoML's dispatcher refuses
        # (503) what it expects to miss max_latency_ms; those were answered in-process (200).
        scored_by_scorer, batches = grew("tailor_batch_size_sum"), grew("tailor_batch_size_count")
        assert 0 < scored_by_scorer <= len(customers)
        if batches < scored_by_scorer:
            break
    assert batches < scored_by_scorer, f"no two requests shared a batch in {BURST_ROUNDS} bursts"
    offer = serving.post("/checkout_offer", {
        "customer_id": serving.home.known_buyer, "session_id": "s-batch",
        "cart": [{"product_id": product, "price": price}
                 for product, price in serving.home.cart_products]})
    assert offer.status_code == 200 and not offer.json()["fallback"]


def _settled_logged_total(serving: Serving) -> float:
    """`tailor_predictions_logged_total` once it stopped moving for a second (the writer
    flushes every half second, so answers given just before are counted by then)."""
    seen: list[float] = []

    def settled() -> bool:
        seen.append(metric_total(serving.get("/metrics", key=serving.secret_key).text,
                                 "tailor_predictions_logged_total"))
        time.sleep(1.0)
        seen.append(metric_total(serving.get("/metrics", key=serving.secret_key).text,
                                 "tailor_predictions_logged_total"))
        return seen[-1] == seen[-2]

    wait_until(settled, 30, "the prediction log's counter to stop moving")
    return seen[-1]


def test_the_scorers_answers_are_logged_once_by_the_service(batching) -> None:
    """The scorer's pipeline records nothing; `Tailor` records each answer it returns."""
    serving, _ = batching
    before = _settled_logged_total(serving)  # the earlier tests' answers all written
    answers = _burst(serving, [serving.home.known_buyer] * 4 + [f"log-{n}" for n in range(4)])
    ids = [answer.json()["request_id"] for answer in answers]
    rows = logged_rows(serving.home.settings, ids)
    assert sorted(rows.index) == sorted(ids)
    time.sleep(1.5)  # a second writer (the scorer's) would have flushed by now
    after = metric_total(serving.get("/metrics", key=serving.secret_key).text,
                         "tailor_predictions_logged_total")
    assert after - before == len(ids)


def test_a_frozen_scorer_costs_the_budget_not_the_answer(batching) -> None:
    serving, scorer = batching
    os.kill(scorer.pid, signal.SIGSTOP)
    try:
        response = _homepage(serving, serving.home.known_buyer)  # the client waits 30 s
    finally:
        os.kill(scorer.pid, signal.SIGCONT)
    assert response.status_code == 200
    body = response.json()
    assert body["personalised"] and not body["fallback"], body  # answered in-process
    # The scorer's timeout was honoured: the answer came in-process instead of hanging until
    # the client gave up (a frozen scorer never answers).


def test_a_second_server_leaves_the_first_ones_metrics_alone(serving: Serving, batching) -> None:
    """BentoML empties its Prometheus folder when a server starts; each of ours has its own."""
    assert _homepage(serving, serving.home.known_buyer).status_code == 200
    metrics = serving.get("/metrics", key=serving.secret_key).text
    assert metric_total(metrics, "tailor_requests_total", endpoint="homepage") >= 1
