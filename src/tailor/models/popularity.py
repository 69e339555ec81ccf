"""Popularity, trending, consumable categories and price tiers: the signals that need no model.

Reads and writes nothing. These feed the homepage model's cold start and blend, the business
filters, and the popularity and random baselines of the evaluation protocol.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailor.models.constants import DEFAULT_ITEM_COL, DEFAULT_SCORE_COL, DEFAULT_USER_COL
from tailor.models.interactions import IdIndex

PRICE_TIERS: tuple[str, ...] = ("low", "medium", "high")
KIND_WEIGHTS = {"product_view": 1.0, "add_to_cart": 3.0, "purchase": 6.0}


def decayed_popularity(events: pd.DataFrame, products: IdIndex, as_of: pd.Timestamp,
                       half_life_days: float = 14.0) -> np.ndarray:
    """Per product: kind-weighted interactions, halved every `half_life_days` before `as_of`.

    Returns:
        Array aligned with `products`, scaled so the most popular product scores 1.
    """
    positions = products.lookup(events["product_id"])
    keep = positions >= 0
    weight = events["event_type"].map(KIND_WEIGHTS).fillna(0.0).to_numpy(float)
    age = ((as_of - events["timestamp"]) / pd.Timedelta(days=1)).to_numpy(float)
    weight = weight * np.power(0.5, np.clip(age, 0, None) / half_life_days)
    scores = np.bincount(positions[keep], weights=weight[keep], minlength=len(products))
    return scores / scores.max() if scores.max() > 0 else scores


def trending_scores(events: pd.DataFrame, products: IdIndex, as_of: pd.Timestamp,
                    recent_days: float = 7.0, base_days: float = 28.0) -> np.ndarray:
    """Per product: how far the last week's interactions exceed the weeks before (z-like score).

    (recent - expected) / sqrt(expected + 1), where expected is the earlier rate scaled to the
    recent window; negative values (cooling down) are clipped to 0.
    """
    age = ((as_of - events["timestamp"]) / pd.Timedelta(days=1)).to_numpy(float)
    positions = products.lookup(events["product_id"])
    weight = events["event_type"].map(KIND_WEIGHTS).fillna(0.0).to_numpy(float)
    recent_mask = (positions >= 0) & (age >= 0) & (age < recent_days)
    base_mask = (positions >= 0) & (age >= recent_days) & (age < recent_days + base_days)
    recent = np.bincount(positions[recent_mask], weights=weight[recent_mask],
                         minlength=len(products))
    base = np.bincount(positions[base_mask], weights=weight[base_mask], minlength=len(products))
    expected = base * recent_days / base_days
    return np.clip((recent - expected) / np.sqrt(expected + 1.0), 0.0, None)


def consumable_categories(purchases: pd.DataFrame, products: pd.DataFrame,
                          min_repeat_rate: float = 0.15, min_buyers: int = 5) -> frozenset[str]:
    """Categories whose products are bought again: repeat rate at or above `min_repeat_rate`.

    The repeat rate of a category is the share of (customer, product) pairs in it that were
    bought in two or more different orders. Inferred from the data, never from category names.

    Args:
        purchases: purchase events with customer_id, product_id, order_key.
        products: the catalogue (product_id, category).
        min_repeat_rate: threshold above which a category counts as consumable.
        min_buyers: categories with fewer (customer, product) pairs are not judged.
    """
    if purchases.empty:
        return frozenset()
    pairs = purchases.groupby(["customer_id", "product_id"])["order_key"].nunique().rename("orders")
    pairs = pairs.reset_index().merge(products[["product_id", "category"]], on="product_id")
    pairs = pairs.dropna(subset=["category"])
    stats = pairs.groupby("category")["orders"].agg(pairs="size", repeats=lambda s: (s >= 2).sum())
    stats = stats[stats["pairs"] >= min_buyers]
    return frozenset(stats.index[stats["repeats"] / stats["pairs"] >= min_repeat_rate].astype(str))


def price_tiers(prices: pd.Series, categories: pd.Series) -> np.ndarray:
    """Tier index 0/1/2 (low/medium/high) of each price by terciles within its category.

    Products without a price get tier 1 (medium); categories with one product are medium.
    """
    frame = pd.DataFrame({"price": pd.to_numeric(prices, errors="coerce").to_numpy(),
                          "category": categories.fillna("").to_numpy()})
    percentile = frame.groupby("category")["price"].rank(pct=True, method="average")
    tier = np.where(percentile <= 1 / 3, 0, np.where(percentile <= 2 / 3, 1, 2))
    sizes = frame.groupby("category")["price"].transform("count")
    return np.where(frame["price"].isna() | (sizes < 2), 1, tier).astype(np.int8)


# -- baselines -----------------------------------------------------------------------------------


def popularity_recommendations(train_events: pd.DataFrame, users: pd.Series, k: int,
                               exclude: pd.DataFrame | None = None,
                               user_col: str = DEFAULT_USER_COL,
                               item_col: str = DEFAULT_ITEM_COL) -> pd.DataFrame:
    """The popularity baseline: the most purchased products before the cut, for everyone.

    Products are ranked by purchase count (views break ties, then first appearance). Each
    user's excluded pairs are skipped, so everyone still gets k products where possible.

    Returns:
        Columns user, item, score (higher first).
    """
    products = train_events[train_events["product_id"].notna()]
    counts = products.groupby("product_id", sort=False).agg(
        purchases=("event_type", lambda s: (s == "purchase").sum()),
        interactions=("event_type", "size"))
    ranked = counts.sort_values(["purchases", "interactions"], ascending=False, kind="stable")
    return _fill_from_ranking(ranked.index.to_numpy(), users, k, exclude, user_col, item_col)


def random_recommendations(catalogue: pd.Series, users: pd.Series, k: int,
                           exclude: pd.DataFrame | None = None, seed: int = 7,
                           user_col: str = DEFAULT_USER_COL,
                           item_col: str = DEFAULT_ITEM_COL) -> pd.DataFrame:
    """The random baseline: k products drawn uniformly from the catalogue per user."""
    rng = np.random.default_rng(seed)
    items = np.asarray(pd.unique(catalogue.dropna()), dtype=object)
    excluded = _exclusions(exclude, user_col, item_col)
    chosen_users, chosen_items = [], []
    for user in pd.unique(users):
        skip = excluded.get(user, set())
        draw = items[rng.permutation(len(items))[: k + len(skip)]]
        picked = [item for item in draw if item not in skip][:k]
        chosen_users.append(np.full(len(picked), user, dtype=object))
        chosen_items.append(np.asarray(picked, dtype=object))
    return _ranked_frame(chosen_users, chosen_items, user_col, item_col)


def _exclusions(exclude: pd.DataFrame | None, user_col: str, item_col: str
                ) -> dict[object, set]:
    """Each user's excluded items."""
    if exclude is None or exclude.empty:
        return {}
    return exclude.groupby(user_col)[item_col].agg(set).to_dict()


