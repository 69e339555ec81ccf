"""`best_first`: the n highest finite scores, best first, ties in index order, on every row
shape serving and the backtests meet (ties, -inf filters, NaN and +inf from broken inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from tailor.models.interactions import (
    _best_at_or_above, _sampled_threshold, best_first, row_indices,
)


def sorted_reference(scores: np.ndarray, n: int) -> np.ndarray:
    """The definition: a stable descending sort of the finite scores, cut at n."""
    finite = np.flatnonzero(np.isfinite(scores))
    return finite[np.argsort(-scores[finite], kind="stable")][:max(n, 0)]


def test_agrees_with_a_full_stable_sort_on_random_rows() -> None:
    rng = np.random.default_rng(11)
    for _ in range(3000):
        size = int(rng.integers(0, 60))
        scores = rng.integers(0, 6, size).astype(float)  # few values: many ties
        for special in (np.nan, np.inf, -np.inf):
            scores[rng.random(size) < rng.random() * 0.4] = special
        n = int(rng.integers(-1, 70))
        assert np.array_equal(best_first(scores, n), sorted_reference(scores, n)), (scores, n)


@pytest.mark.parametrize("n", [1, 10, 30, 500])
def test_agrees_on_a_catalogue_sized_row(n: int) -> None:
    rng = np.random.default_rng(n)
    scores = rng.random(100_000)
    scores[rng.random(100_000) < 0.05] = -np.inf
    assert np.array_equal(best_first(scores, n), sorted_reference(scores, n))


@pytest.mark.parametrize("n", [8, 16, 50, 200])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_long_row_is_cut_at_a_sampled_threshold(n: int, dtype: type) -> None:
    """The fast path is taken on a realistic row (a tenth of the partition's cost) and its
    answer is the definition's, ties included."""
    rng = np.random.default_rng(n)
    scores = np.round(rng.random(100_000), 3).astype(dtype)  # many ties
    scores[rng.random(100_000) < 0.2] = -np.inf
    threshold = _sampled_threshold(scores, n)
    assert np.isfinite(threshold)
    fast = _best_at_or_above(scores, threshold, n)
    assert fast is not None
    assert np.array_equal(fast, sorted_reference(scores, n))
    assert np.array_equal(best_first(scores, n), sorted_reference(scores, n))


def test_a_misleading_sample_falls_back_to_the_whole_row() -> None:
    """Only the sampled positions score high: fewer than n scores reach the sample's
    threshold, and the whole row decides."""
    size, n = 100_000, 50
    scores = np.full(size, 0.5)
    step = size // (16 * size // (4 * n))
    scores[::step] = np.linspace(0.0, 1.0, len(scores[::step]))
    threshold = _sampled_threshold(scores, n)
    assert _best_at_or_above(scores, threshold, n) is None
    assert np.array_equal(best_first(scores, n), sorted_reference(scores, n))


def test_short_rows_and_small_n_skip_the_sample() -> None:
    assert np.isnan(_sampled_threshold(np.arange(40.0), 5))
    assert np.isnan(_sampled_threshold(np.arange(100_000.0), 4))


def test_row_indices_are_the_rows_stored_columns() -> None:
    import scipy.sparse as sp

    matrix = sp.random(40, 30, density=0.2, format="csr", random_state=3)
    for row in range(40):
        assert np.array_equal(row_indices(matrix, row), matrix[row].indices)
