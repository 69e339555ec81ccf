"""Cross-sell: association rules worked out by hand, the ALS fill, and the lookup table."""

import pickle

import pandas as pd
import pytest

from model_shops import shop
from tailor.models.cross_sell import (
    CrossSellModel, CrossSellParams, basket_lists, fit_cross_sell, mine_rules, pair_statistics,
)
from tailor.models.interactions import IdIndex

BASKETS = {"o1": ["laptop", "mouse"], "o2": ["laptop", "mouse", "bag"], "o3": ["laptop"],
           "o4": ["snack"], "o5": ["snack", "mouse"]}


def _shop(catalogue: pd.DataFrame | None = None):
    rows = [(f"c{order}", "purchase", product, day, None, order)
            for day, (order, products) in enumerate(BASKETS.items()) for product in products]
    return shop(rows, catalogue)


def test_support_confidence_and_lift_match_the_definitions() -> None:
    data = _shop()
    products = IdIndex.from_values(pd.Series(["laptop", "mouse", "bag", "snack"]))
    co_counts, item_counts, n_baskets = pair_statistics(basket_lists(data, False), products)
    rules = mine_rules(co_counts, item_counts, n_baskets, min_pair_count=1)
    rules = rules.assign(anchor=products.ids[rules.anchor], item=products.ids[rules.item])
    laptop_mouse = rules[(rules.anchor == "laptop") & (rules.item == "mouse")].iloc[0]
    assert n_baskets == 5
    assert laptop_mouse.support == pytest.approx(2 / 5)
    assert laptop_mouse.confidence == pytest.approx(2 / 3)       # 2 of laptop's 3 baskets
    assert laptop_mouse.lift == pytest.approx((2 / 3) / (3 / 5))
    laptop_bag = rules[(rules.anchor == "laptop") & (rules.item == "bag")].iloc[0]
    assert laptop_bag.lift == pytest.approx((1 / 3) / (1 / 5))
    assert laptop_bag.score == pytest.approx(laptop_bag.confidence * laptop_bag.lift)


def test_pairs_below_the_minimum_count_are_not_rules() -> None:
    data = _shop()
    products = IdIndex.from_values(pd.Series(["laptop", "mouse", "bag", "snack"]))
    rules = mine_rules(*pair_statistics(basket_lists(data, False), products), min_pair_count=2)
    pairs = set(zip(products.ids[rules.anchor], products.ids[rules.item]))
    assert pairs == {("laptop", "mouse"), ("mouse", "laptop")}


def test_table_ranks_rules_by_confidence_times_lift_and_explains_them() -> None:
    model = fit_cross_sell(_shop(), CrossSellParams(min_pair_count=1, use_cart_sessions=False,
                                                     factors=2, top_n=3))
    laptop = model.also_bought("laptop", k=3)
    # mouse: 2/3 x 10/9 = 0.74 beats bag: 1/3 x 5/3 = 0.56
    assert laptop.product_id.tolist()[:2] == ["mouse", "bag"]
    assert (laptop.source.iloc[:2] == "rules").all()
    assert laptop.iloc[0].confidence == pytest.approx(2 / 3)
    assert laptop.iloc[0].lift == pytest.approx(10 / 9)
    assert laptop.iloc[0].reason == "67% of baskets with laptop also had this (lift 1.1)"


def test_thin_anchors_are_filled_from_als_similarity() -> None:
    model = fit_cross_sell(_shop(), CrossSellParams(min_pair_count=2, use_cart_sessions=False,
                                                     factors=2, top_n=3))
    bag = model.also_bought("bag", k=3)                            # bag has no rule at 2 baskets
    assert len(bag) == 3 and (bag.source == "similar").all()
    assert bag.reason.str.startswith("customers who liked bag also liked this").all()
    assert {"confidence", "lift", "support", "similarity"} <= set(bag.columns)


def test_lookups_exclude_products_already_in_the_cart() -> None:
    model = fit_cross_sell(_shop(), CrossSellParams(min_pair_count=1, factors=2, top_n=3))
    assert "bag" not in model.also_bought("laptop", k=3, exclude={"bag"}).product_id.tolist()
    assert model.also_bought("never-seen").empty


def test_pickled_models_answer_the_same_lookups() -> None:
    model = fit_cross_sell(_shop(), CrossSellParams(min_pair_count=1, factors=2, top_n=3))
    old_layout = {key: value for key, value in model.__dict__.items() if key != "_rows"}
    old_layout["_by_anchor"] = dict(tuple(model.table.groupby("anchor_product_id")))
    for restored in (pickle.loads(pickle.dumps(model)), _unpickled(old_layout)):
        for anchor in ("laptop", "mouse", "bag", "snack"):
            pd.testing.assert_frame_equal(restored.also_bought(anchor), model.also_bought(anchor))


def _unpickled(state: dict) -> CrossSellModel:
    """A model restored from `state` the way pickle restores one (models registered before
    the table kept row ranges hold per-anchor frames instead)."""
    restored = CrossSellModel.__new__(CrossSellModel)
    restored.__setstate__(state)
    return restored


def test_abandoned_carts_count_as_baskets_when_asked() -> None:
    rows = [("c1", "add_to_cart", "lamp", 0.0, "s1"), ("c1", "add_to_cart", "bag", 0.0, "s1"),
            ("c2", "purchase", "laptop", 1.0, "s2", "o1")]
    with_carts = basket_lists(shop(rows), use_cart_sessions=True)
    assert set(with_carts.basket_id) == {"o1", "cart:s1"}
    assert set(basket_lists(shop(rows), use_cart_sessions=False).basket_id) == {"o1"}


def test_a_single_product_shop_has_nothing_to_cross_sell() -> None:
    model = fit_cross_sell(shop([(f"c{n}", "purchase", "only", n) for n in range(4)]))
    assert model.table.empty and "nothing to cross-sell" in model.note
    assert model.predict_frame(pd.DataFrame({"product_id": ["only"]})).empty
