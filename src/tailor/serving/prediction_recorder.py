"""The prediction log's writer: every answer served, recorded off the request path.

Reads the answers the pipeline hands it, and the exclusion list (an opted-out or deleted
customer's id is never written). Writes the event store's `predictions` table
(`tailor.events.prediction_store`), Prometheus counts (`tailor_predictions_logged_total`,
`tailor_predictions_dropped_total`) and throttled error logs.

`record` is all a request pays: the answers are appended to a bounded in-process queue, as
they are (no conversion, no I/O, no lock). A daemon thread wakes every
`monitoring.prediction_flush_seconds` (or as soon as a batch is waiting), turns what is
queued into rows and writes them, `monitoring.prediction_batch_rows` to a transaction. A full
queue drops the answer and counts it (`queue_full`): a request never waits for the log.
A dropped database connection is retried like the importer's writes (`ingest.retries`; a
request id is stored once however often it is written); a write that still fails drops
its batch, counted (`write_failed`) and logged once a minute, and the next batch opens the
store again. `close` writes what is queued before it returns (bounded by its timeout).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Callable, Sequence

from tailor.events.prediction_store import ENDPOINT_MODELS, PredictionStore, open_prediction_store
from tailor.events.retry import RetryPolicy, with_retries
from tailor.throttled_log import ThrottledLog, error_key

if TYPE_CHECKING:
    from tailor.config import Settings
    from tailor.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

QUEUE_FULL = "queue_full"
WRITE_FAILED = "write_failed"
CLOSE_TIMEOUT_SECONDS = 10.0


def _nobody(_customer_id: str) -> bool:
    return False


def _items_json(response: Any) -> str:
    """The answer's products in served order, each with its score and reason, as JSON."""
    items = getattr(response, "items", None) or ()
    return json.dumps([{"product_id": item.product_id, "score": item.score,
                        "reason": item.reason} for item in items])


def _session_id(request: Any) -> str | None:
    """The session a request names: a checkout request's field, else its context's."""
    session = getattr(request, "session_id", None)
    if session is None:
        session = (getattr(request, "context", None) or {}).get("session_id")
    return session


def prediction_row(served_at_micros: int, endpoint: str, request: Any, response: Any,
                   is_excluded: Callable[[str], bool] = _nobody, *,
                   latency_ms: float | None = None, fallback_kind: str | None = None) -> tuple:
    """One answer as a row of `PREDICTION_COLUMNS`.

    Args:
        served_at_micros: when it was answered, epoch microseconds (UTC).
        endpoint: homepage, also_bought or checkout_offer.
        request, response: the pydantic bodies of `tailor.serving.schemas`.
        is_excluded: whether a customer id belongs to an opted-out or deleted customer
            (their id is written as NULL, and so is the session, which would link to them).
        latency_ms: how long the answer took (None: not measured).
        fallback_kind: a fallback's kind (the metric label; None: no fallback or unknown).
    """
    customer_id = getattr(request, "customer_id", None)
    session_id = _session_id(request)
    if customer_id is not None and is_excluded(customer_id):
        customer_id = session_id = None
    return (
        served_at_micros, response.request_id, customer_id, session_id, endpoint,
        ENDPOINT_MODELS[endpoint], response.model_version, response.variant,
        _items_json(response),
        getattr(request, "k", None) if endpoint != "checkout_offer" else None,
        getattr(response, "p_abandon", None), getattr(response, "offer", None),
        bool(response.fallback), response.fallback_reason, bool(response.stale),
        getattr(response, "personalised", None),
        getattr(request, "product_id", None) if endpoint == "also_bought" else None,
        getattr(response, "experiment", None), getattr(response, "experiment_variant", None),
        None if latency_ms is None else round(float(latency_ms), 3),
        fallback_kind if response.fallback else None,
    )


