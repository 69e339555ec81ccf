"""The serving pipeline on the real Redis online store (TAILOR_TEST_REDIS_URL): personalised
answers through the direct-HMGET fast path and the live session pushed to Redis steering the
homepage (the per-request cost with Redis in the loop is measured by bench/bench_serving.py).
The run uses its own Feast project (the suffix of every Redis key it writes) and deletes its
keys afterwards."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import prometheus_client  # noqa: F401  (before Feast sets PROMETHEUS_MULTIPROC_DIR)
import pytest

from shop_homes import build_shop_home, redis_settings

pytestmark = [pytest.mark.redis, pytest.mark.slow]

DAYS = 45
K = 10


@pytest.fixture(scope="module")
def served(redis_url: str, tmp_path_factory: pytest.TempPathFactory):
    """A small shop featurised into Redis, homepage and checkout trained; its pipeline."""
    import redis
    from mlflow.tracking import MlflowClient
    from prometheus_client import CollectorRegistry

    from tailor.features.build import run_features
    from tailor.serving.budget import RedisLedger
    from tailor.serving.metrics import ServingMetrics
    from tailor.serving.pipeline import ServingPipeline
    from tailor.training import train_model

    folder = tmp_path_factory.mktemp("serving_redis")
    home = folder / "home"
    settings = redis_settings(home, redis_url,
                              mlflow_tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}")
    project = settings.features_project
    shop = build_shop_home(settings, folder / "shop", customers=400, products=80, days=DAYS,
                           seed=5, ends_days_ago=10)
    run_features(settings, show_progress=False)
    for model in ("homepage", "checkout"):
        result = train_model(settings, model, trials=1, jobs=1)
        if not result.promoted:  # these tests judge serving, not promotion
            MlflowClient(settings.tracking_uri, settings.tracking_uri) \
                .set_registered_model_alias(f"tailor-{model}", "champion", result.version)
    budget_prefix = f"tailor-test:{project}:incentive_budget:"  # not the shop's real ledger
    pipeline = ServingPipeline(settings, start_watcher=False,
                               metrics=ServingMetrics(CollectorRegistry()),
                               ledger=RedisLedger(redis_url, 1e6, prefix=budget_prefix))
    client = redis.Redis.from_url(redis_url)
    try:
        yield settings, shop, pipeline
    finally:
        pipeline.close()
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
        keys += list(client.scan_iter(match=budget_prefix + "*"))
        if keys:
            client.delete(*keys)


def _customers(pipeline, tier: int) -> list[str]:
    model = pipeline.slots["homepage"].current.model
    tiers = model.customer_tiers(np.arange(len(model.customers)))
    return [str(model.customers.ids[row]) for row in np.flatnonzero(tiers == tier)]


def test_personalised_answers_through_the_fast_path(served) -> None:
    from tailor.serving.schemas import CartLine, CheckoutOfferRequest, HomepageRequest

    _, _, pipeline = served
    assert pipeline.features["homepage"].fast_path and pipeline.features["checkout"].fast_path
    model = pipeline.slots["homepage"].current.model
    for customer in _customers(pipeline, 2)[:5]:
        answer = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
        assert not answer.fallback and answer.personalised
        assert [item.product_id for item in answer.items] == \
            model.recommend([customer], k=K)["product_id"].tolist()
    offer = pipeline.checkout_offer(CheckoutOfferRequest(
        customer_id=_customers(pipeline, 2)[0], session_id="s-r",
        cart=[CartLine(product_id=str(model.products.ids[0]), quantity=1, price=25.0)]))
    assert not offer.fallback and 0 < offer.p_abandon < 1
    assert pipeline.status()["features"]["homepage"]["last_error"] is None


def test_a_session_pushed_to_redis_steers_the_homepage(served) -> None:
    from tailor.features.realtime import SessionFeaturePusher
    from tailor.serving.schemas import HomepageRequest

    settings, shop, pipeline = served
    model = pipeline.slots["homepage"].current.model
    customer = _customers(pipeline, 2)[3]
    plain = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
    shown = {str(model.categories[model.products.positions[item.product_id]])
             for item in plain.items}
    catalogue = pd.read_csv(shop / "products.csv")
    catalogue = catalogue[catalogue["inventory"] > 0]
    target = sorted(set(catalogue["category"]) - shown)[0]
    product = catalogue[catalogue["category"] == target].iloc[0]
    when = datetime.now(timezone.utc) - timedelta(seconds=10)
    SessionFeaturePusher(settings).push_events(pd.DataFrame([{
        "event_id": f"redis-serving-{customer}", "customer_id": customer,
        "event_type": "product_view", "product_id": product["product_id"], "timestamp": when,
        "session_id": "redis-serving", "price": product["price"], "quantity": None,
        "device_type": "desktop"}]))
    steered = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
    browsed = [slot for slot, item in enumerate(steered.items)
               if model.categories[model.products.positions[item.product_id]] == target]
    assert browsed == [3, 6, 9]
    assert steered.items[3].reason == f"because you are browsing {target}"
