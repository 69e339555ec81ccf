"""Popularity, trending, consumables, price tiers and the two ranking baselines."""

import numpy as np
import pandas as pd
import pytest

from model_shops import shop
from tailor.models.interactions import IdIndex, product_events
from tailor.models.popularity import (
    consumable_categories, decayed_popularity, popularity_recommendations, price_tiers,
    random_recommendations, trending_scores,
)


def test_consumables_are_categories_bought_again(catalogue: pd.DataFrame) -> None:
    rows = []
    for customer in range(10):            # every customer buys snacks in 2 orders, a lamp once
        rows += [(f"c{customer}", "purchase", "snack", 1, None, f"o{customer}a"),
                 (f"c{customer}", "purchase", "snack", 5, None, f"o{customer}b"),
                 (f"c{customer}", "purchase", "lamp", 5, None, f"o{customer}b")]
    data = shop(rows, catalogue)
    assert consumable_categories(data.purchases(), data.products) == frozenset({"grocery"})


def test_categories_with_few_buyers_are_not_judged(catalogue: pd.DataFrame) -> None:
    data = shop([("c1", "purchase", "snack", 1, None, "o1"),
                 ("c1", "purchase", "snack", 2, None, "o2")], catalogue)
    assert consumable_categories(data.purchases(), data.products, min_buyers=5) == frozenset()


def test_price_tiers_are_terciles_within_the_category() -> None:
    tiers = price_tiers(pd.Series([1.0, 2.0, 3.0, 100.0, None]),
                        pd.Series(["a", "a", "a", "b", "a"]))
    assert tiers.tolist() == [0, 1, 2, 1, 1]      # lone category and missing price: medium


def test_popularity_weights_purchases_and_fades_with_age() -> None:
    data = shop([("c1", "product_view", "old", 0), ("c2", "purchase", "old", 0),
                 ("c3", "product_view", "new", 28), ("c4", "purchase", "new", 28)])
    products = IdIndex.from_values(pd.Series(["old", "new"]))
    scores = decayed_popularity(product_events(data.events), products, data.end, 14.0)
    assert scores[1] == pytest.approx(1.0)
    assert scores[0] == pytest.approx(0.25)          # the same interactions, two half-lives old


def test_trending_rewards_a_recent_rise() -> None:
    rows = [("c1", "product_view", "steady", day) for day in range(35)]
    rows += [(f"c{n}", "product_view", "rising", 33 + n / 10) for n in range(10)]
    data = shop(rows)
    products = IdIndex.from_values(pd.Series(["steady", "rising"]))
    trend = trending_scores(product_events(data.events), products, data.end)
    assert trend[1] > 0 and trend[0] == pytest.approx(0.0)


def test_popularity_baseline_skips_what_each_user_already_has() -> None:
    data = shop([("c1", "purchase", "a", 0), ("c2", "purchase", "a", 0),
                 ("c1", "purchase", "b", 1), ("c3", "product_view", "c", 1)])
    users = pd.Series(["u1", "u2"])
    exclude = pd.DataFrame({"customer_id": ["u2"], "product_id": ["a"]})
    recs = popularity_recommendations(data.events, users, k=2, exclude=exclude)
    assert recs[recs.customer_id == "u1"].product_id.tolist() == ["a", "b"]
    assert recs[recs.customer_id == "u2"].product_id.tolist() == ["b", "c"]


def test_random_baseline_draws_k_allowed_products_per_user() -> None:
    catalogue = pd.Series([f"p{i}" for i in range(20)])
    exclude = pd.DataFrame({"customer_id": ["u1"] * 10, "product_id": [f"p{i}" for i in range(10)]})
    recs = random_recommendations(catalogue, pd.Series(["u1", "u2"]), k=10, exclude=exclude)
    assert recs.groupby("customer_id").size().tolist() == [10, 10]
    assert not recs[recs.customer_id == "u1"].product_id.isin(exclude.product_id).any()
    again = random_recommendations(catalogue, pd.Series(["u1", "u2"]), k=10, exclude=exclude)
    assert np.array_equal(recs.product_id, again.product_id)       # seeded
