"""The homepage endpoint on a trained home: the model's list and reasons, opt-outs, the live
session steering the list (from the request context and from the online store), batches."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from tailor.features.realtime import SessionFeaturePusher
from tailor.privacy.excluded_customers import exclusions_path
from tailor.serving.exclusions import RECHECK_SECONDS
from tailor.serving.schemas import HomepageRequest
from waiting import wait_until

K = 10
PROMOTED_SLOTS = [3, 6, 9]  # floor(0.3 * n) browsed products in the first n, for n = 1..10


def homepage_model(pipeline):
    return pipeline.slots["homepage"].current.model


def customers_of_tier(model, tier: int) -> list[str]:
    """Customers the model treats as cold start (0), content-based (1) or collaborative (2)."""
    tiers = model.customer_tiers(np.arange(len(model.customers)))
    return [str(model.customers.ids[row]) for row in np.flatnonzero(tiers == tier)]


def category_of(model, product_id: str) -> str:
    return str(model.categories[model.products.positions[product_id]])


def unseen_category(model, items) -> str:
    """A category with in-stock products that the list does not show."""
    shown = {category_of(model, item.product_id) for item in items}
    in_stock = set(model.categories[np.asarray(model.in_stock, dtype=bool)].tolist())
    return sorted(in_stock - shown - {""})[0]


def ids(answer) -> list[str]:
    return [item.product_id for item in answer.items]


def test_the_list_is_the_models_own_with_its_reasons(served_home, pipeline) -> None:
    model = homepage_model(pipeline)
    for customer in customers_of_tier(model, 2)[:3] + customers_of_tier(model, 1)[:2] + \
            ["c-never-seen"]:
        answer = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
        expected = model.recommend([customer], k=K)
        assert ids(answer) == expected["product_id"].tolist()
        assert [item.reason for item in answer.items] == expected["reason"].tolist()
        assert [item.score for item in answer.items] == pytest.approx(expected["score"].tolist())
        assert (answer.fallback, answer.fallback_reason, answer.personalised) == \
            (False, None, True)
        assert answer.model_version == served_home.versions["homepage"]
        assert answer.variant == "champion" and re.fullmatch(r"[0-9a-f]{32}", answer.request_id)


def test_collaborative_customers_are_told_what_it_is_because_of(pipeline) -> None:
    model = homepage_model(pipeline)
    reasons = [item.reason for customer in customers_of_tier(model, 2)[:20]
               for item in pipeline.homepage(HomepageRequest(customer_id=customer)).items]
    assert any(re.fullmatch(r"because you (bought|viewed) .+", reason) for reason in reasons)
    assert all(reason for reason in reasons)


def test_an_opted_out_customer_gets_the_list_a_stranger_gets(served_home, pipeline) -> None:
    model = homepage_model(pipeline)
    customer = customers_of_tier(model, 2)[5]
    personal = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
    stranger = model.recommend(["\x00a stranger"], k=K)["product_id"].tolist()
    assert ids(personal) != stranger
    path = exclusions_path(served_home.settings)
    original = path.read_text(encoding="utf-8")
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"{customer},opted_out,{datetime.now(timezone.utc).isoformat()}\n")
        # The list is re-read within RECHECK_SECONDS of the change; asking is what re-reads it.
        wait_until(lambda: customer in pipeline.exclusions, RECHECK_SECONDS + 30,
                   "the pipeline to read the opt-out")
        answer = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
    finally:
        path.write_text(original, encoding="utf-8")
        wait_until(lambda: customer not in pipeline.exclusions, RECHECK_SECONDS + 30,
                   "the shared pipeline to forget the opt-out")
    assert (answer.personalised, answer.fallback) == (False, False)
    assert ids(answer) == stranger
    assert answer.model_version == served_home.versions["homepage"]


def test_browsed_categories_are_promoted_into_every_third_slot(pipeline) -> None:
    model = homepage_model(pipeline)
    customer = customers_of_tier(model, 2)[2]
    plain = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
    target = unseen_category(model, plain.items)
    steered = pipeline.homepage(HomepageRequest(customer_id=customer, k=K,
                                                context={"categories": [target.upper()]}))
    positions = [slot for slot, item in enumerate(steered.items)
                 if category_of(model, item.product_id) == target]
    assert positions == PROMOTED_SLOTS
    promoted = [steered.items[slot] for slot in positions]
    assert all(item.reason == f"because you are browsing {target}" for item in promoted)
    assert [item.score for item in promoted] == sorted((item.score for item in promoted),
                                                       reverse=True)
    # Everything else keeps the model's order and reasons; its first product stays first.
    others = [item for slot, item in enumerate(steered.items) if slot not in positions]
    assert [(item.product_id, item.reason) for item in others] == \
        [(item.product_id, item.reason) for item in plain.items[:len(others)]]
    assert steered.personalised and not steered.fallback


def test_an_unknown_category_in_the_context_changes_nothing(pipeline) -> None:
    customer = customers_of_tier(homepage_model(pipeline), 2)[2]
    plain = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
    other = pipeline.homepage(HomepageRequest(customer_id=customer, k=K, context={
        "categories": ["<script>alert(1)</script>"], "device": "mobile"}))
    assert ids(other) == ids(plain)


def _session_events(customer: str, products: pd.DataFrame) -> pd.DataFrame:
    when = datetime.now(timezone.utc) - timedelta(seconds=30)
    rows = [{"event_id": f"serving-{customer}-home", "customer_id": customer,
             "event_type": "page_view", "product_id": None, "timestamp": when,
             "session_id": f"serving-{customer}", "price": None, "quantity": None,
             "device_type": "mobile"}]
    for offset, product in enumerate(products.itertuples(), start=1):
        rows.append({"event_id": f"serving-{customer}-{offset}", "customer_id": customer,
                     "event_type": "product_view", "product_id": product.product_id,
                     "timestamp": when + timedelta(seconds=5 * offset),
                     "session_id": f"serving-{customer}", "price": product.price,
                     "quantity": None, "device_type": "mobile"})
    return pd.DataFrame(rows)


def test_the_sessions_viewed_categories_in_the_online_store_steer_the_list(served_home,
                                                                           pipeline) -> None:
    model = homepage_model(pipeline)
    customer = customers_of_tier(model, 2)[7]
    plain = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
    target = unseen_category(model, plain.items)
    catalogue = served_home.products()
    viewed = catalogue[catalogue["category"] == target].head(2)
    assert SessionFeaturePusher(served_home.settings).push_events(
        _session_events(customer, viewed)) == 1
    vector = pipeline.features["homepage"].read(customer)
    assert vector.values["session_viewed_categories"] == [target]
    steered = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
    positions = [slot for slot, item in enumerate(steered.items)
                 if category_of(model, item.product_id) == target]
    assert positions == PROMOTED_SLOTS
    assert steered.items[3].reason == f"because you are browsing {target}"


def test_a_batch_is_one_model_call_with_the_same_answers(served_home, pipeline_factory) -> None:
    # Every request through the model (candidates found ahead would answer without a call).
    batch_pipeline = pipeline_factory(served_home.settings.replace(serving_precomputed_customers=0))
    model = homepage_model(batch_pipeline)
    collaborative, content = customers_of_tier(model, 2), customers_of_tier(model, 1)
    requests = [HomepageRequest(customer_id=collaborative[0], k=5),
                HomepageRequest(customer_id=content[0], k=10),
                HomepageRequest(customer_id="c-new-visitor", k=3),
                HomepageRequest(customer_id=collaborative[1], k=10,
                                context={"categories": ["books", "toys"]}),
                HomepageRequest(customer_id=collaborative[0], k=8)]
    calls: list[int] = []
    scoring = model.top_items

    def counted(rows, *args, **kwargs):  # observes the calls; the model does the work
        calls.append(len(rows))
        return scoring(rows, *args, **kwargs)

    model.top_items = counted
    metrics = batch_pipeline.metrics
    batch_sum, answered = (metrics.value("tailor_batch_size_sum", {"endpoint": "homepage"}),
                           metrics.value("tailor_requests_total",
                                         {"endpoint": "homepage", "outcome": "ok"}))
    batch = batch_pipeline.homepage_batch(requests)
    # One call for the four known customers; the stranger's list is computed once per model.
    assert calls == [len(requests) - 1]
    singles = [batch_pipeline.homepage(request) for request in requests]
    for together, alone in zip(batch, singles):
        assert [(item.product_id, item.reason) for item in together.items] == \
            [(item.product_id, item.reason) for item in alone.items]
        assert [item.score for item in together.items] == \
            pytest.approx([item.score for item in alone.items])
        assert together.request_id != alone.request_id
    # Counts are read as differences: same-named metrics share values (see serving.metrics).
    assert metrics.value("tailor_batch_size_sum", {"endpoint": "homepage"}) - batch_sum == \
        len(requests)
    assert metrics.value("tailor_requests_total", {"endpoint": "homepage", "outcome": "ok"}) \
        - answered == 2 * len(requests)


def test_strangers_get_the_models_cold_start_list_without_a_model_call(served_home,
                                                                       pipeline_factory) -> None:
    pipeline = pipeline_factory(served_home.settings)
    model = homepage_model(pipeline)
    expected = model.recommend(["c-never-seen"], k=7)
    calls: list[int] = []
    scoring = model.top_items

    def counted(rows, *args, **kwargs):
        calls.append(len(rows))
        return scoring(rows, *args, **kwargs)

    model.top_items = counted
    answer = pipeline.homepage(HomepageRequest(customer_id="c-another-stranger", k=7))
    assert calls == []
    assert [item.product_id for item in answer.items] == expected["product_id"].tolist()
    assert [item.reason for item in answer.items] == expected["reason"].tolist()
    assert [item.score for item in answer.items] == pytest.approx(expected["score"].tolist())
    browsing = pipeline.homepage(HomepageRequest(customer_id="c-another-stranger", k=7,
                                                 context={"categories": ["books"]}))
    assert calls == [1]  # a stranger browsing a category is ranked by the model
    assert not browsing.fallback
