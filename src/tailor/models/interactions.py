"""Customer x product interaction matrices, id indexes and the ALS factorisation on them.

Reads and writes nothing: turns a `ShopData`'s events into sparse matrices for the homepage
and cross-sell models, and picks a row's best-scored products (`best_first`). Ids are
indexed in order of first appearance in the (time-ordered) event stream, never sorted by
their text, so renaming customers or products (a bijection) yields the same matrices and
therefore the same model: the invariance the model tests check.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

PARALLEL_NNZ = 1_000_000  # below this many interactions, extra threads cost more than they save
SCORE_BATCH = 1024  # customers scored at once on a small catalogue
SCORE_CELLS = 1 << 23  # at most this many customer x product scores at once (64 MiB a matrix)
# best_first's sampled threshold: the SAMPLE_RANK-th best of a sample that about
# SAMPLE_OVERSHOOT x n scores reach; used when the sample is at most 1/SAMPLE_MAX_SHARE of the row.
SAMPLE_RANK, SAMPLE_OVERSHOOT, SAMPLE_MAX_SHARE = 16, 4, 2
INTERACTION_KINDS: dict[str, str] = {"product_view": "view", "add_to_cart": "cart",
                                     "purchase": "purchase"}


@dataclass(frozen=True)
class IdIndex:
    """A stable id <-> row mapping (first-appearance order)."""

    ids: np.ndarray
    positions: dict[str, int]

    @classmethod
    def from_values(cls, values: pd.Series | np.ndarray) -> "IdIndex":
        """Index the distinct values in the order they first appear."""
        unique = pd.unique(pd.Series(values).dropna().astype(str))
        return cls(np.asarray(unique, dtype=object), {value: i for i, value in enumerate(unique)})

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Positions of `values`; -1 for values not in the index."""
        text = pd.Series(values).astype(str)
        if len(text) * 8 < len(self.positions):
            # A few ids in a big index: `Series.map(dict)` would first turn the whole dict
            # into a Series (a second per call on a million customers).
            return np.fromiter((self.positions.get(value, -1) for value in text),
                               dtype=np.int64, count=len(text))
        return text.map(self.positions).fillna(-1).astype(np.int64).to_numpy()


@dataclass(frozen=True)
class InteractionWeights:
    """How much one view, cart add and purchase count, and how fast old ones fade."""

    view: float = 1.0
    cart: float = 4.0
    purchase: float = 10.0
    half_life_days: float = 30.0


def product_events(events: pd.DataFrame) -> pd.DataFrame:
    """The view, cart and purchase events that name a product."""
    mask = events["event_type"].isin(list(INTERACTION_KINDS)) & events["product_id"].notna()
    return events.loc[mask, ["customer_id", "product_id", "event_type", "timestamp"]]


