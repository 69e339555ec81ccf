"""The also-bought and checkout-offer endpoints on a trained home."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from tailor.serving.checkout_offers import CartFacts, cart_facts, model_row
from tailor.serving.schemas import (
    OFFERS, AlsoBoughtRequest, CartLine, CheckoutOfferRequest, HomepageRequest,
)


def ids(answer) -> list[str]:
    return [item.product_id for item in answer.items]


def rich_anchor(pipeline, companions: int = 15) -> str:
    """An in-stock anchor with at least `companions` in-stock companions from basket rules."""
    table = pipeline.slots["cross_sell"].current.model.table
    in_stock = {product_id for product_id, product in pipeline.catalogue.products.items()
                if product.in_stock}
    rules = table[(table["source"] == "rules") & table["product_id"].isin(in_stock)]
    counts = rules.groupby("anchor_product_id").size()
    return str(sorted(counts[counts >= companions].index)[0])


def test_also_bought_is_the_models_table_with_confidence_and_lift(served_home, pipeline) -> None:
    anchor = rich_anchor(pipeline)
    answer = pipeline.also_bought(AlsoBoughtRequest(product_id=anchor, k=10))
    model = pipeline.slots["cross_sell"].current.model
    table = model.also_bought(anchor, k=len(model.table))
    table = table[table["product_id"].map(pipeline._in_stock)].head(10)
    assert ids(answer) == table["product_id"].tolist()
    assert [item.reason for item in answer.items] == table["reason"].tolist()
    assert [item.confidence for item in answer.items] == pytest.approx(table["confidence"])
    assert [item.lift for item in answer.items] == pytest.approx(table["lift"])
    assert all(re.search(r"% of baskets with .+ also had this \(lift \d", item.reason)
               for item in answer.items)
    assert (answer.fallback, answer.model_version) == \
        (False, served_home.versions["cross_sell"])


def test_products_in_the_cart_are_left_out(pipeline) -> None:
    anchor = rich_anchor(pipeline)
    first = pipeline.also_bought(AlsoBoughtRequest(product_id=anchor, k=10))
    cart = [ids(first)[0], ids(first)[3]]
    again = pipeline.also_bought(AlsoBoughtRequest(product_id=anchor, k=10,
                                                   context={"cart": cart}))
    assert not set(cart) & set(ids(again)) and len(again.items) == 10
    assert ids(again)[:8] == [product for product in ids(first) if product not in cart]


def test_a_short_list_is_filled_with_what_is_popular_in_the_anchors_category(
        served_home, pipeline) -> None:
    model = pipeline.slots["cross_sell"].current.model
    anchor = rich_anchor(pipeline)
    category = pipeline.catalogue.get(anchor).category
    known = len(model.also_bought(anchor, k=len(model.table)))
    k = min(known + 5, 100)
    answer = pipeline.also_bought(AlsoBoughtRequest(product_id=anchor, k=k))
    assert len(ids(answer)) == len(set(ids(answer))) and anchor not in ids(answer)
    from_model = [item for item in answer.items if item.confidence is not None]
    filled = answer.items[len(from_model):]
    assert filled and all(item.confidence is None for item in filled)
    assert {item.reason for item in filled} <= {f"popular in {category}", "popular right now"}
    in_category = [item.product_id for item in filled if item.reason != "popular right now"]
    popular = [product for product, _ in pipeline.fallback.current.by_category[category]
               if product not in set(ids(answer)[:len(from_model)]) | {anchor}]
    assert in_category == popular[:len(in_category)]


def test_an_unknown_product_gets_popular_products(pipeline) -> None:
    answer = pipeline.also_bought(AlsoBoughtRequest(product_id="p-not-in-the-shop", k=5))
    assert not answer.fallback and len(answer.items) == 5
    assert ids(answer) == [product for product, _ in pipeline.fallback.current.overall[:5]]
    assert {item.reason for item in answer.items} == {"popular right now"}


def test_no_answer_ever_holds_an_out_of_stock_product(served_home, pipeline) -> None:
    catalogue = served_home.products()
    sold_out = set(catalogue.loc[catalogue["inventory"] <= 0, "product_id"])
    assert sold_out, "the simulated shop has no sold-out product to check with"
    shown = set()
    for anchor in catalogue["product_id"].head(40):
        shown |= set(ids(pipeline.also_bought(AlsoBoughtRequest(product_id=anchor, k=20))))
    model = pipeline.slots["homepage"].current.model
    for customer in model.customers.ids[:40]:
        shown |= set(ids(pipeline.homepage(HomepageRequest(customer_id=str(customer), k=20))))
    assert shown and not shown & sold_out


# -- checkout ----------------------------------------------------------------------------------


def priced(served_home, count: int) -> list[tuple[str, float]]:
    catalogue = served_home.products()
    rows = catalogue[catalogue["inventory"] > 0].sort_values("price").tail(count)
    return list(zip(rows["product_id"], rows["price"]))


def a_customer(pipeline) -> str:
    return str(pipeline.slots["homepage"].current.model.customers.ids[11])


def test_the_offer_states_the_probability_and_the_gain(served_home, pipeline) -> None:
    (first, first_price), (second, _) = priced(served_home, 2)
    request = CheckoutOfferRequest(customer_id=a_customer(pipeline), session_id="s-1", cart=[
        CartLine(product_id=first, quantity=2), CartLine(product_id=second, price=19.5)])
    answer = pipeline.checkout_offer(request)
    assert not answer.fallback and answer.model_version == served_home.versions["checkout"]
    assert 0.0 < answer.p_abandon < 1.0 and answer.offer in OFFERS
    assert f"P(abandon) {answer.p_abandon:.0%}" in answer.reason
    assert "expected gain" in answer.reason
    # The fast path decides as the model does on a frame of the same features.
    facts = cart_facts(request.cart, pipeline._price_of)
    assert facts == CartFacts(value=2 * first_price + 19.5, items=3, products=2,
                              max_price=max(first_price, 19.5), unpriced=0)
    features = pipeline.features["checkout"].read(request.customer_id).values
    row = model_row(facts, features, datetime.now(timezone.utc))
    decided = pipeline.slots["checkout"].current.model.decide(pd.DataFrame([row]))
    assert answer.p_abandon == pytest.approx(decided["abandon_probability"].iloc[0], rel=1e-5)
    assert answer.offer == decided["incentive"].iloc[0]


def test_scorer_decisions_equal_the_models_policy_cart_by_cart(pipeline) -> None:
    scorer = pipeline.slots["checkout"].current.prepared
    model = scorer.model
    rng = np.random.default_rng(11)
    rows = []
    for _ in range(60):
        row = {name: float(rng.integers(0, 6)) for name in scorer.feature_names}
        row.update(session_cart_value=float(rng.uniform(5, 600)),
                   days_since_last_purchase=float(rng.choice([1, 30, 3650])),
                   hour_of_day=float(rng.integers(0, 24)))
        rows.append(row)
    decisions = scorer.decide(rows)
    expected = [model.decide(pd.DataFrame([row])).iloc[0] for row in rows]
    assert [d.p_abandon for d in decisions] == \
        pytest.approx([e["abandon_probability"] for e in expected], rel=1e-5)
    assert [d.offer for d in decisions] == [e["incentive"] for e in expected]
    assert [d.expected_gain for d in decisions] == \
        pytest.approx([e["expected_gain"] for e in expected], rel=1e-6, abs=1e-9)
    assert len({d.offer for d in decisions}) >= 2, "the grid should show more than one answer"
    for decision in decisions:
        assert f"P(abandon) {decision.p_abandon:.0%}" in decision.reason


def test_one_cart_in_python_floats_decides_as_the_arrays_do_to_the_bit(pipeline) -> None:
    """`CheckoutScorer.decide` for one cart (Python floats) against its array path (the same
    cart twice): probability, gain, cost, offer and reason identical, missing values, a
    free cart and a value beyond float32 included."""
    scorer = pipeline.slots["checkout"].current.prepared
    rng = np.random.default_rng(23)
    rows = []
    for number in range(300):
        row = {name: float(rng.choice([rng.integers(0, 8), rng.uniform(0, 50), np.nan]))
               for name in scorer.feature_names}
        row["session_cart_value"] = [0.0, 1e39, float(rng.uniform(1, 900))][min(number, 2)]
        rows.append(row)
    single = [scorer.decide([row])[0] for row in rows]
    arrays = [scorer.decide([row, row])[0] for row in rows]
    assert single == arrays  # dataclass equality: every float to the bit, reasons alike
    assert len({decision.offer for decision in single}) >= 2


def test_the_walked_trees_answer_as_xgboost_does_for_many_carts(served_home, pipeline,
                                                               tmp_path) -> None:
    """The checkout trees walked in Python (`tailor.models.tree_walk`) against XGBoost's
    `inplace_predict`, on the same pipeline: offer, P(abandon) and reason of every cart."""
    from tailor.serving.budget import SQLiteLedger

    scorer = pipeline.slots["checkout"].current.prepared
    walker = scorer.walker
    assert walker is not None, "the demo's checkout trees should be walked"
    products = priced(served_home, 40)
    customers = [str(customer) for customer in
                 pipeline.slots["homepage"].current.model.customers.ids[:150]]
    requests = [CheckoutOfferRequest(customer_id=customer, session_id=f"s-{number}", cart=[
        CartLine(product_id=products[(number * line) % len(products)][0],
                 quantity=1 + (number + line) % 3) for line in range(1 + number % 4)])
        for number, customer in enumerate(customers)]
    ledger = pipeline.ledger
    answers: dict[bool, list] = {}
    try:
        for walked in (True, False):
            scorer.walker = walker if walked else None
            pipeline.ledger = SQLiteLedger(tmp_path / f"walked-{walked}.db", 1e12)
            answers[walked] = [pipeline.checkout_offer(request) for request in requests]
    finally:
        scorer.walker, pipeline.ledger = walker, ledger
    assert not any(answer.fallback for answer in answers[True])
    assert [(a.offer, a.reason) for a in answers[True]] == \
        [(a.offer, a.reason) for a in answers[False]]
    assert [a.p_abandon for a in answers[True]] == \
        pytest.approx([a.p_abandon for a in answers[False]], rel=0, abs=1e-9)
    assert len({answer.offer for answer in answers[True]}) >= 2
    assert len({answer.p_abandon for answer in answers[True]}) > 20


def test_every_model_feature_is_read_from_the_store(pipeline) -> None:
    """A name the online service does not have would come through as NaN."""
    scorer = pipeline.slots["checkout"].current.prepared
    vector = pipeline.features["checkout"].read(a_customer(pipeline))
    facts = cart_facts([CartLine(product_id="p-x", price=10.0)], lambda product: None)
    row = model_row(facts, vector.values, datetime(2026, 3, 7, 21, 30, tzinfo=timezone.utc))
    assert [name for name in scorer.feature_names if math.isnan(row[name])] == []
    assert (row["hour_of_day"], row["day_of_week"], row["is_weekend"]) == (21.0, 5.0, 1.0)
    assert row["carts_before"] == vector.values["carts_90d"]
    assert row["days_since_first_seen"] == vector.values["days_since_signup"]


def test_a_missing_price_comes_from_the_catalogue(served_home, pipeline) -> None:
    (product, price), = priced(served_home, 1)
    customer = a_customer(pipeline)
    without = pipeline.checkout_offer(CheckoutOfferRequest(
        customer_id=customer, session_id="s-2", cart=[CartLine(product_id=product, quantity=3)]))
    explicit = pipeline.checkout_offer(CheckoutOfferRequest(
        customer_id=customer, session_id="s-2",
        cart=[CartLine(product_id=product, quantity=3, price=price)]))
    assert without.p_abandon == pytest.approx(explicit.p_abandon)
    unknown = pipeline.checkout_offer(CheckoutOfferRequest(
        customer_id=customer, session_id="s-2", cart=[CartLine(product_id="p-unknown")]))
    assert "1 cart line(s) without a known price" in unknown.reason and not unknown.fallback
