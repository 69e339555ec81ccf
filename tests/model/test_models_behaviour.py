"""Behavioural tests of the ranking models (Made-With-ML style) on the simulated shop.

  * invariance: renaming every customer and product changes nothing but the names;
  * directional: buying in a category raises that category in the customer's list;
  * minimum functionality: a laptop's also-bought list holds the accessories bought with it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tailor.models.cross_sell import CrossSellParams, fit_cross_sell
from tailor.models.data import ShopData, build_shop_data, make_split
from tailor.models.homepage import HomepageParams, fit_homepage


def _renamed(data: ShopData) -> tuple[ShopData, dict[str, str], dict[str, str]]:
    """The same shop with every customer and product id replaced (a bijection)."""
    customers = {old: f"person-{len(old)}-{old[::-1]}" for old in data.events.customer_id.unique()}
    products = {old: f"item-{old[::-1]}" for old in data.products.product_id.unique()}
    events = data.events.rename(columns={"session_key": "session_id", "order_key": "order_id"})
    events = events.assign(customer_id=events.customer_id.map(customers),
                           product_id=events.product_id.map(products))
    catalogue = data.products.assign(product_id=data.products.product_id.map(products))
    return build_shop_data(events, catalogue), customers, products


@pytest.fixture(scope="module")
def train(sim_shop: ShopData) -> ShopData:
    return make_split(sim_shop, "time").train


def test_renaming_ids_changes_no_recommendation(train: ShopData) -> None:
    renamed, customers, products = _renamed(train)
    params = HomepageParams()
    original = fit_homepage(train, params)
    copy = fit_homepage(renamed, params)
    sample = list(customers)[:200] + ["unknown-visitor"]
    expected = original.recommend(sample, k=10)
    expected = expected.assign(customer_id=expected.customer_id.map(customers).fillna(
        "unknown-visitor"), product_id=expected.product_id.map(products))
    actual = copy.recommend([customers.get(c, c) for c in sample], k=10)
    pd.testing.assert_frame_equal(actual[["customer_id", "product_id", "rank", "tier"]],
                                  expected[["customer_id", "product_id", "rank", "tier"]])
    np.testing.assert_allclose(actual.score, expected.score, rtol=1e-5)


def test_renaming_ids_changes_no_also_bought_list(train: ShopData) -> None:
    renamed, _, products = _renamed(train)
    params = CrossSellParams()
    original, copy = fit_cross_sell(train, params), fit_cross_sell(renamed, params)
    for anchor in list(products)[:40]:
        mine = original.also_bought(anchor, k=10).product_id.map(products).tolist()
        assert copy.also_bought(products[anchor], k=10).product_id.tolist() == mine


def _category_rank(model, customer: str, category: str) -> float:
    """Mean position of `category`'s products in the customer's full ranking (0 = top)."""
    ranking = model.recommend([customer], k=len(model.products), business_filters=False)
    positions = ranking.reset_index(drop=True).index.to_numpy()
    in_category = model.categories[model.products.lookup(ranking.product_id)] == category
    return float(positions[in_category].mean())


def test_buying_in_a_category_raises_that_category(train: ShopData) -> None:
    model = fit_homepage(train)
    buyers = train.purchases().groupby("customer_id").order_key.nunique()
    customer = buyers[buyers >= 3].index[0]
    affinity = model.category_affinity[model.customers.positions[customer]]
    names = sorted(set(model.categories))
    category = names[int(np.argmin(affinity))]          # the category they care least about
    before = _category_rank(model, customer, category)
    picks = train.products[train.products.category == category].product_id.head(3).tolist()
    moment = train.end
    extra = pd.DataFrame({"customer_id": customer, "event_type": "purchase", "product_id": picks,
                          "timestamp": [moment + pd.Timedelta(hours=n + 1) for n in range(3)],
                          "order_key": [f"extra-{n}" for n in range(3)]})
    events = pd.concat([train.events, extra], ignore_index=True)
    more = replace(train, events=events.sort_values("timestamp", kind="stable"))
    after = _category_rank(fit_homepage(more), customer, category)
    assert after < before - 10, (category, before, after)


def test_a_laptops_also_bought_list_holds_its_accessories(sim_shop: ShopData, shop_folder) -> None:
    complements = pd.read_csv(shop_folder / "ground_truth" / "complements.csv")
    laptops = complements[complements.anchor_subcategory == "laptop"]
    accessories = laptops[laptops.complement_subcategory.isin(["mouse", "keyboard"])]
    bought = set(sim_shop.purchases().product_id)
    model = fit_cross_sell(sim_shop)
    checked = found = 0
    for laptop, group in accessories.groupby("anchor"):
        if laptop not in bought:
            continue                                     # never sold: nothing to learn from
        checked += 1
        listed = set(model.also_bought(laptop, k=10).product_id)
        found += bool(listed & set(group.complement))
    assert checked >= 5
    assert found / checked >= 0.8