def confidence_matrix(events: pd.DataFrame, customers: IdIndex, products: IdIndex,
                      weights: InteractionWeights, as_of: pd.Timestamp) -> sp.csr_matrix:
    """Customers x products confidence: log1p of decayed, kind-weighted interaction counts.

    Args:
        events: rows from `product_events`; ids outside the indexes are ignored.
        customers, products: the row and column indexes.
        weights: per-kind weights and the half-life of the time decay.
        as_of: the time the decay is measured from (the end of training).

    Returns:
        CSR float32 matrix of shape (len(customers), len(products)).
    """
    kind_weight = events["event_type"].map({"product_view": weights.view,
                                            "add_to_cart": weights.cart,
                                            "purchase": weights.purchase}).to_numpy(float)
    age_days = ((as_of - events["timestamp"]) / pd.Timedelta(days=1)).to_numpy(float)
    decay = np.power(0.5, np.clip(age_days, 0, None) / max(weights.half_life_days, 1e-6))
    rows, cols = customers.lookup(events["customer_id"]), products.lookup(events["product_id"])
    keep = (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix((kind_weight[keep] * decay[keep], (rows[keep], cols[keep])),
                           shape=(len(customers), len(products)), dtype=np.float64)
    matrix.sum_duplicates()
    matrix.data = np.log1p(matrix.data)
    return matrix.astype(np.float32)


def indicator_matrix(events: pd.DataFrame, customers: IdIndex, products: IdIndex) -> sp.csr_matrix:
    """Customers x products 0/1 matrix: 1 where the customer had any of these events."""
    rows, cols = customers.lookup(events["customer_id"]), products.lookup(events["product_id"])
    keep = (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix((np.ones(keep.sum(), dtype=np.float32), (rows[keep], cols[keep])),
                           shape=(len(customers), len(products)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


@dataclass(frozen=True)
class AlsParams:
    """Hyper-parameters of implicit's ALS."""

    factors: int = 32
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    seed: int = 7
    threads: int = 0  # 0: one thread for small matrices, every core for large ones


StageHook = Callable[[int, np.ndarray, np.ndarray], None]


def fit_als(confidence: sp.csr_matrix, params: AlsParams, stages: int = 1,
            on_stage: StageHook | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit implicit ALS on a customers x products confidence matrix.

    Args:
        confidence: CSR customers x products.
        params: hyper-parameters.
        stages: split the iterations into this many stages (each continues the last).
        on_stage: called with (stage, customer factors, product factors) after each stage
            but the last; it may raise to stop a hopeless fit (Optuna pruning).

    Returns:
        (customer factors, product factors) as float32 arrays; factors are capped at
        (products - 1) because more factors than products only fit noise.
    """
    from implicit.cpu.als import AlternatingLeastSquares

    factors = int(max(1, min(params.factors, confidence.shape[1] - 1)))
    threads = params.threads or ((os.cpu_count() or 1) if confidence.nnz >= PARALLEL_NNZ else 1)
    stages = int(max(1, min(stages, params.iterations)))
    chunks = np.diff(np.linspace(0, params.iterations, stages + 1).round().astype(int))
    # implicit parallelises itself; a BLAS thread pool underneath it only contends.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, regularization=params.regularization,
                                        alpha=params.alpha, iterations=int(chunks[0]),
                                        random_state=params.seed, num_threads=threads)
        for stage, iterations in enumerate(chunks):
            model.iterations = int(iterations)
            model.fit(confidence, show_progress=False)  # later stages continue from the factors
            if on_stage is not None and stage < len(chunks) - 1:
                on_stage(stage + 1, np.asarray(model.user_factors), np.asarray(model.item_factors))
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def best_first(scores: np.ndarray, n: int) -> np.ndarray:
    """Indexes of the `n` highest finite scores, best first, ties in index order.

    The same as the first `n` of a stable descending argsort over the finite scores, but it
    sorts only the candidates at or above a threshold: O(products) per row, not
    O(products log products), which matters when every customer is ranked over a large
    catalogue (and a serving request ranks one customer over all of it). On a long row the
    threshold comes from an evenly spaced sample (`_sampled_threshold`), a tenth of the cost
    of partitioning the whole row; when fewer than n finite scores reach it, the row is
    partitioned (its n-th largest value is the threshold). Either way the result is exact.
    """
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n < len(scores):
        found = _best_at_or_above(scores, _sampled_threshold(scores, n), n)
        if found is None:
            found = _best_at_or_above(
                scores, np.partition(scores, len(scores) - n)[len(scores) - n], n)
        if found is not None:
            return found
    available = np.flatnonzero(np.isfinite(scores))
    values = scores[available]
    if n < len(available):
        nth_best = -np.partition(-values, n - 1)[n - 1]
        keep = values >= nth_best
        available, values = available[keep], values[keep]
    return available[np.argsort(-values, kind="stable")][:n]


def _best_at_or_above(scores: np.ndarray, threshold: float, n: int) -> np.ndarray | None:
    """`best_first(scores, n)` from the scores at or above `threshold`, when at least n
    finite ones reach it; else None.

    At least n finite scores at or above t means the n best finite scores are all among them
    (ties at the n-th value included), so sorting those alone gives the same result. NaN never
    passes `>=`; +inf does and is dropped; -inf never reaches a finite t."""
    if not np.isfinite(threshold):
        return None
    available = np.flatnonzero(scores >= threshold)
    available = available[np.isfinite(scores[available])]
    if len(available) < n:
        return None
    return available[np.argsort(-scores[available], kind="stable")][:n]


def _sampled_threshold(scores: np.ndarray, n: int) -> float:
    """A value that about `SAMPLE_OVERSHOOT` x n scores of the row reach, read off every
    s-th score; NaN when the row is too short for a sample to pay.

    The `SAMPLE_RANK`-th largest of m evenly spaced scores is reached by about
    SAMPLE_RANK x len / m scores of the row; m is chosen so that is SAMPLE_OVERSHOOT x n.
    With rank 16 the count falls short of n (and `best_first` partitions the whole row)
    only when the sample is very unlike the row (scores that repeat with the sampling step)."""
    size = len(scores)
    sample = SAMPLE_RANK * size // (SAMPLE_OVERSHOOT * n)
    if sample > size // SAMPLE_MAX_SHARE or sample <= SAMPLE_RANK:
        return math.nan
    every = np.asarray(scores[::size // sample])
    return float(np.partition(every, len(every) - SAMPLE_RANK)[len(every) - SAMPLE_RANK])


def row_indices(matrix: sp.csr_matrix, row: int) -> np.ndarray:
    """The column indexes stored in one row of a CSR matrix, without building a row matrix
    (`matrix[row].indices` costs tens of microseconds; serving asks several times a request)."""
    return matrix.indices[matrix.indptr[row]:matrix.indptr[row + 1]]


def score_batch(n_products: int) -> int:
    """Customers to score at once: `SCORE_BATCH`, fewer on a catalogue so large that a
    batch's dense customers x products matrices would outgrow `SCORE_CELLS`."""
    return max(1, min(SCORE_BATCH, SCORE_CELLS // max(n_products, 1)))
