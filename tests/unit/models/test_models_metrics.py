"""Ranking and classification metrics, checked against values worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from tailor.models.metrics import (
    calibration_table, catalog_coverage, classification_metrics, hit_rate_at_k, map_at_k,
    ndcg_at_k, pr_auc, precision_at_k, precision_recall_at, ranking_metrics, recall_at_k, roc_auc,
)


@pytest.fixture
def truth() -> pd.DataFrame:
    # u1 bought a and b; u2 bought c; u4 bought d but got no recommendation at all.
    return pd.DataFrame({"customer_id": ["u1", "u1", "u2", "u4"],
                         "product_id": ["a", "b", "c", "d"]})


@pytest.fixture
def pred() -> pd.DataFrame:
    # u1 ranks a, x, b; u2 ranks y, z; u3 is not in the truth and must be ignored.
    return pd.DataFrame({"customer_id": ["u1", "u1", "u1", "u2", "u2", "u3"],
                         "product_id": ["b", "a", "x", "y", "z", "a"],
                         "score": [0.7, 0.9, 0.8, 0.9, 0.8, 1.0]})


def test_precision_counts_hits_over_k_for_every_truth_user(truth, pred) -> None:
    # u1: 2 hits of 3; u2: 0; u4: 0 -> (2/3) / 3 users
    assert precision_at_k(truth, pred, k=3) == pytest.approx((2 / 3) / 3)
    # k = 1: only u1's "a" is a hit
    assert precision_at_k(truth, pred, k=1) == pytest.approx(1 / 3)


def test_recall_divides_by_each_users_relevant_items(truth, pred) -> None:
    assert recall_at_k(truth, pred, k=3) == pytest.approx(1 / 3)
    assert recall_at_k(truth, pred, k=1) == pytest.approx((1 / 2) / 3)


def test_hit_rate_is_the_share_of_users_with_a_hit(truth, pred) -> None:
    assert hit_rate_at_k(truth, pred, k=3) == pytest.approx(1 / 3)


def test_ndcg_uses_log2_discounts_and_the_ideal_order(truth, pred) -> None:
    dcg = 1 / math.log2(2) + 1 / math.log2(4)          # hits at ranks 1 and 3
    ideal = 1 / math.log2(2) + 1 / math.log2(3)        # two relevant items at ranks 1 and 2
    assert ndcg_at_k(truth, pred, k=3) == pytest.approx((dcg / ideal) / 3)


def test_map_averages_precision_at_each_hit(truth, pred) -> None:
    average_precision = (1 / 1 + 2 / 3) / 2            # hits at ranks 1 and 3, 2 relevant
    assert map_at_k(truth, pred, k=3) == pytest.approx(average_precision / 3)


def test_coverage_counts_distinct_recommended_products(pred) -> None:
    # top 3 of u1, u2, u3: b, a, x, y, z -> 5 of 10 products
    assert catalog_coverage(pred, n_items=10, k=3) == pytest.approx(0.5)
    assert catalog_coverage(pred.iloc[0:0], n_items=10) == 0.0


def test_ranking_metrics_keys_follow_k(truth, pred) -> None:
    metrics = ranking_metrics(truth, pred, n_items=10, k=3)
    assert set(metrics) == {"precision@3", "recall@3", "ndcg@3", "map@3", "hit_rate@3",
                            "coverage"}
    assert metrics["precision@3"] == pytest.approx(precision_at_k(truth, pred, k=3))


def test_duplicate_truth_rows_count_once(truth, pred) -> None:
    doubled = pd.concat([truth, truth.iloc[:1]])
    assert recall_at_k(doubled, pred, k=3) == pytest.approx(recall_at_k(truth, pred, k=3))


def test_other_column_names_are_accepted() -> None:
    truth = pd.DataFrame({"case_id": ["c1"], "item": ["a"]})
    pred = pd.DataFrame({"case_id": ["c1", "c1"], "item": ["z", "a"], "rating": [2.0, 1.0]})
    assert precision_at_k(truth, pred, k=2, user_col="case_id", item_col="item",
                          score_col="rating") == pytest.approx(0.5)


def test_roc_auc_counts_correctly_ordered_pairs() -> None:
    labels, scores = [1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1]
    assert roc_auc(labels, scores) == pytest.approx(3 / 4)   # 3 of 4 (pos, neg) pairs ordered
    assert roc_auc([1, 1], [0.2, 0.3]) == 0.5                # one class: nothing to rank


def test_pr_auc_is_average_precision() -> None:
    # ranks: 1 pos (precision 1), 2 neg, 3 pos (precision 2/3) -> (1 + 2/3) / 2
    assert pr_auc([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1]) == pytest.approx((1 + 2 / 3) / 2)


def test_precision_and_recall_at_a_threshold_flag_strictly_above() -> None:
    precision, recall = precision_recall_at([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.7], threshold=0.7)
    assert (precision, recall) == (pytest.approx(0.5), pytest.approx(0.5))   # flagged 0.9, 0.8
    assert precision_recall_at([1, 0], [0.1, 0.2], threshold=0.7) == (0.0, 0.0)


def test_classification_metrics_report_the_operating_threshold() -> None:
    metrics = classification_metrics([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1], threshold=0.7)
    assert metrics["threshold"] == 0.7
    assert metrics["positive_rate"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(0.5)


def test_calibration_table_bins_probabilities() -> None:
    table = calibration_table([0, 1, 1, 1], [0.05, 0.15, 0.95, 0.92], n_bins=10)
    assert table["count"].tolist() == [1, 1, 2]
    assert table["observed_rate"].tolist() == [0.0, 1.0, 1.0]
    assert table["mean_probability"].iloc[2] == pytest.approx(np.mean([0.95, 0.92]))
