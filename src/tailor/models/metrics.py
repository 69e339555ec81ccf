"""Evaluation metrics as pure functions on frames, in the style of the recommenders library.

Reads and writes nothing. Ranking metrics take `truth` (one row per relevant user-item pair)
and `pred` (one row per recommended user-item pair with a score; higher ranks first).
Users are those in `truth`: a user with no prediction scores zero. Classification metrics
take arrays of labels (1 = the event happened: churned, abandoned) and probabilities.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from tailor.models.constants import (
    DEFAULT_ITEM_COL, DEFAULT_K, DEFAULT_SCORE_COL, DEFAULT_USER_COL,
)



def top_k_hits(truth: pd.DataFrame, pred: pd.DataFrame, k: int = DEFAULT_K,
               user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
               score_col: str = DEFAULT_SCORE_COL) -> pd.DataFrame:
    """The top-k predictions of every user in `truth`, ranked, with a hit flag.

    Args:
        truth: relevant pairs (`user_col`, `item_col`); duplicates count once.
        pred: recommended pairs with `score_col`; ties keep their order in `pred`.
        k: list length.

    Returns:
        Columns user, item, rank (1-based), hit (bool), n_relevant (the user's relevant count).
    """
    relevant = truth[[user_col, item_col]].drop_duplicates()
    n_relevant = relevant.groupby(user_col).size().rename("n_relevant")
    ranked = pred[pred[user_col].isin(n_relevant.index)][[user_col, item_col, score_col]]
    ranked = ranked.drop_duplicates([user_col, item_col])
    ranked = ranked.sort_values([user_col, score_col], ascending=[True, False], kind="stable")
    ranked["rank"] = ranked.groupby(user_col).cumcount() + 1
    ranked = ranked[ranked["rank"] <= k]
    ranked = ranked.merge(relevant, on=[user_col, item_col], how="left", indicator="hit")
    ranked["hit"] = ranked["hit"].to_numpy() == "both"
    return ranked.merge(n_relevant, left_on=user_col, right_index=True)


def _per_user(truth: pd.DataFrame, values: pd.Series, user_col: str) -> float:
    """Mean of per-user values over every user in `truth` (missing users count as 0)."""
    users = truth[user_col].drop_duplicates()
    if users.empty:
        return 0.0
    return float(values.reindex(users.to_numpy(), fill_value=0.0).mean())


def _precision(hits: pd.DataFrame, k: int, user_col: str) -> pd.Series:
    return hits.groupby(user_col)["hit"].sum() / k


def _recall(hits: pd.DataFrame, k: int, user_col: str) -> pd.Series:
    grouped = hits.groupby(user_col)
    return grouped["hit"].sum() / grouped["n_relevant"].first()


def _ndcg(hits: pd.DataFrame, k: int, user_col: str) -> pd.Series:
    hits = hits.assign(gain=hits["hit"] / np.log2(hits["rank"] + 1))
    grouped = hits.groupby(user_col)
    ideal_length = np.minimum(grouped["n_relevant"].first(), k)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    return grouped["gain"].sum() / ideal_length.map(lambda length: discounts[length - 1])


def _average_precision(hits: pd.DataFrame, k: int, user_col: str) -> pd.Series:
    hits_so_far = hits.groupby(user_col)["hit"].cumsum()
    hits = hits.assign(precision_here=np.where(hits["hit"], hits_so_far / hits["rank"], 0.0))
    grouped = hits.groupby(user_col)
    return grouped["precision_here"].sum() / np.minimum(grouped["n_relevant"].first(), k)


def _hit(hits: pd.DataFrame, k: int, user_col: str) -> pd.Series:
    return hits.groupby(user_col)["hit"].any().astype(float)


_PER_USER = {"precision": _precision, "recall": _recall, "ndcg": _ndcg, "map": _average_precision,
             "hit_rate": _hit}


def _metric(name: str, truth: pd.DataFrame, pred: pd.DataFrame, k: int, user_col: str,
            item_col: str, score_col: str) -> float:
    hits = top_k_hits(truth, pred, k, user_col, item_col, score_col)
    return _per_user(truth, _PER_USER[name](hits, k, user_col), user_col)


def precision_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = DEFAULT_K,
                   user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
                   score_col: str = DEFAULT_SCORE_COL) -> float:
    """Mean over users of (relevant items among the top k) / k."""
    return _metric("precision", truth, pred, k, user_col, item_col, score_col)


def recall_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = DEFAULT_K,
                user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
                score_col: str = DEFAULT_SCORE_COL) -> float:
    """Mean over users of (relevant items among the top k) / (the user's relevant items)."""
    return _metric("recall", truth, pred, k, user_col, item_col, score_col)


def ndcg_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = DEFAULT_K,
              user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
              score_col: str = DEFAULT_SCORE_COL) -> float:
    """Mean over users of binary-relevance DCG@k divided by the ideal DCG@k."""
    return _metric("ndcg", truth, pred, k, user_col, item_col, score_col)


def map_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = DEFAULT_K,
             user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
             score_col: str = DEFAULT_SCORE_COL) -> float:
    """Mean over users of average precision at k, normalised by min(relevant, k)."""
    return _metric("map", truth, pred, k, user_col, item_col, score_col)


def hit_rate_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = DEFAULT_K,
                  user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
                  score_col: str = DEFAULT_SCORE_COL) -> float:
    """Share of users with at least one relevant item among their top k."""
    return _metric("hit_rate", truth, pred, k, user_col, item_col, score_col)


