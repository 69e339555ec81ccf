"""Serving metrics: names and labels, a version gauge that moves, safe to create twice.

Each test uses label values of its own: once Feast is imported, prometheus_client runs in
multiprocess mode and same-named series share their value across registries.
"""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, generate_latest

from tailor.serving.metrics import ServingMetrics


def _label() -> str:
    return f"test_{uuid.uuid4().hex[:8]}"


def test_two_instances_on_one_registry_share_the_series() -> None:
    registry, endpoint = CollectorRegistry(), _label()
    first, second = ServingMetrics(registry), ServingMetrics(registry)
    first.observe(endpoint, 0.004, "ok")
    second.observe(endpoint, 0.02, "fallback")
    second.fallback(endpoint, "timeout")
    assert first.value("tailor_requests_total", {"endpoint": endpoint, "outcome": "ok"}) == 1
    assert first.value("tailor_request_seconds_count", {"endpoint": endpoint}) == 2
    assert first.value("tailor_request_seconds_bucket", {"endpoint": endpoint, "le": "0.005"}) \
        == 1
    assert first.value("tailor_fallbacks_total", {"endpoint": endpoint, "reason": "timeout"}) \
        == 1


def test_the_default_registry_can_be_used_twice() -> None:
    endpoint = _label()
    ServingMetrics().error(endpoint)
    ServingMetrics().error(endpoint)
    assert ServingMetrics().value("tailor_errors_total", {"endpoint": endpoint}) == 2


def test_the_model_version_gauge_keeps_only_the_serving_version() -> None:
    metrics, model, other = ServingMetrics(CollectorRegistry()), _label(), _label()
    metrics.model_version(model, "3")
    metrics.model_version(other, "1")
    metrics.model_version(model, "4")
    text = generate_latest(metrics.registry).decode()
    assert f'tailor_model_info{{model="{model}",version="4"}} 1.0' in text
    assert f'tailor_model_info{{model="{model}",version="3"}}' not in text
    assert f'tailor_model_info{{model="{other}",version="1"}} 1.0' in text


def test_batch_sizes_and_load_failures() -> None:
    metrics, endpoint, model = ServingMetrics(CollectorRegistry()), _label(), _label()
    for size in (1, 7, 32):
        metrics.batch_size(endpoint, size)
    metrics.load_failure(model)
    assert metrics.value("tailor_batch_size_sum", {"endpoint": endpoint}) == 40
    assert metrics.value("tailor_batch_size_bucket", {"endpoint": endpoint, "le": "8.0"}) == 2
    assert metrics.value("tailor_model_load_failures_total", {"model": model}) == 1
