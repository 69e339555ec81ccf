"""HTTP request metrics of the serving app, labelled by route, and the text of /metrics.

Writes to the process-wide `prometheus_client` registry (multiprocess files under BentoML,
summed over the workers by `metrics_text`); reads nothing else. Names:

    tailor_http_requests_total{route,method,status}   every answer, refusals included
    tailor_http_request_seconds{route}                histogram, request to last body byte

BentoML's own HTTP metrics label each request with its raw path, so any client, without a
key, could add a series per made-up path (500 long paths grew /metrics to 100 MB; issue
21). The service turns them off (`metrics: {"enabled": false}`) and counts here instead:
`route` is one of the routes the app has, else `other`; `method` one of the HTTP methods,
else `other`; `status` the answer's code. No label holds text a client chose.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from tailor.web.security_headers import ASGIApp, Message, Receive, Scope, Send, route_path

OTHER = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass
class _HttpCollectors:
    requests: Any
    seconds: Any


_collectors: _HttpCollectors | None = None
_lock = threading.Lock()


def _http_collectors() -> _HttpCollectors:
    """The metric objects, created once per process (two apps in one process share them)."""
    global _collectors
    with _lock:
        if _collectors is None:
            from prometheus_client import Counter, Histogram

            _collectors = _HttpCollectors(
                requests=Counter("tailor_http_requests", "HTTP answers by route, method and "
                                 "status (route 'other': a path the app does not have).",
                                 ["route", "method", "status"]),
                seconds=Histogram("tailor_http_request_seconds", "Time from request to the "
                                  "answer's last byte, by route.", ["route"],
                                  buckets=LATENCY_BUCKETS))
        return _collectors


def route_label(path: str, routes: frozenset[str]) -> str:
    """`path` when it is one of `routes` (a trailing slash aside), else `other`."""
    if path in routes:
        return path
    trimmed = path.rstrip("/")
    return trimmed if trimmed in routes else OTHER


def method_label(method: str) -> str:
    """The HTTP method, or `other` for a method nobody serves (clients choose it freely)."""
    return method if method in METHODS else OTHER


class RouteMetricsMiddleware:
    """Count every HTTP answer by route, method and status, and time it.

    Args:
        app: the ASGI app to measure.
        routes: the paths the app serves; any other path is counted as `other`.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[str]) -> None:
        self.app = app
        self.routes = frozenset(routes)
        self.metrics = _http_collectors()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(route_path(scope), self.routes)
        method = method_label(str(scope.get("method", "")))
        started = time.perf_counter()
        status = 500  # an app that raises before answering is answered 500 by the server

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self.metrics.seconds.labels(route=route).observe(time.perf_counter() - started)


def metrics_text() -> tuple[bytes, str]:
    """The Prometheus text of every metric of this server and its content type: summed over
    the worker processes when prometheus_client runs in multiprocess mode (under BentoML),
    else this process's default registry."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(_HistogramsInOrder(registry)), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class _HistogramsInOrder:
    """A registry view whose histogram samples come as the exposition format orders them
    (per label set: buckets, then count, then sum); the multiprocess collector mixes them,
    as BentoML's own /metrics notes and corrects the same way."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Any:
        for metric in self.registry.collect():
            if metric.type == "histogram":
                metric.samples.sort(key=_histogram_order)
            yield metric


def _histogram_order(sample: Any) -> tuple[Any, ...]:
    labels = tuple(sorted((key, value) for key, value in sample.labels.items() if key != "le"))
    suffix = next((rank for rank, end in enumerate(("_bucket", "_count", "_sum"))
                   if sample.name.endswith(end)), 3)
    bound = float(sample.labels["le"]) if suffix == 0 and "le" in sample.labels else 0.0
    return labels, suffix, bound
