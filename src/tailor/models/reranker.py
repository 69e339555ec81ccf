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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import expit
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

    def __getstate__(self) -> dict[str, Any]:
        """The fields only: `_linear` reads its parts again after loading."""
        return {name: value for name, value in self.__dict__.items() if name != "_linear_parts"}

    def rescore(self, features: np.ndarray) -> np.ndarray:
        """P(bought) of each candidate row (columns in `RERANK_FEATURES` order).

        Serving re-ranks one customer per request: the scaler and the regression are applied
        with numpy (the same arithmetic as their `transform` and `predict_proba`, without
        scikit-learn's input checks, which cost more than the maths on 50 rows)."""
        linear = self._linear()
        if linear is None:  # another pipeline shape: scikit-learn does it
            frame = pd.DataFrame(features, columns=list(RERANK_FEATURES))
            return self.pipeline.predict_proba(frame)[:, 1]
        mean, scale, coef, intercept = linear
        standardised = (features - mean) / scale
        return expit(standardised @ coef + intercept)

    def _linear(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        """(mean, scale, coefficients, intercept) of a StandardScaler + binary
        LogisticRegression pipeline, else None; read once and kept beside the fields."""
        if "_linear_parts" not in self.__dict__:
            steps = [step for _, step in self.pipeline.steps]
            parts = None
            if (len(steps) == 2 and isinstance(steps[0], StandardScaler)
                    and isinstance(steps[1], LogisticRegression)
                    and steps[0].with_mean and steps[0].with_std
                    and steps[1].coef_.shape[0] == 1):
                parts = (steps[0].mean_, steps[0].scale_, steps[1].coef_[0],
                         float(steps[1].intercept_[0]))
            self.__dict__["_linear_parts"] = parts
        return self.__dict__["_linear_parts"]


def candidate_features(model: "HomepageModel", rows: np.ndarray, scores: np.ndarray,
                       candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """The top `candidates` product indexes per customer row and their features.

    Args:
        model: the fitted homepage model.
        rows: customer rows (-1 for unknown customers).
        scores: the model's filtered scores for those rows (customers x products; -inf = left out).
        candidates: how many products per customer to describe.

    Returns:
        (product indexes, shape rows x candidates, -1 where fewer were available;
         features, one row per available candidate, in row-major order, one column per
         `RERANK_FEATURES` name).
    """
    width = min(candidates, scores.shape[1])
    order = np.full((len(rows), width), -1, dtype=np.int64)
    for position, row_scores in enumerate(scores):
        best = best_first(row_scores, width)
        order[position, :len(best)] = best
    blend = np.take_along_axis(scores, np.maximum(order, 0), axis=1)
    return order, described_candidates(model, rows, order, blend)


def described_candidates(model: "HomepageModel", rows: np.ndarray, order: np.ndarray,
                         blend: np.ndarray) -> np.ndarray:
    """The features of candidates already chosen (`candidate_features`' second part).

    Args:
        model, rows: as in `candidate_features`.
        order: product indexes per row, best first (-1 where fewer were available).
        blend: the model's filtered score of each of them (same shape).
    """
    width = order.shape[1]
    available = order >= 0
    order = np.maximum(order, 0)
    known = np.maximum(rows, 0)
    collaborative = np.zeros(order.shape)
    if model.user_factors is not None:  # the ALS score of each candidate only
        collaborative = np.einsum("rf,rcf->rc", model.user_factors[known],
                                  model.item_factors[order])
        collaborative[rows < 0] = 0.0
    codes = model.category_codes()
    is_known = rows[:, None] >= 0
    per_row = np.nonzero(available)[0]
    columns = {
        "blend": blend[available],
        "collaborative": collaborative[available],
        "position": np.broadcast_to(np.arange(width), order.shape)[available],
        "popularity": model.popularity[order][available],
        "trending": model.trending[order][available],
        "affinity": np.where(is_known, model.category_affinity[known][
            np.arange(len(rows))[:, None], codes[order]], 0.0)[available],
        "tier_gap": np.abs(model.preferred_tier[known][:, None] - model.tiers[order])[available],
        "history": np.log1p(np.where(rows >= 0, model.interaction_counts[known], 0))[per_row],
        "purchases": np.log1p(np.where(rows >= 0, model.purchase_counts[known], 0))[per_row],
    }
    return np.column_stack([np.asarray(columns[name], dtype=np.float64)
                            for name in RERANK_FEATURES]) if len(per_row) else \
        np.zeros((0, len(RERANK_FEATURES)))


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
    features = pd.DataFrame(np.concatenate([part[1] for part in parts]),
                            columns=list(RERANK_FEATURES))
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
                ) -> tuple[pd.DataFrame, np.ndarray]:
    """(customer_id, product_id) of one batch of customers' candidates, and their features."""
    rows = model.customers.lookup(customers)
    scores, _ = model.score_matrix(rows, model.customer_tiers(rows))
    scores = model.apply_filters(scores, rows, exclude_interacted=True, business_filters=False)
    order, features = candidate_features(model, rows, scores, candidates)
    pairs = pd.DataFrame({"customer_id": np.repeat(customers.to_numpy(), order.shape[1]),
                          "product_id": model.products.ids[np.maximum(order, 0)].ravel()})
    return pairs[order.ravel() >= 0].reset_index(drop=True), features
