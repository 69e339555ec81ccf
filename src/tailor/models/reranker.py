"""The homepage re-ranker: a logistic regression over the top candidates' features.

Reads and writes nothing. The homepage model proposes its top `candidates` products per
customer; the re-ranker re-orders them by P(bought next | features): the blended score,
the raw ALS score, the rank, popularity, trending, the customer's affinity for the
product's category, the price-tier gap and how much history the customer has. It is
trained on an inner time split of the training data (the model fitted before the inner
cut, labels from the purchases after it), and training keeps it only when it beats the
plain model on the holdout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tailor.models.interactions import best_first, score_batch

if TYPE_CHECKING:  # the homepage module imports this one at run time
    from tailor.models.homepage import HomepageModel

log = logging.getLogger(__name__)

RERANK_FEATURES: tuple[str, ...] = ("blend", "collaborative", "position", "popularity",
                                    "trending", "affinity", "tier_gap", "history", "purchases")
MIN_POSITIVES = 10


@dataclass
class Reranker:
    """A fitted re-ranker: standardised features into a logistic regression."""

    pipeline: Pipeline
    candidates: int
    positives: int

    def rescore(self, features: pd.DataFrame) -> np.ndarray:
        """P(bought) of each candidate row."""
        return self.pipeline.predict_proba(features[list(RERANK_FEATURES)])[:, 1]


def candidate_features(model: "HomepageModel", rows: np.ndarray, scores: np.ndarray,
                       candidates: int) -> tuple[np.ndarray, pd.DataFrame]:
    """The top `candidates` product indexes per customer row and their features.

    Args:
        model: the fitted homepage model.
        rows: customer rows (-1 for unknown customers).
        scores: the model's filtered scores for those rows (customers x products; -inf = left out).
        candidates: how many products per customer to describe.

    Returns:
        (product indexes, shape rows x candidates, -1 where fewer were available;
         features, one row per available candidate, in row-major order).
    """
    width = min(candidates, scores.shape[1])
    order = np.full((len(rows), width), -1, dtype=np.int64)
    for position, row_scores in enumerate(scores):
        best = best_first(row_scores, width)
        order[position, :len(best)] = best
    available = order >= 0
    order = np.maximum(order, 0)
    known = np.maximum(rows, 0)
    collaborative = np.zeros_like(scores)
    if model.user_factors is not None:
        collaborative = np.where(rows[:, None] >= 0,
                                 model.user_factors[known] @ model.item_factors.T, 0.0)
    codes = model._category_codes()
    frame = pd.DataFrame({
        "blend": np.take_along_axis(scores, order, axis=1)[available],
        "collaborative": np.take_along_axis(collaborative, order, axis=1)[available],
        "position": np.broadcast_to(np.arange(width), order.shape)[available],
        "popularity": model.popularity[order][available],
        "trending": model.trending[order][available],
        "affinity": np.where(rows[:, None] >= 0,
                             model.category_affinity[known][np.arange(len(rows))[:, None],
                                                            codes[order]], 0.0)[available],
        "tier_gap": np.abs(model.preferred_tier[known][:, None] - model.tiers[order])[available],
        "history": np.log1p(np.where(rows >= 0, model.interaction_counts[known], 0))[
            np.nonzero(available)[0]],
        "purchases": np.log1p(np.where(rows >= 0, model.purchase_counts[known], 0))[
            np.nonzero(available)[0]],
    })
    return np.where(available, order, -1), frame


def fit_reranker(model: "HomepageModel", truth: pd.DataFrame, candidates: int
                 ) -> Reranker | None:
    """Fit the re-ranker on `model`'s candidates for the customers in `truth`.

    Args:
        model: the homepage model fitted before the inner cut.
        truth: (customer_id, product_id) bought after the inner cut, new to the customer.
        candidates: products per customer to learn from.

    Returns:
        The re-ranker, or None when the candidates hold fewer than `MIN_POSITIVES` purchases.
    """
    customers = truth["customer_id"].drop_duplicates()
    if customers.empty:
        return None
    batch = score_batch(len(model.products))
    parts = [_candidates(model, customers.iloc[start:start + batch], candidates)
             for start in range(0, len(customers), batch)]
    pairs = pd.concat([part[0] for part in parts], ignore_index=True)
    features = pd.concat([part[1] for part in parts], ignore_index=True)
    bought = set(zip(truth["customer_id"], truth["product_id"]))
    labels = np.array([pair in bought for pair in zip(pairs["customer_id"], pairs["product_id"])])
    if labels.sum() < MIN_POSITIVES or labels.all():
        log.info("re-ranker: %d purchases among the candidates; not enough to learn from",
                 labels.sum())
        return None
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    pipeline.fit(features[list(RERANK_FEATURES)], labels)
    return Reranker(pipeline, candidates, int(labels.sum()))


def _candidates(model: "HomepageModel", customers: pd.Series, candidates: int
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(customer_id, product_id) of one batch of customers' candidates, and their features."""
    rows = model.customers.lookup(customers)
    scores, _ = model.score_matrix(rows, model.customer_tiers(rows))
    scores = model._apply_filters(scores, rows, exclude_interacted=True, business_filters=False)
    order, features = candidate_features(model, rows, scores, candidates)
    pairs = pd.DataFrame({"customer_id": np.repeat(customers.to_numpy(), order.shape[1]),
                          "product_id": model.products.ids[np.maximum(order, 0)].ravel()})
    return pairs[order.ravel() >= 0].reset_index(drop=True), features
