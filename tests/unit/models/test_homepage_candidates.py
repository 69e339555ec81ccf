"""Homepage candidates found ahead (`HomepageModel.candidate_block`): each customer's best
products equal the model's own top products, for the collaborative tier (float32 blocks,
order equal up to rounding) and for the content tier (popularity heads per category and
price tier, exact), with a bound that no product left out reaches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tailor.models.homepage import HEAD_SPARE, HomepageModel, HomepageParams
from tailor.models.interactions import IdIndex

LENGTH = 20


def _model(products: int = 3000, customers: int = 300, seed: int = 5) -> HomepageModel:
    """A model in `HomepageModel`'s shapes: half the customers collaborative (5 purchases or
    more), half content-tier (views and up to 4 purchases); popularity with many exact ties."""
    rng = np.random.default_rng(seed)
    categories = np.asarray([f"cat-{n}" for n in rng.integers(0, 5, products)], dtype=object)
    purchases = np.where(np.arange(customers) % 2 == 0, rng.integers(5, 9, customers),
                         rng.integers(0, 5, customers))
    rows = np.repeat(np.arange(customers), purchases)
    columns = rng.integers(0, products, len(rows))
    bought = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)),
                           shape=(customers, products))
    bought.data[:] = 1.0
    views = sp.csr_matrix((np.ones(customers, dtype=np.float32),
                           (np.arange(customers), rng.integers(0, products, customers))),
                          shape=(customers, products))
    seen = (bought + views).tocsr()
    seen.data[:] = 1.0
    customer_ids = np.asarray([f"c{n}" for n in range(customers)], dtype=object)
    product_ids = np.asarray([f"p{n}" for n in range(products)], dtype=object)
    return HomepageModel(
        params=HomepageParams(collaborative_after_purchases=5),
        customers=IdIndex(customer_ids, {c: i for i, c in enumerate(customer_ids)}),
        products=IdIndex(product_ids, {p: i for i, p in enumerate(product_ids)}),
        categories=categories, names=np.asarray([f"Product {n}" for n in range(products)],
                                                dtype=object),
        tiers=rng.integers(0, 3, products).astype(np.int8),
        in_stock=rng.random(products) > 0.05, consumable=categories == "cat-4",
        seen=seen, bought=bought, purchase_counts=purchases.astype(np.int64),
        interaction_counts=np.asarray(seen.sum(axis=1)).ravel().astype(np.int64) + purchases,
        category_affinity=rng.random((customers, 5)),
        preferred_tier=rng.integers(0, 5, customers) / 2,  # halves: tiers tie across groups
        popularity=np.round(rng.random(products), 2),  # about 30 products per value: ties
        trending=rng.random(products) * 0.1,
        user_factors=rng.standard_normal((customers, 24)).astype(np.float32),
        item_factors=rng.standard_normal((products, 24)).astype(np.float32),
        trained_until=pd.Timestamp("2026-12-01", tz="UTC"))


@pytest.fixture(scope="module")
def model() -> HomepageModel:
    return _model()


def _model_top(model: HomepageModel, rows: np.ndarray, n: int) -> tuple[list, np.ndarray]:
    """The model's own n best products per row (request-time ranking) and its scores."""
    _, scores, _, chosen = model.top_items(rows, n)
    return chosen, scores


def test_content_customers_get_the_models_exact_top(model) -> None:
    rows = np.flatnonzero(model.customer_tiers(np.arange(len(model.customers))) == 1)
    assert len(rows) > 100
    found = model.candidate_block(rows, LENGTH)
    chosen, scores = _model_top(model, rows, LENGTH + 1)
    for position, row in enumerate(rows):
        assert found.items[position].tolist() == chosen[position][:LENGTH].tolist(), row
        next_best = scores[position, chosen[position][LENGTH]]
        assert next_best < found.bound[position] <= next_best + 1e-5


def test_content_candidates_come_from_the_popularity_heads(model) -> None:
    """The pool path answered (not the whole catalogue), and it is far smaller than it."""
    rows = np.flatnonzero(model.customer_tiers(np.arange(len(model.customers))) == 1)[:40]
    pool, _, _ = model._popular_heads(LENGTH + 1 + HEAD_SPARE)
    assert len(pool) * 4 < len(model.products)
    found = model.candidate_block(rows[:1], LENGTH)
    target = replace(found, items=found.items.copy())
    done = model._content_candidates(rows, LENGTH, target, np.zeros(len(rows), dtype=np.int64))
    assert done.all()


def test_collaborative_customers_get_the_models_top_up_to_rounding(model) -> None:
    rows = np.flatnonzero(model.customer_tiers(np.arange(len(model.customers))) == 2)
    found = model.candidate_block(rows, LENGTH)
    chosen, scores = _model_top(model, rows, len(model.products))
    for position in range(len(rows)):
        kept = found.items[position]
        assert set(kept.tolist()) == set(chosen[position][:LENGTH].tolist())
        outside = np.delete(scores[position], kept)
        assert outside[np.isfinite(outside)].max() < found.bound[position]


def test_a_head_emptied_by_purchases_falls_back_to_the_whole_catalogue() -> None:
    """A content-tier customer who bought more of a group's most popular products than the
    spare leaves: found over the whole catalogue, and still the model's own top."""
    model = _model(seed=9)
    row = int(np.flatnonzero(model.customer_tiers(np.arange(len(model.customers))) == 1)[0])
    pool, group, full = model._popular_heads(LENGTH + 1 + HEAD_SPARE)
    durable = [g for g in np.flatnonzero(full)
               if str(model.categories[pool[group == g][0]]) != "cat-4"][0]
    taken = pool[group == durable][:HEAD_SPARE + 1]  # more than the spare of one head
    bought = model.bought.tolil()
    bought[row, taken] = 1.0
    model.bought = bought.tocsr()
    model.purchase_counts[row] = 0  # still content-tier (what it bought is the test's)
    target = model.candidate_block(np.asarray([row]), LENGTH)
    done = model._content_candidates(np.asarray([row]), LENGTH, replace(
        target, items=target.items.copy()), np.zeros(1, dtype=np.int64))
    assert not done[0]
    chosen, _ = _model_top(model, np.asarray([row]), LENGTH)
    assert set(target.items[0].tolist()) == set(chosen[0].tolist())
    assert not set(taken.tolist()) & set(target.items[0].tolist())


def test_a_small_catalogue_is_scored_whole() -> None:
    """Heads as big as a quarter of the catalogue would not pay: no pool."""
    model = _model(products=300, customers=20)
    assert model._popular_heads(LENGTH + 1 + HEAD_SPARE) is None
    rows = np.flatnonzero(model.customer_tiers(np.arange(len(model.customers))) == 1)
    found = model.candidate_block(rows, LENGTH)
    chosen, _ = _model_top(model, rows, LENGTH)
    assert [set(items.tolist()) for items in found.items] == \
        [set(items.tolist()) for items in chosen]
