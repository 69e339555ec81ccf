"""Holdout targets and scoring for the ranking models (homepage, cross-sell) and their baselines.

Reads and writes nothing. Implements ARCHITECTURE.md's protocol on a `Split`: the targets are
products bought after the cut; a customer counts when they have any event before the cut and
a purchase after it; products the customer interacted with before the cut are excluded from
ranking (and from the targets, since they cannot be recommended).

Cross-sell is item-to-item, so its unit is a case: a product the customer bought after the
cut (the anchor) and the other products that customer bought after the cut in the same order
or in an order up to 7 days later (the targets: "bought with it, or next"). Its list is the
anchor's also-bought list.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tailor.models.constants import DEFAULT_K
from tailor.models.cross_sell import CrossSellModel
from tailor.models.data import Split
from tailor.models.homepage import HomepageModel
from tailor.models.interactions import product_events
from tailor.models.metrics import precision_at_k_curve, ranking_metrics
from tailor.models.popularity import popularity_recommendations, random_recommendations

CURVE_KS: tuple[int, ...] = (1, 2, 3, 5, 10, 15, 20)
# Cross-sell targets: the anchor's own order and orders up to this long after it. Later
# purchases say more about the customer's taste (the homepage's job) than about the anchor.
NEXT_WINDOW = pd.Timedelta(days=7)


@dataclass(frozen=True)
class RankingTargets:
    """What a ranking model is scored on: relevant pairs, pairs to skip, and the units scored.

    `unit` is the column naming one scored list: customer_id (homepage) or case_id (cross-sell).
    """

    unit: str
    truth: pd.DataFrame
    exclude: pd.DataFrame
    units: pd.Series
    anchors: pd.DataFrame | None = None

    @property
    def size(self) -> int:
        return len(self.units)


def _interacted_before(split: Split) -> pd.DataFrame:
    """(customer_id, product_id) pairs with any view, cart or purchase before the cut."""
    return product_events(split.train.events)[["customer_id", "product_id"]].drop_duplicates()


def _new_purchases(split: Split) -> pd.DataFrame:
    """Test purchases by customers known before the cut, of products new to them."""
    known = set(split.train.events["customer_id"])
    test = split.test_events
    bought = test[(test["event_type"] == "purchase") & test["customer_id"].isin(known)
                  & test["product_id"].notna()]
    bought = bought[["customer_id", "product_id", "order_key", "timestamp"]]
    seen = _interacted_before(split).assign(seen=True)
    bought = bought.merge(seen, on=["customer_id", "product_id"], how="left")
    return bought[bought["seen"].isna()].drop(columns="seen")


def homepage_targets(split: Split) -> RankingTargets:
    """Customers with history who bought products new to them after the cut."""
    truth = _new_purchases(split)[["customer_id", "product_id"]].drop_duplicates()
    users = truth["customer_id"].drop_duplicates().reset_index(drop=True)
    seen = _interacted_before(split)
    return RankingTargets("customer_id", truth, seen[seen["customer_id"].isin(set(users))], users)


def cross_sell_targets(split: Split) -> RankingTargets:
    """One case per (customer, anchor purchase) with the same or later orders as targets."""
    bought = _new_purchases(split)
    first = bought.sort_values("timestamp", kind="stable").drop_duplicates(
        ["customer_id", "product_id"])
    order_start = bought.groupby("order_key")["timestamp"].min().rename("order_start")
    first = first.merge(order_start, left_on="order_key", right_index=True)
    pairs = first.merge(first, on="customer_id", suffixes=("_anchor", ""))
    pairs = pairs[(pairs["product_id"] != pairs["product_id_anchor"])
                  & ((pairs["order_key"] == pairs["order_key_anchor"])
                     | ((pairs["order_start"] > pairs["order_start_anchor"])
                        & (pairs["order_start"] - pairs["order_start_anchor"] <= NEXT_WINDOW)))]
    pairs = pairs.assign(case_id=pairs["customer_id"] + "|" + pairs["product_id_anchor"])
    truth = pairs[["case_id", "product_id"]].drop_duplicates()
    anchors = pairs[["case_id", "customer_id", "product_id_anchor"]].drop_duplicates("case_id") \
        .rename(columns={"product_id_anchor": "anchor_product_id"}).reset_index(drop=True)
    seen = _interacted_before(split).merge(anchors[["case_id", "customer_id"]], on="customer_id")
    anchor_rows = anchors[["case_id", "anchor_product_id"]].rename(
        columns={"anchor_product_id": "product_id"})
    exclude = pd.concat([seen[["case_id", "product_id"]], anchor_rows], ignore_index=True)
    return RankingTargets("case_id", truth, exclude, anchors["case_id"], anchors)


def homepage_predictions(model: HomepageModel, targets: RankingTargets, k: int) -> pd.DataFrame:
    """The model's top k for every target customer, the protocol's exclusions applied."""
    return model.recommend(targets.units.tolist(), k=k, exclude_interacted=True,
                           business_filters=False, with_reasons=False)


def cross_sell_predictions(model: CrossSellModel, targets: RankingTargets, k: int) -> pd.DataFrame:
    """Each case's anchor list, minus the customer's pre-cut products, cut to k."""
    excluded = targets.exclude.groupby("case_id")["product_id"].agg(set).to_dict()
    frames = []
    for case_id, anchor in zip(targets.anchors["case_id"], targets.anchors["anchor_product_id"]):
        rows = model.also_bought(anchor, k, exclude=excluded.get(case_id, ()))
        frames.append(rows[["product_id", "score"]].assign(case_id=case_id))
    if not frames:
        return pd.DataFrame({"case_id": [], "product_id": [], "score": []})
    return pd.concat(frames, ignore_index=True)


def score_ranking(predictions: pd.DataFrame, targets: RankingTargets, split: Split, k: int,
                  n_items: int) -> dict[str, float]:
    """The protocol's ranking metrics for one prediction frame."""
    return ranking_metrics(targets.truth, predictions, n_items, k, user_col=targets.unit)


def ranking_baselines(targets: RankingTargets, split: Split, k: int, n_items: int, seed: int = 7
                      ) -> tuple[dict[str, dict[str, float]], dict[str, dict[int, float]]]:
    """Popularity and random baselines on the same targets and exclusions.

    Returns:
        (metrics at k per baseline, precision@k curve per baseline).
    """
    length = curve_length(k)
    popular = popularity_recommendations(split.train.events, targets.units, length,
                                         targets.exclude, user_col=targets.unit)
    catalogue = split.train.products["product_id"]
    chance = random_recommendations(catalogue, targets.units, length, targets.exclude, seed=seed,
                                    user_col=targets.unit)
    metrics, curves = {}, {}
    for name, predictions in (("popularity", popular), ("random", chance)):
        metrics[name] = score_ranking(predictions, targets, split, k, n_items)
        curves[name] = precision_curve(predictions, targets)
    return metrics, curves


def precision_curve(predictions: pd.DataFrame, targets: RankingTargets,
                    ks: tuple[int, ...] = CURVE_KS) -> dict[int, float]:
    """precision@k for the plot, from predictions at least max(ks) long."""
    return dict(zip(ks, precision_at_k_curve(targets.truth, predictions, ks,
                                             user_col=targets.unit)))


def curve_length(k: int = DEFAULT_K) -> int:
    """How many predictions to draw so that both the metrics and the curve can be computed."""
    return max(k, max(CURVE_KS))