def _fill_from_ranking(ranking: np.ndarray, users: pd.Series, k: int,
                       exclude: pd.DataFrame | None, user_col: str, item_col: str) -> pd.DataFrame:
    """Per user, the first k items of one global ranking that the user has not excluded."""
    excluded = _exclusions(exclude, user_col, item_col)
    chosen_users, chosen_items = [], []
    for user in pd.unique(users):
        skip = excluded.get(user, set())
        head = ranking[: k + len(skip)]
        picked = [item for item in head if item not in skip][:k] if skip else list(head[:k])
        chosen_users.append(np.full(len(picked), user, dtype=object))
        chosen_items.append(np.asarray(picked, dtype=object))
    return _ranked_frame(chosen_users, chosen_items, user_col, item_col)


def _ranked_frame(users: list[np.ndarray], items: list[np.ndarray], user_col: str,
                  item_col: str) -> pd.DataFrame:
    """One frame of per-user lists, scored k, k-1, ... 1 in list order."""
    if not users:
        return pd.DataFrame({user_col: [], item_col: [], DEFAULT_SCORE_COL: []})
    scores = [np.arange(len(chosen), 0, -1, dtype=float) for chosen in items]
    return pd.DataFrame({user_col: np.concatenate(users), item_col: np.concatenate(items),
                         DEFAULT_SCORE_COL: np.concatenate(scores)})
