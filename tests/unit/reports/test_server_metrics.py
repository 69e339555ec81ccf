"""The server's latency, fallbacks and errors as the daily report reads them from /metrics:
the Prometheus text of the serving metrics, percentiles from the buckets, the period since
the previous reading, a restarted server, a key refused and a server that is down."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tailor.config import REPORT_METRICS_KEY_ENV, Settings, load_settings
from tailor.reports.server_metrics import (
    endpoint_figures, metrics_url, parse_counters, quantile, read_server,
)
from tailor.serving.metrics import ServingMetrics

NOW = datetime(2026, 3, 3, 3, 15, tzinfo=timezone.utc)
KEY = "sk-test-key"


def serving_text(latencies: list[float], fallbacks: int = 0, errors: int = 0) -> str:
    """/metrics text of a pipeline that answered homepage requests in `latencies` seconds,
    the first `fallbacks` of them fallbacks (reason timeout)."""
    metrics = ServingMetrics(CollectorRegistry())
    for number, seconds in enumerate(latencies):
        fallback = number < fallbacks
        metrics.observe("homepage", seconds, "fallback" if fallback else "ok")
        if fallback:
            metrics.fallback("homepage", "timeout")
    for _ in range(errors):
        metrics.error("homepage")
    return generate_latest(metrics.registry).decode()


def test_percentiles_interpolate_inside_the_buckets() -> None:
    # 100 requests: 50 up to 1 ms, 40 in (1, 2] ms, 10 in (2, 5] ms
    buckets = [(0.001, 50.0), (0.002, 90.0), (0.005, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == (pytest.approx(0.001), False)
    assert quantile(0.75, buckets)[0] == pytest.approx(0.001 + 0.001 * 25 / 40)
    assert quantile(0.99, buckets)[0] == pytest.approx(0.002 + 0.003 * 9 / 10)
    assert quantile(0.5, [(0.001, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.99, [(0.001, 1.0), (float("inf"), 100.0)]) == (0.001, True)


def test_the_metrics_text_gives_requests_fallbacks_errors_and_latency() -> None:
    latencies = [0.0004] * 60 + [0.004] * 30 + [0.04] * 10
    counters = parse_counters(serving_text(latencies, fallbacks=5, errors=2))
    [homepage, also_bought, checkout] = endpoint_figures(counters)
    assert (homepage.requests, homepage.fallbacks, homepage.errors) == (100, 5, 2)
    assert homepage.fallback_rate == pytest.approx(0.05)
    assert homepage.error_rate == pytest.approx(0.02)
    assert homepage.fallback_reasons == {"timeout": 5}
    assert homepage.p50 == pytest.approx(0.0005 * 50 / 60)  # inside the first bucket
    assert 0.003 < homepage.p95 <= 0.05 and homepage.p99 <= 0.05
    assert also_bought.requests == 0 and also_bought.p50 is None and checkout.error_rate is None


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    body = ""

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self.send_response(401)
            self.end_headers()
            return
        payload = type(self).body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def metrics_server(body: str) -> Iterator[str]:
    handler = type("Handler", (_MetricsHandler,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv(REPORT_METRICS_KEY_ENV, KEY)
    return load_settings(home=tmp_path / "home", env={})


def test_a_reading_covers_the_time_since_the_previous_one(settings: Settings) -> None:
    with metrics_server(serving_text([0.001] * 10, fallbacks=1)) as url:
        first = read_server(settings.replace(report_metrics_url=url), NOW)
    assert first.status == "read" and first.since is None and "server started" in first.note
    with metrics_server(serving_text([0.001] * 10 + [0.02] * 30, fallbacks=4)) as url:
        second = read_server(settings.replace(report_metrics_url=url),
                             NOW + timedelta(days=1), [first.to_dict()])
    homepage = second.endpoints[0]
    assert second.since == NOW.isoformat() and "previous reading" in second.note
    assert (homepage.requests, homepage.fallbacks) == (30, 3)
    assert homepage.p50 > 0.015  # only the 30 slower requests of the second day


def test_a_restarted_server_counts_from_its_start(settings: Settings) -> None:
    with metrics_server(serving_text([0.001] * 50)) as url:
        before = read_server(settings.replace(report_metrics_url=url), NOW)
        after = read_server(settings.replace(report_metrics_url=url), NOW + timedelta(days=1),
                            [before.to_dict()])
    with metrics_server(serving_text([0.001] * 7)) as url:
        restarted = read_server(settings.replace(report_metrics_url=url),
                                NOW + timedelta(days=2), [before.to_dict(), after.to_dict()])
    assert after.endpoints[0].requests == 0
    assert restarted.since is None and "restarted" in restarted.note
    assert restarted.endpoints[0].requests == 7


def test_a_refused_key_and_a_server_that_is_down_are_said_not_raised(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REPORT_METRICS_KEY_ENV, "wrong")
    with metrics_server("") as url:
        refused = read_server(settings.replace(report_metrics_url=url), NOW)
    assert refused.status == "refused" and REPORT_METRICS_KEY_ENV in refused.note
    down = read_server(settings.replace(report_metrics_url="http://127.0.0.1:9/metrics"), NOW)
    assert down.status == "unreachable" and down.endpoints == []


def test_the_default_url_is_the_serving_address(settings: Settings) -> None:
    assert metrics_url(settings) == "http://127.0.0.1:3000/metrics"
    assert metrics_url(settings.replace(serving_host="0.0.0.0", serving_port=8080)) \
        == "http://127.0.0.1:8080/metrics"
    assert metrics_url(settings.replace(serving_host="::")) == "http://[::1]:3000/metrics"
