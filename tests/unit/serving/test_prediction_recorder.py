"""The prediction log's writer: a bounded queue drained by a daemon thread.

A full queue drops and counts without holding the request up, `close` writes what is
queued, and a failing store is counted, logged once a minute and survived; the rows are
the answers' fields. A fake store stands in for the database (the real ones are tested in
tests/integration/test_prediction_store_backends.py).
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import pytest
from prometheus_client import CollectorRegistry

from tailor.events.prediction_store import PREDICTION_COLUMNS, open_prediction_store
from tailor.events.retry import RetryPolicy
from tailor.serving.metrics import ServingMetrics
from tailor.serving.prediction_recorder import (
    QUEUE_FULL, WRITE_FAILED, PredictionRecorder, prediction_row,
)
from tailor.serving.schemas import (
    AlsoBoughtRequest, AlsoBoughtResponse, CartLine, CheckoutOfferRequest,
    CheckoutOfferResponse, HomepageRequest, HomepageResponse, RecommendedItem,
)

WAIT = 10.0  # seconds a test waits for the writer thread before failing


class FakeStore:
    """Rows kept in a list; `gate` (when set) holds every insert until it is opened;
    `failures` errors are raised by the next inserts."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.inserts = 0
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        self.failures: list[BaseException] = []
        self.closed = 0
        self.url = "fake://"

    def insert_predictions(self, rows: Sequence[Sequence[Any]]) -> int:
        self.inserts += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(WAIT)
        if self.failures:
            raise self.failures.pop(0)
        self.rows += [tuple(row) for row in rows]
        return len(rows)

    def close(self) -> None:
        self.closed += 1


class Opener:
    """`open_store` for a recorder: hands out the fake store, counting the opens; raises
    the errors in `failures` first."""

    def __init__(self, store: FakeStore) -> None:
        self.store, self.opened, self.failures = store, 0, []

    def __call__(self) -> FakeStore:
        self.opened += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.store


def homepage_answer(number: int, customer: str = "c1") -> tuple[HomepageRequest, HomepageResponse]:
    request = HomepageRequest(customer_id=customer, k=2, context={"session_id": f"s{number}"})
    response = HomepageResponse(
        items=[RecommendedItem(product_id="p1", score=0.9, reason="because you bought p7"),
               RecommendedItem(product_id="p2", score=0.5, reason="popular right now")],
        model_version="4", variant="champion", fallback=False, fallback_reason=None,
        personalised=True, request_id=f"r{number}")
    return request, response


def recorder(store: FakeStore, **options: Any) -> tuple[PredictionRecorder, ServingMetrics]:
    metrics = ServingMetrics(CollectorRegistry())
    opener = options.pop("opener", None) or Opener(store)
    built = PredictionRecorder(opener, metrics, **{"queue_size": 100, "batch_rows": 10,
                                                   "flush_seconds": 0.05, **options})
    return built.start(), metrics


def record(target: PredictionRecorder, numbers: range, endpoint: str = "homepage") -> None:
    pairs = [homepage_answer(number) for number in numbers]
    target.record(endpoint, [request for request, _ in pairs], [response for _, response in pairs])


def dropped(metrics: ServingMetrics, reason: str) -> float:
    return metrics.value("tailor_predictions_dropped_total", {"reason": reason})


def test_answers_are_written_in_batches_in_the_order_served() -> None:
    store = FakeStore()
    log, metrics = recorder(store)
    record(log, range(25))
    assert log.flush(WAIT)
    assert [row[1] for row in store.rows] == [f"r{number}" for number in range(25)]
    assert store.inserts == 3  # batches of 10, 10 and 5
    assert metrics.value("tailor_predictions_logged_total", {"endpoint": "homepage"}) == 25
    assert log.status() == {"queued": 0, "written": 25, "dropped": {}, "last_error": None}
    log.close()


