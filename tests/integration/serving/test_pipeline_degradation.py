"""Degradation: an unreachable or hanging online store, a failing model, no models at all.
Every case answers a well-formed request with a 200-shaped fallback, counted in metrics."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from tailor.serving.fallback import popular_from_warehouse
from tailor.serving.schemas import (
    AlsoBoughtRequest, CartLine, CheckoutOfferRequest, HomepageRequest,
)


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def a_customer(pipeline) -> str:
    return str(pipeline.slots["homepage"].current.model.customers.ids[0])


def cart_request(customer: str) -> CheckoutOfferRequest:
    return CheckoutOfferRequest(customer_id=customer, session_id="s-9",
                                cart=[CartLine(product_id="p00001", price=30.0)])


class Counts:
    """Metric values before an action, to read what the action added."""

    def __init__(self, metrics, *series: tuple[str, dict[str, str]]) -> None:
        self.metrics, self.series = metrics, series
        self.before = [metrics.value(name, labels) for name, labels in series]

    def added(self) -> list[float]:
        return [self.metrics.value(name, labels) - before
                for (name, labels), before in zip(self.series, self.before)]


def fallbacks(endpoint: str, reason: str) -> tuple[str, dict[str, str]]:
    return "tailor_fallbacks_total", {"endpoint": endpoint, "reason": reason}


def test_an_unreachable_store_gives_counted_popularity_fallbacks(served_home,
                                                                 pipeline_factory) -> None:
    settings = served_home.settings.replace(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    degraded = pipeline_factory(settings)
    customer = a_customer(degraded)
    counts = Counts(degraded.metrics, fallbacks("homepage", "feature_store"),
                    ("tailor_requests_total", {"endpoint": "homepage", "outcome": "fallback"}),
                    fallbacks("checkout_offer", "feature_store"))
    answer = degraded.homepage(HomepageRequest(customer_id=customer, k=6))
    assert (answer.fallback, answer.personalised, answer.model_version) == (True, False, None)
    assert answer.fallback_reason.startswith("feature store unavailable: ")
    assert [item.product_id for item in answer.items] == \
        [product for product, _ in degraded.fallback.current.overall[:6]]
    assert {item.reason for item in answer.items} == {"popular right now"}
    offer = degraded.checkout_offer(cart_request(customer))
    assert (offer.fallback, offer.p_abandon, offer.offer) == (True, None, "none")
    assert offer.reason.startswith("no offer: feature store unavailable")
    assert counts.added() == [1, 1, 1]
    # Cross-sell needs no online features: it still answers from the model.
    assert not degraded.also_bought(AlsoBoughtRequest(product_id="p00001")).fallback
    status = degraded.status()
    assert status["ready"] and status["features"]["homepage"]["last_error"]
    assert status["features"]["homepage"]["fast_path"]  # Redis, read directly


STORE_TIMEOUT_MS = 5_000  # the hanging store's read timeout: far beyond the request budget


def test_a_hanging_store_runs_out_the_time_budget(served_home, pipeline_factory) -> None:
    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        settings = served_home.settings.replace(
            redis_url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
            features_online_timeout_ms=STORE_TIMEOUT_MS, serving_timeout_ms=60)
        slow = pipeline_factory(settings)
        # The warm-up's reads failed against the silent store and paused each reader for
        # RETRY_SECONDS; the pause is ended here, not slept through, so the requests below
        # ask the store.
        for reader in slow.features.values():
            reader._down_until = 0.0
        counts = Counts(slow.metrics, fallbacks("homepage", "timeout"),
                        fallbacks("checkout_offer", "timeout"))
        customer = a_customer(slow)

        async def both():
            return await asyncio.gather(
                slow.ahomepage(HomepageRequest(customer_id=customer, k=4)),
                slow.acheckout_offer(cart_request(customer)))

        # The budget is honoured: an answer that waited for the store would need the store's
        # whole timeout, and wait_for gives up at half of it (a timeout, not a speed figure).
        homepage, offer = asyncio.run(asyncio.wait_for(both(), STORE_TIMEOUT_MS / 1000 / 2))
    finally:
        silent.close()
    assert homepage.fallback and homepage.fallback_reason == "timeout: no answer within 60 ms"
    assert len(homepage.items) == 4 and not homepage.personalised
    assert offer.fallback and offer.offer == "none" and "timeout" in offer.reason
    assert counts.added() == [1, 1]


def test_the_async_path_answers_like_the_sync_one_within_budget(pipeline) -> None:
    customer = a_customer(pipeline)
    request = HomepageRequest(customer_id=customer, k=5)
    answer = asyncio.run(pipeline.ahomepage(request))
    assert not answer.fallback
    assert [item.product_id for item in answer.items] == \
        [item.product_id for item in pipeline.homepage(request).items]
    also = asyncio.run(pipeline.aalso_bought(AlsoBoughtRequest(product_id="p00002", k=3)))
    assert not also.fallback and len(also.items) == 3


def test_a_failing_model_gives_a_fallback_and_counts_an_error(served_home,
                                                              pipeline_factory) -> None:
    # Every request through the model (no candidates found ahead from the intact model).
    broken = pipeline_factory(served_home.settings.replace(serving_precomputed_customers=0))
    customer = a_customer(broken)
    homepage = broken.slots["homepage"].current
    # A corrupt model object: 3 item vectors for a catalogue of 100 (a row's blend fails).
    homepage.model.item_factors = homepage.model.item_factors[:3]
    assert homepage.model.customer_tiers(homepage.model.customers.lookup([customer]))[0] == 2
    broken.slots["checkout"].current.prepared.feature_names.pop()  # one column short
    counts = Counts(broken.metrics, fallbacks("homepage", "model_error"),
                    ("tailor_errors_total", {"endpoint": "homepage"}),
                    fallbacks("checkout_offer", "model_error"))
    answer = broken.homepage(HomepageRequest(customer_id=customer, k=5))
    assert answer.fallback and len(answer.items) == 5
    assert answer.fallback_reason.startswith(f"homepage model v{homepage.version} failed: "
                                             "ValueError")
    offer = broken.checkout_offer(cart_request(customer))
    assert offer.fallback and offer.fallback_reason.startswith("checkout model v")
    assert counts.added() == [1, 1, 1]


def test_without_models_the_warehouse_popularity_serves(served_home, pipeline_factory,
                                                        tmp_path: Path,
                                                        empty_bentoml_store) -> None:
    settings = served_home.settings.replace(
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty-registry.db'}",
        serving_bentoml_home=str(tmp_path / "empty-bentoml"))  # no registry, no stored model
    bare = pipeline_factory(settings)
    assert bare.ready()
    expected = popular_from_warehouse(settings, settings.serving_fallback_size)
    assert bare.fallback.current.source.startswith("warehouse")
    answer = bare.homepage(HomepageRequest(customer_id=a_customer_id(served_home), k=5))
    assert answer.fallback and answer.fallback_reason.startswith("no homepage model loaded")
    assert [item.product_id for item in answer.items] == \
        [product for product, _ in expected.overall[:5]]
    also = bare.also_bought(AlsoBoughtRequest(product_id="p00002", k=4))
    category = bare.catalogue.get("p00002").category
    assert also.fallback and also.items[0].reason == f"popular in {category}"
    assert {item.reason for item in also.items} <= {f"popular in {category}", "popular right now"}
    offer = bare.checkout_offer(cart_request("c1"))
    assert (offer.fallback, offer.offer) == (True, "none")
    assert bare.status()["models"]["homepage"]["last_error"].startswith("no model registry yet")


def a_customer_id(served_home) -> str:
    return str(served_home.events()["customer_id"].iloc[0])


@pytest.mark.parametrize("endpoint", ["homepage", "also_bought", "checkout_offer"])
def test_every_answer_is_counted_with_its_latency(pipeline, endpoint: str) -> None:
    customer = a_customer(pipeline)
    call = {"homepage": lambda: pipeline.homepage(HomepageRequest(customer_id=customer)),
            "also_bought": lambda: pipeline.also_bought(AlsoBoughtRequest(product_id="p00003")),
            "checkout_offer": lambda: pipeline.checkout_offer(cart_request(customer))}[endpoint]
    counts = Counts(pipeline.metrics, ("tailor_request_seconds_count", {"endpoint": endpoint}),
                    ("tailor_requests_total", {"endpoint": endpoint, "outcome": "ok"}))
    assert not call().fallback
    assert counts.added() == [1, 1]