def catalog_coverage(pred: pd.DataFrame, n_items: int, k: int = DEFAULT_K,
                     user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
                     score_col: str = DEFAULT_SCORE_COL) -> float:
    """Share of the catalogue (`n_items` products) that appears in anyone's top k."""
    if n_items <= 0 or pred.empty:
        return 0.0
    ranked = pred.sort_values([user_col, score_col], ascending=[True, False], kind="stable")
    top = ranked.groupby(user_col).head(k)
    return float(top[item_col].nunique() / n_items)


def ranking_metrics(truth: pd.DataFrame, pred: pd.DataFrame, n_items: int, k: int = DEFAULT_K,
                    user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
                    score_col: str = DEFAULT_SCORE_COL) -> dict[str, float]:
    """Every ranking metric of the evaluation protocol, keyed `precision@k` ... `coverage`."""
    hits = top_k_hits(truth, pred, k, user_col, item_col, score_col)
    metrics = {f"{name}@{k}": _per_user(truth, per_user(hits, k, user_col), user_col)
               for name, per_user in _PER_USER.items()}
    metrics["coverage"] = catalog_coverage(pred, n_items, k, user_col, item_col, score_col)
    return metrics


def per_user_values(name: str, truth: pd.DataFrame, pred: pd.DataFrame, k: int = DEFAULT_K,
                    user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
                    score_col: str = DEFAULT_SCORE_COL) -> np.ndarray:
    """Each user's value of the ranking metric `name` (precision, recall, ndcg, map or
    hit_rate) at k, one per user in `truth` (0 for users without a list): their mean is
    `ranking_metrics`' figure, their spread its standard error."""
    hits = top_k_hits(truth, pred, k, user_col, item_col, score_col)
    users = truth[user_col].drop_duplicates().to_numpy()
    values = _PER_USER[name](hits, k, user_col).reindex(users, fill_value=0.0)
    return values.to_numpy(dtype=np.float64)


def standard_error_of_mean(values: np.ndarray) -> float:
    """Standard error of the mean of `values` (0 with fewer than two)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return 0.0
    return float(values.std(ddof=1) / np.sqrt(len(values)))


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Standard error of a ROC AUC from its value and class counts (Hanley & McNeil, 1982):
    no resampling needed. 0 when a class is empty."""
    if positives < 1 or negatives < 1:
        return 0.0
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    variance = (auc * (1.0 - auc) + (positives - 1) * (q1 - auc * auc)
                + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def precision_at_k_curve(truth: pd.DataFrame, pred: pd.DataFrame, ks: Sequence[int],
                         user_col: str = DEFAULT_USER_COL, item_col: str = DEFAULT_ITEM_COL,
                         score_col: str = DEFAULT_SCORE_COL) -> list[float]:
    """precision@k for each k in `ks` (for the precision@k plot), ranking only once."""
    hits = top_k_hits(truth, pred, max(ks), user_col, item_col, score_col)
    curve = []
    for k in ks:
        per_user = hits[hits["rank"] <= k].groupby(user_col)["hit"].sum() / k
        curve.append(_per_user(truth, per_user, user_col))
    return curve


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve; 0.5 when only one class is present (nothing to rank)."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return 0.5
    return float(roc_auc_score(labels, scores))


def pr_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Average precision (area under the precision-recall curve); the base rate with one class."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float(labels.mean()) if len(labels) else 0.0
    return float(average_precision_score(labels, scores))


def precision_recall_at(labels: Sequence[int] | np.ndarray,
                        probabilities: Sequence[float] | np.ndarray,
                        threshold: float) -> tuple[float, float]:
    """Precision and recall of flagging every probability strictly above `threshold`.

    Returns:
        (precision, recall); precision is 0 when nothing is flagged, recall 0 without positives.
    """
    labels = np.asarray(labels).astype(bool)
    flagged = np.asarray(probabilities) > threshold
    true_positives = float(np.sum(flagged & labels))
    precision = true_positives / flagged.sum() if flagged.any() else 0.0
    recall = true_positives / labels.sum() if labels.any() else 0.0
    return precision, recall


def classification_metrics(labels: Sequence[int] | np.ndarray,
                           probabilities: Sequence[float] | np.ndarray,
                           threshold: float) -> dict[str, float]:
    """roc_auc, pr_auc, precision and recall at `threshold`, the threshold and the base rate."""
    precision, recall = precision_recall_at(labels, probabilities, threshold)
    labels = np.asarray(labels)
    return {"roc_auc": roc_auc(labels, probabilities), "pr_auc": pr_auc(labels, probabilities),
            "precision": precision, "recall": recall, "threshold": float(threshold),
            "positive_rate": float(labels.mean()) if len(labels) else 0.0}


def calibration_table(labels: Sequence[int] | np.ndarray,
                      probabilities: Sequence[float] | np.ndarray,
                      n_bins: int = 10) -> pd.DataFrame:
    """Observed rate against mean predicted probability in equal-width probability bins.

    Returns:
        Columns bin_low, bin_high, mean_probability, observed_rate, count (empty bins dropped).
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    frame = pd.DataFrame({"label": np.asarray(labels, dtype=float),
                          "probability": np.asarray(probabilities, dtype=float)})
    frame["bin"] = np.clip(np.digitize(frame["probability"], edges[1:-1]), 0, n_bins - 1)
    table = frame.groupby("bin").agg(mean_probability=("probability", "mean"),
                                     observed_rate=("label", "mean"), count=("label", "size"))
    table["bin_low"] = edges[table.index]
    table["bin_high"] = edges[table.index + 1]
    return table.reset_index(drop=True)[["bin_low", "bin_high", "mean_probability",
                                         "observed_rate", "count"]]
