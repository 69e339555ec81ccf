"""The standard errors monitoring tests drops against: each compared with the spread of the
metric over bootstrap resamples computed in the same test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.models.metrics import (
    auc_standard_error, per_user_values, ranking_metrics, roc_auc, standard_error_of_mean,
)


def test_auc_standard_error_matches_the_bootstrap() -> None:
    rng = np.random.default_rng(4)
    labels = rng.random(1_500) < 0.3
    scores = labels * 0.8 + rng.normal(0, 1, len(labels))
    auc = roc_auc(labels.astype(int), scores)
    boot = [roc_auc(labels[i].astype(int), scores[i])
            for i in (rng.integers(0, len(labels), len(labels)) for _ in range(400))]
    formula = auc_standard_error(auc, int(labels.sum()), int((~labels).sum()))
    assert formula == pytest.approx(float(np.std(boot)), rel=0.2)
    assert auc_standard_error(0.7, 0, 10) == 0.0


def test_per_user_values_average_to_the_metric_and_give_its_spread() -> None:
    rng = np.random.default_rng(5)
    users = [f"u{i}" for i in range(300)]
    truth = pd.DataFrame({"customer_id": np.repeat(users, 2),
                          "product_id": [f"p{i}" for i in rng.integers(0, 40, 600)]})
    pred = pd.DataFrame({"customer_id": np.repeat(users[:250], 10),
                         "product_id": [f"p{i}" for i in rng.integers(0, 40, 2_500)],
                         "score": rng.random(2_500)})
    values = per_user_values("precision", truth, pred, 10)
    assert len(values) == 300 and (values[250:] == 0).all()  # users without a list count 0
    assert values.mean() == pytest.approx(ranking_metrics(truth, pred, 40, 10)["precision@10"])
    boot = [values[rng.integers(0, 300, 300)].mean() for _ in range(400)]
    assert standard_error_of_mean(values) == pytest.approx(float(np.std(boot)), rel=0.2)
    assert standard_error_of_mean(np.array([0.5])) == 0.0