def test_a_full_queue_drops_and_counts_without_holding_the_request_up() -> None:
    store = FakeStore()
    store.gate = threading.Event()  # the database hangs
    log, metrics = recorder(store, queue_size=1_000, batch_rows=1)
    record(log, range(1))
    assert store.entered.wait(WAIT)  # the writer is stuck inside the store
    record(log, range(1, 1_006))  # returns while the store still hangs: nothing waited
    assert not store.gate.is_set() and log.status()["queued"] == 1_000
    assert dropped(metrics, QUEUE_FULL) == 5 and log.dropped[QUEUE_FULL] == 5
    store.gate.set()
    assert log.flush(WAIT)
    assert len(store.rows) == 1_001 and log.written == 1_001
    log.close()


def test_close_writes_what_is_queued_and_takes_nothing_after() -> None:
    store = FakeStore()
    log, _ = recorder(store, flush_seconds=60.0)  # the writer would sleep for a minute
    record(log, range(7))
    log.close()
    assert [row[1] for row in store.rows] == [f"r{number}" for number in range(7)]
    assert store.closed == 1  # the writer closed its store on the way out
    record(log, range(7, 9))
    assert len(store.rows) == 7 and log.status()["queued"] == 0


def test_a_failing_store_is_counted_logged_once_and_survived(
        caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    store.failures = [sqlite3.OperationalError("disk I/O error") for _ in range(3)]
    opener = Opener(store)
    log, metrics = recorder(store, opener=opener)
    with caplog.at_level(logging.ERROR, logger="tailor.serving.prediction_recorder"):
        for batch in range(3):
            record(log, range(batch * 2, batch * 2 + 2))
            assert log.flush(WAIT)
    assert dropped(metrics, WRITE_FAILED) == 6 and log.written == 0
    assert log.last_error == "OperationalError: disk I/O error"
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and "2 answer(s) not recorded" in errors[0].getMessage()
    assert opener.opened == 3  # each failed write closes the store; the next one reopens it
    record(log, range(10, 12))
    assert log.flush(WAIT)
    assert [row[1] for row in store.rows] == ["r10", "r11"] and log.last_error is None
    log.close()


def test_a_store_that_cannot_be_opened_drops_its_batch_and_is_tried_again() -> None:
    store = FakeStore()
    opener = Opener(store)
    opener.failures = [RuntimeError("no such database")]
    log, metrics = recorder(store, opener=opener)
    record(log, range(3))
    assert log.flush(WAIT)
    record(log, range(3, 4))
    assert log.flush(WAIT)
    assert dropped(metrics, WRITE_FAILED) == 3 and [row[1] for row in store.rows] == ["r3"]
    log.close()


def test_a_dropped_connection_is_retried_and_nothing_is_lost() -> None:
    store = FakeStore()
    store.failures = [ConnectionResetError("server closed the connection")]
    log, metrics = recorder(store, retry=RetryPolicy(retries=2, backoff_seconds=0.0))
    record(log, range(4))
    assert log.flush(WAIT)
    assert [row[1] for row in store.rows] == ["r0", "r1", "r2", "r3"]
    assert dropped(metrics, WRITE_FAILED) == 0 and store.inserts == 2
    log.close()


def test_an_excluded_customer_is_written_without_id_or_session() -> None:
    store = FakeStore()
    log, _ = recorder(store, is_excluded=lambda customer: customer == "gone")
    pairs = [homepage_answer(0, "gone"), homepage_answer(1, "kept")]
    log.record("homepage", [request for request, _ in pairs], [answer for _, answer in pairs])
    assert log.flush(WAIT)
    columns = [dict(zip(PREDICTION_COLUMNS, row)) for row in store.rows]
    assert [(row["customer_id"], row["session_id"]) for row in columns] == \
        [(None, None), ("kept", "s1")]
    log.close()


def test_context_beyond_the_session_is_never_written() -> None:
    """A client's extra context keys (free-form, possibly personal) stay out of the log."""
    request = HomepageRequest(customer_id="c1", context={
        "session_id": "s1", "email": "someone@example.com", "page": "/account?name=Jo"})
    _, response = homepage_answer(1)
    row = prediction_row(1, "homepage", request, response)
    written = repr(row)
    assert "someone@example.com" not in written and "name=Jo" not in written
    assert dict(zip(PREDICTION_COLUMNS, row))["session_id"] == "s1"


def test_rows_hold_each_endpoints_fields() -> None:
    request, response = homepage_answer(3)
    homepage = dict(zip(PREDICTION_COLUMNS, prediction_row(1_700_000_000_000_001, "homepage",
                                                            request, response,
                                                            latency_ms=4.56789)))
    assert homepage == {
        "served_at": 1_700_000_000_000_001, "request_id": "r3", "customer_id": "c1",
        "session_id": "s3", "endpoint": "homepage", "model": "homepage", "model_version": "4",
        "variant": "champion",
        "items": '[{"product_id": "p1", "score": 0.9, "reason": "because you bought p7"}, '
                 '{"product_id": "p2", "score": 0.5, "reason": "popular right now"}]',
        "k": 2, "p_abandon": None, "offer": None, "fallback": False, "fallback_reason": None,
        "stale": False, "personalised": True, "anchor_product_id": None, "experiment": None,
        "experiment_variant": None, "latency_ms": 4.568, "fallback_kind": None}
    companions = AlsoBoughtResponse(items=[], model_version=None, variant="challenger",
                                    fallback=True, fallback_reason="no model", request_id="a1")
    also = dict(zip(PREDICTION_COLUMNS, prediction_row(
        5, "also_bought", AlsoBoughtRequest(product_id="p9", k=4), companions,
        fallback_kind="no_model")))
    assert (also["latency_ms"], also["fallback_kind"]) == (None, "no_model")
    assert (also["customer_id"], also["model"], also["anchor_product_id"], also["k"]) == \
        (None, "cross_sell", "p9", 4)
    assert (also["items"], also["fallback"], also["fallback_reason"], also["personalised"]) == \
        ("[]", True, "no model", None)
    offer = CheckoutOfferResponse(p_abandon=0.8, offer="10_off", reason="likely to abandon",
                                  model_version="2", variant="champion", fallback=False,
                                  fallback_reason=None, stale=True, request_id="o1")
    cart = CheckoutOfferRequest(customer_id="c2", session_id="s-cart",
                                cart=[CartLine(product_id="p1")])
    checkout = dict(zip(PREDICTION_COLUMNS, prediction_row(6, "checkout_offer", cart, offer)))
    assert (checkout["model"], checkout["session_id"], checkout["k"], checkout["p_abandon"],
            checkout["offer"], checkout["stale"]) == ("checkout", "s-cart", None, 0.8,
                                                      "10_off", True)


def test_concurrent_requests_all_land_in_a_real_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    metrics = ServingMetrics(CollectorRegistry())
    log = PredictionRecorder(lambda: open_prediction_store(url), metrics, queue_size=10_000,
                             batch_rows=100, flush_seconds=0.05).start()
    threads = [threading.Thread(target=record, args=(log, range(start, start + 500)))
               for start in range(0, 2_000, 500)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    store = open_prediction_store(url)
    try:
        rows = store.predictions_after(0, 10_000)
    finally:
        store.close()
    assert sorted(row[2] for row in rows) == sorted(f"r{number}" for number in range(2_000))
    assert log.status()["dropped"] == {}


def test_the_recorder_and_the_pipeline_import_no_pandas() -> None:
    """In a fresh interpreter: serving's import stays light (the store reads need no frames)."""
    code = ("import sys, tailor.serving.pipeline, tailor.serving.prediction_recorder; "
            "print([name for name in ('pandas', 'pyarrow') if name in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
