"""Prometheus metrics of the serving pipeline.

Writes to a `prometheus_client` registry (the process-wide default unless one is given);
reads nothing. Names:

    tailor_request_seconds{endpoint}               histogram, time inside the pipeline
    tailor_requests_total{endpoint,outcome}        outcome: ok or fallback
    tailor_fallbacks_total{endpoint,reason}        reason: a short kind (timeout, no_model, ...)
    tailor_errors_total{endpoint}                  unexpected errors (answered with a fallback)
    tailor_stale_answers_total{endpoint}           answers built on stale features (flagged
                                                   `stale` in the answer)
    tailor_batch_size{endpoint}                    histogram, requests per model call
    tailor_model_info{model,version}               1 for the version serving now
    tailor_model_load_failures_total{model}        versions that failed to load
    tailor_incentive_reservations_total{outcome}   checkout incentives against the daily
                                                   budget: granted, budget_spent or
                                                   ledger_unavailable (offered nothing)
    tailor_predictions_logged_total{endpoint}      answers written to the prediction log
    tailor_predictions_dropped_total{reason}       answers the prediction log lost:
                                                   queue_full (not waited for) or
                                                   write_failed (the store refused them)
    tailor_forgotten_rows_total{model}             forgotten customers taken out of a
                                                   loaded version in memory
    tailor_homepage_candidates_pending             customers whose homepage candidates are
                                                   still being found (0: every loaded
                                                   version's are ready), summed over workers

The metric objects are created once per registry and shared, so building two pipelines in
one process (tests, a reload) does not fail on duplicate registration.

Under BentoML (and once Feast is imported) prometheus_client runs in multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`): values live in per-process files that the server's /metrics
sums over its workers, and metrics of the same name and labels in one process share one
value, whatever registry they were created in. Read counts as differences, not totals.
The version gauge is `livemax` across workers, and a replaced version is set to 0 before
its label is dropped (a file keeps its last value).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
                   0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class _Collectors:
    """The metric objects registered in one registry, and the versions each model shows."""

    request_seconds: Any
    requests: Any
    fallbacks: Any
    errors: Any
    batch_size: Any
    model_info: Any
    load_failures: Any
    incentives: Any
    stale: Any
    predictions_logged: Any
    predictions_dropped: Any
    forgotten_rows: Any
    candidates_pending: Any
    versions: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_by_registry: "weakref.WeakKeyDictionary[Any, _Collectors]" = weakref.WeakKeyDictionary()
_creation_lock = threading.Lock()


def _create(registry: Any) -> _Collectors:
    from prometheus_client import Counter, Gauge, Histogram

    return _Collectors(
        request_seconds=Histogram("tailor_request_seconds",
                                  "Time a request spent in the serving pipeline.", ["endpoint"],
                                  buckets=LATENCY_BUCKETS, registry=registry),
        requests=Counter("tailor_requests", "Requests answered, by outcome (ok or fallback).",
                         ["endpoint", "outcome"], registry=registry),
        fallbacks=Counter("tailor_fallbacks", "Fallback answers, by the kind of reason.",
                          ["endpoint", "reason"], registry=registry),
        errors=Counter("tailor_errors", "Unexpected errors, each answered with a fallback.",
                       ["endpoint"], registry=registry),
        batch_size=Histogram("tailor_batch_size", "Requests scored by one model call.",
                             ["endpoint"], buckets=BATCH_BUCKETS, registry=registry),
        model_info=Gauge("tailor_model_info", "1 for the model version serving now.",
                         ["model", "version"], registry=registry,
                         multiprocess_mode="livemax"),
        load_failures=Counter("tailor_model_load_failures",
                              "Model versions that failed to load (the old one kept serving).",
                              ["model"], registry=registry),
        stale=Counter("tailor_stale_answers", "Answers built on stale features (the "
                      "customer's history older than its TTL), by endpoint.", ["endpoint"],
                      registry=registry),
        incentives=Counter("tailor_incentive_reservations",
                           "Checkout incentives checked against the daily budget, by outcome.",
                           ["outcome"], registry=registry),
        predictions_logged=Counter("tailor_predictions_logged",
                                   "Answers written to the prediction log, by endpoint.",
                                   ["endpoint"], registry=registry),
        predictions_dropped=Counter("tailor_predictions_dropped",
                                    "Answers the prediction log did not record: queue_full "
                                    "(the request was not held up) or write_failed.",
                                    ["reason"], registry=registry),
        forgotten_rows=Counter("tailor_forgotten_rows",
                               "Forgotten customers' rows taken out of a loaded model version "
                               "in memory, by model.", ["model"], registry=registry),
        candidates_pending=Gauge("tailor_homepage_candidates_pending",
                                 "Customers whose homepage candidates are still being found "
                                 "for a loaded version (tailor.serving.precomputed).",
                                 registry=registry, multiprocess_mode="livesum"))


def _collectors(registry: Any) -> _Collectors:
    with _creation_lock:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = _create(registry)
        return found


class ServingMetrics:
    """Records what the pipeline did; see the module docstring for the names.

    Args:
        registry: a `prometheus_client.CollectorRegistry`; None = the default REGISTRY
            (what `prometheus_client.generate_latest()` and BentoML's /metrics expose).
    """

    def __init__(self, registry: Any | None = None) -> None:
        if registry is None:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        self.registry = registry
        self._metrics = _collectors(registry)

    def observe(self, endpoint: str, seconds: float, outcome: str) -> None:
        """One answered request: its time in the pipeline and its outcome."""
        self._metrics.request_seconds.labels(endpoint=endpoint).observe(seconds)
        self._metrics.requests.labels(endpoint=endpoint, outcome=outcome).inc()

    def fallback(self, endpoint: str, reason: str) -> None:
        """One fallback answer; `reason` is a short kind, never free text (label cardinality)."""
        self._metrics.fallbacks.labels(endpoint=endpoint, reason=reason).inc()

    def error(self, endpoint: str) -> None:
        """One unexpected error (the request still got a fallback answer)."""
        self._metrics.errors.labels(endpoint=endpoint).inc()

    def stale(self, endpoint: str) -> None:
        """One answer built on stale features (defaults in place of the customer's history)."""
        self._metrics.stale.labels(endpoint=endpoint).inc()

    def batch_size(self, endpoint: str, size: int) -> None:
        """One model call that scored `size` requests."""
        self._metrics.batch_size.labels(endpoint=endpoint).observe(size)

    def model_version(self, model: str, version: str) -> None:
        """`model` now serves `version`: its info gauge moves to the new version label."""
        metrics = self._metrics
        with metrics.lock:
            previous = metrics.versions.get(model)
            if previous is not None and previous != version:
                metrics.model_info.labels(model=model, version=previous).set(0)
                metrics.model_info.remove(model, previous)
            metrics.model_info.labels(model=model, version=version).set(1)
            metrics.versions[model] = version

    def candidates_pending(self, change: int) -> None:
        """Customers added to (positive) or done with (negative) a homepage candidate fill."""
        self._metrics.candidates_pending.inc(change)

    def load_failure(self, model: str) -> None:
        """A version of `model` failed to load."""
        self._metrics.load_failures.labels(model=model).inc()

    def incentive(self, outcome: str) -> None:
        """One incentive checked against the daily budget: granted, budget_spent,
        ledger_unavailable, or released (granted, then given back: its request had run
        out of time)."""
        self._metrics.incentives.labels(outcome=outcome).inc()

    def predictions_logged(self, endpoint: str, count: int) -> None:
        """`count` answers of `endpoint` written to the prediction log."""
        self._metrics.predictions_logged.labels(endpoint=endpoint).inc(count)

    def predictions_dropped(self, reason: str, count: int = 1) -> None:
        """`count` answers not recorded: `queue_full` or `write_failed`."""
        self._metrics.predictions_dropped.labels(reason=reason).inc(count)

    def forgotten_rows(self, model: str, count: int) -> None:
        """`count` forgotten customers taken out of a loaded version of `model`."""
        self._metrics.forgotten_rows.labels(model=model).inc(count)

    def value(self, name: str, labels: dict[str, str]) -> float:
        """The current value of one sample (0 when it was never recorded), e.g.
        `value("tailor_fallbacks_total", {"endpoint": "homepage", "reason": "timeout"})`."""
        found = self.registry.get_sample_value(name, labels)
        return float(found) if found is not None else 0.0
