"""The homepage model: tiers, reasons, business filters, diversity and the degenerate cases."""

import numpy as np
import pandas as pd
import pytest

from model_shops import shop
from tailor.models.homepage import HomepageParams, fit_homepage


def _rows(catalogue: pd.DataFrame) -> list[tuple]:
    """Two taste groups: electronics people and grocery+home people, 40 customers each."""
    rows = []
    for n in range(40):
        rows += [(f"e{n}", "product_view", "laptop", n % 7), (f"e{n}", "product_view", "mouse", 8),
                 (f"e{n}", "purchase", "mouse", 9, None, f"eo{n}")]
        if n % 2:
            rows.append((f"e{n}", "purchase", "laptop", 10, None, f"el{n}"))
        rows += [(f"g{n}", "product_view", "snack", n % 7), (f"g{n}", "product_view", "lamp", 8),
                 (f"g{n}", "purchase", "snack", 9, None, f"go{n}"),
                 (f"g{n}", "purchase", "snack", 12, None, f"gp{n}")]
        if n % 2:
            rows.append((f"g{n}", "purchase", "chips", 11, None, f"gc{n}"))
    rows.append(("viewer", "product_view", "snack", 12))
    return rows


@pytest.fixture(scope="module")
def model():
    catalogue = pd.DataFrame({
        "product_id": ["laptop", "mouse", "bag", "snack", "chips", "lamp"],
        "name": ["Laptop", "Mouse", "Laptop Bag", "Snack", "Chips", "Lamp"],
        "category": ["electronics", "electronics", "electronics", "grocery", "grocery", "home"],
        "price": [900.0, 25.0, 45.0, 3.0, 2.0, 40.0], "inventory": [5, 10, 0, 100, 100, 7]})
    # A small blend_shrink: even short histories are ranked by ALS, not by popularity.
    params = HomepageParams(factors=4, blend_shrink=0.5, seed=3)
    return fit_homepage(shop(_rows(catalogue), catalogue), params)


def test_each_customer_gets_the_tier_the_brief_describes(model) -> None:
    recs = model.recommend(["e1", "viewer", "stranger"], k=3)
    tiers = recs.groupby("customer_id")["tier"].first().to_dict()
    assert tiers == {"e1": "collaborative", "viewer": "content", "stranger": "cold_start"}


def test_every_product_carries_a_readable_reason(model) -> None:
    recs = model.recommend(["e1", "g1", "viewer", "stranger"], k=3)
    assert recs["reason"].str.len().gt(0).all()
    allowed = ("because you bought ", "because you viewed ", "popular in ", "trending this week")
    assert recs["reason"].map(lambda text: text.startswith(allowed)).all()
    assert recs[recs.customer_id == "viewer"]["reason"].str.contains("grocery").any()


def test_collaborative_lists_follow_the_customers_taste(model) -> None:
    electronics_fan = model.recommend(["e2"], k=2, business_filters=False)
    assert set(electronics_fan.product_id) <= {"laptop", "bag", "mouse"}


def test_out_of_stock_and_bought_durables_are_filtered_but_consumables_repeat(model) -> None:
    fan = model.recommend(["e1"], k=6)                 # e1 bought the mouse and the laptop
    assert "bag" not in set(fan.product_id)            # inventory 0
    assert not {"mouse", "laptop"} & set(fan.product_id)
    grocer = model.recommend(["g1"], k=6)              # g1 bought snacks twice: consumable
    assert "snack" in set(grocer.product_id)


def test_evaluation_mode_excludes_everything_interacted_with(model) -> None:
    recs = model.recommend(["g2"], k=6, exclude_interacted=True, business_filters=False)
    assert not {"snack", "lamp"} & set(recs.product_id)


def test_category_cap_spreads_the_list_over_categories(model) -> None:
    from dataclasses import replace

    capped = replace(model, params=replace(model.params, diversity="category_cap", category_cap=1))
    recs = capped.recommend(["stranger"], k=3, business_filters=False)
    categories = model.categories[model.products.lookup(recs.product_id)]
    assert len(set(categories)) == 3


def test_mmr_diversity_returns_k_distinct_products(model) -> None:
    from dataclasses import replace

    mmr = replace(model, params=replace(model.params, diversity="mmr", mmr_lambda=0.3))
    recs = mmr.recommend(["e3"], k=4, business_filters=False)
    assert recs.product_id.nunique() == 4


def test_collaborative_after_more_purchases_keeps_light_buyers_on_content(catalogue) -> None:
    data = shop(_rows(catalogue), catalogue)
    strict = fit_homepage(data, HomepageParams(factors=4, collaborative_after_purchases=3))
    tiers = strict.recommend(["e0", "g1"], k=1).set_index("customer_id")["tier"].to_dict()
    assert tiers == {"e0": "content", "g1": "collaborative"}     # 1 order vs 3 orders