class PredictionRecorder:
    """A bounded queue of answers and the daemon thread that writes them.

    Args:
        open_store: opens the prediction store (called on the writer thread, again after a
            failed write).
        metrics: where the logged and dropped answers are counted.
        queue_size: most answers waiting; more are dropped and counted.
        batch_rows: most answers written in one transaction.
        flush_seconds: longest an answer waits before the writer wakes for it.
        is_excluded: whether a customer id is an opted-out or deleted customer's.
        retry: retries of a dropped database connection.
    """

    def __init__(self, open_store: Callable[[], PredictionStore], metrics: ServingMetrics, *,
                 queue_size: int, batch_rows: int = 500, flush_seconds: float = 0.5,
                 is_excluded: Callable[[str], bool] = _nobody,
                 retry: RetryPolicy | None = None) -> None:
        self.open_store = open_store
        self.metrics = metrics
        self.queue_size = queue_size
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.is_excluded = is_excluded
        self.retry = retry or RetryPolicy()
        self.written = 0
        self.dropped: Counter[str] = Counter()
        self.last_error: str | None = None
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._drop_lock = threading.Lock()
        self._closed = False
        self._store: PredictionStore | None = None
        self._thread: threading.Thread | None = None
        self._errors = ThrottledLog(log)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: ServingMetrics,
                      is_excluded: Callable[[str], bool] = _nobody) -> "PredictionRecorder":
        """A recorder into the event store of `database_url`, sized by the `monitoring`
        settings, retrying as `ingest.retries` says."""
        url = settings.event_store_url
        return cls(lambda: open_prediction_store(url), metrics,
                   queue_size=settings.monitoring_prediction_queue_size,
                   batch_rows=settings.monitoring_prediction_batch_rows,
                   flush_seconds=settings.monitoring_prediction_flush_seconds,
                   is_excluded=is_excluded, retry=RetryPolicy.from_settings(settings))

    # -- the request side --------------------------------------------------------------------

    def record(self, endpoint: str, requests: Sequence[Any], responses: Sequence[Any],
               latency_ms: float | None = None,
               fallback_kinds: Sequence[str | None] | None = None) -> None:
        """Queue answers (request i answered by response i, in `latency_ms`, a fallback of
        kind `fallback_kinds[i]`) for the writer; never blocks."""
        if self._closed:
            return
        served_at = time.time_ns() // 1000
        queue = self._queue
        dropped = 0
        kinds = fallback_kinds if fallback_kinds is not None else (None,) * len(responses)
        for request, response, kind in zip(requests, responses, kinds):
            if len(queue) >= self.queue_size:
                dropped += 1
            else:
                queue.append((served_at, endpoint, request, response, latency_ms, kind))
        if dropped:
            self._drop(QUEUE_FULL, dropped)
        if len(queue) >= self.batch_rows:
            self._wake.set()

    def _drop(self, reason: str, count: int) -> None:
        with self._drop_lock:
            self.dropped[reason] += count
        self.metrics.predictions_dropped(reason, count)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "PredictionRecorder":
        """Start the writer thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tailor-prediction-log",
                                            daemon=True)
            self._thread.start()
        return self

    def flush(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> bool:
        """Wait until every answer recorded before the call is written (or dropped).

        Returns:
            False when the writer did not get there within `timeout` (or is not running).
        """
        if self._thread is None or not self._thread.is_alive():
            return False
        marker = threading.Event()
        self._queue.append(marker)  # not an answer: the queue's limit does not apply
        self._wake.set()
        return marker.wait(timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Stop taking answers, write the queued ones and stop the writer (at most `timeout`)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("prediction log: %d answer(s) still queued after %.0f s at "
                            "shutdown; not written", len(self._queue), timeout)

    def status(self) -> dict[str, Any]:
        """Queued, written and dropped answers, and the last write error (for /status)."""
        return {"queued": len(self._queue), "written": self.written,
                "dropped": dict(self.dropped), "last_error": self.last_error}

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
                stopping = self._closed
                self._drain()
                if stopping:
                    return
        finally:
            self._close_store()

    def _drain(self) -> None:
        """Write everything queued, a batch at a time; tell the flush markers met."""
        while self._queue:
            batch, markers = self._take_batch()
            if batch:
                self._write(batch)
            for marker in markers:
                marker.set()

    def _take_batch(self) -> tuple[list[tuple], list[threading.Event]]:
        """Up to `batch_rows` answers from the queue, stopping after a flush marker."""
        batch: list[tuple] = []
        markers: list[threading.Event] = []
        while len(batch) < self.batch_rows:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, threading.Event):
                markers.append(item)
                break
            batch.append(item)
        return batch, markers

    def _write(self, batch: list[tuple]) -> None:
        """Write one batch; a failure drops it, counted and logged, and never propagates."""
        try:
            rows = [prediction_row(served_at, endpoint, request, response, self.is_excluded,
                                   latency_ms=latency_ms, fallback_kind=kind)
                    for served_at, endpoint, request, response, latency_ms, kind in batch]
            with_retries(lambda _attempt: self._opened().insert_predictions(rows),
                         f"{len(rows)} prediction(s)", self.retry)
        except Exception as error:
            self._drop(WRITE_FAILED, len(batch))
            self.last_error = f"{type(error).__name__}: {' '.join(str(error).split())}"
            self._errors.log(logging.ERROR, "write:" + error_key(error),
                             "prediction log: %d answer(s) not recorded: %s", len(batch),
                             self.last_error, exc_info=error)
            self._close_store()  # the next batch opens it again
            return
        self.written += len(batch)
        self.last_error = None
        for endpoint, count in Counter(item[1] for item in batch).items():
            self.metrics.predictions_logged(endpoint, count)

    def _opened(self) -> PredictionStore:
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # a broken connection may fail to close; it is dropped anyway
                log.debug("prediction log: closing the store failed", exc_info=True)
