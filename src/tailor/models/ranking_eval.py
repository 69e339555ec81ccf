"""Scoring for the ranking models (homepage, cross-sell) and their baselines on holdout targets.

Reads and writes nothing. The targets (who is scored on which products, what is excluded)
come from `tailor.models.targets`; this module draws each model's and each baseline's lists
for them and computes the protocol's metrics and precision curves.
"""

from __future__ import annotations

import pandas as pd

from tailor.models.constants import DEFAULT_K
from tailor.models.cross_sell import CrossSellModel
from tailor.models.data import Split
from tailor.models.homepage import HomepageModel
from tailor.models.metrics import precision_at_k_curve, ranking_metrics
from tailor.models.popularity import popularity_recommendations, random_recommendations
from tailor.models.targets import RankingTargets

CURVE_KS: tuple[int, ...] = (1, 2, 3, 5, 10, 15, 20)


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