def test_a_single_product_shop_falls_back_to_popularity_and_says_so() -> None:
    data = shop([(f"c{n}", "purchase", "only", n) for n in range(5)])
    model = fit_homepage(data)
    assert model.user_factors is None and "popularity is all there is" in model.note
    recs = model.recommend(["c1", "new"], k=10, business_filters=False)
    assert recs.product_id.tolist() == ["only", "only"]


def test_bad_diversity_setting_is_named() -> None:
    with pytest.raises(ValueError, match="diversity"):
        HomepageParams(diversity="shuffle")


def test_params_round_trip_through_logged_strings() -> None:
    params = HomepageParams(factors=12, rerank=True, diversity="mmr")
    logged = {name: str(value) for name, value in params.to_dict().items()}
    assert HomepageParams.from_dict({**logged, "run_trials": "3"}) == params


def test_predict_frame_answers_the_serving_request(model) -> None:
    example = model.input_example()
    answer = model.predict_frame(example)
    assert set(answer.customer_id) == set(example.customer_id)
    assert np.all(answer.groupby("customer_id").size() <= 10)


@pytest.mark.parametrize(("k", "cap", "categories"), [(10, 3, 50), (10, 3, 2), (40, 1, 30),
                                                      (5, 2, 400)])
def test_the_category_cap_reads_only_as_far_as_it_needs(model, k, cap, categories) -> None:
    """The cap over a best-first prefix equals the cap over the whole order, including when
    the categories run out and the list is topped up past the cap (2 categories, cap 3)."""
    from dataclasses import replace

    from tailor.models.homepage import _category_capped
    from tailor.models.interactions import best_first

    rng = np.random.default_rng(k * cap + categories)
    size = 5_000
    capped = replace(model, params=replace(model.params, diversity="category_cap",
                                           category_cap=cap),
                     categories=np.array([f"c{n}" for n in rng.integers(0, categories, size)],
                                         dtype=object))
    scores = rng.integers(0, 50, size).astype(float)  # many ties
    scores[rng.random(size) < 0.1] = -np.inf
    expected = _category_capped(best_first(scores, size), capped.categories, k, cap)
    assert np.array_equal(capped._select(scores, k), expected)
    among = np.flatnonzero(rng.random(size) < 0.02)
    sparse = np.full(size, -np.inf)
    sparse[among] = scores[among]
    expected = _category_capped(best_first(sparse, size), capped.categories, k, cap)
    assert np.array_equal(capped._select(sparse, k, among), expected)


def test_lookups_computed_for_requests_are_not_pickled_with_the_model(model) -> None:
    import pickle
    from dataclasses import replace

    mmr = replace(model, params=replace(model.params, diversity="mmr"))
    expected = mmr.recommend(["e3", "stranger"], k=3)
    assert {"_baseline_scores", "_out_of_stock_items", "_unit_factors"} <= set(mmr.__dict__)
    loaded = pickle.loads(pickle.dumps(mmr))
    assert not {"_baseline_scores", "_out_of_stock_items", "_codes", "_unit_factors"} & \
        set(loaded.__dict__)
    pd.testing.assert_frame_equal(loaded.recommend(["e3", "stranger"], k=3), expected)


def test_because_names_the_most_similar_history_product_for_each_item(model) -> None:
    """The batched explanation matches the definition computed one item at a time: the
    bought product (the item itself left out) with the highest cosine similarity."""
    row = int(model.customers.positions["e1"])
    history = model.bought[row].indices
    items = list(range(len(model.products)))
    explained = model._because(row, items)
    for item in items:
        others = history[history != item]
        if not len(others):
            assert explained[item].startswith("popular in ")
            continue
        vectors = model.item_factors[others]
        target = model.item_factors[item]
        cosine = vectors @ target / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(target))
        assert explained[item] == f"because you bought {model.names[others[np.argmax(cosine)]]}"


def test_a_forgotten_customer_is_scored_as_a_stranger_and_the_others_do_not_move(model) -> None:
    import copy
    import pickle

    from tailor.models.customer_rows import forget_customer_rows

    forgetful = copy.deepcopy(model)
    before = forgetful.recommend(["e2", "g3", "stranger"], k=3)
    assert forget_customer_rows(forgetful, "e1") is True
    row = model.customers.positions["e1"]
    assert not forgetful.user_factors[row].any() and forgetful.seen[row].nnz == 0
    assert forgetful.recommend(["e1"], k=3).equals(
        forgetful.recommend(["stranger"], k=3).assign(customer_id="e1"))
    assert forgetful.recommend(["e2", "g3", "stranger"], k=3).equals(before)
    index = pickle.loads(pickle.dumps(forgetful.customers))
    assert "e1" not in index.positions and "e1" not in set(index.ids)
