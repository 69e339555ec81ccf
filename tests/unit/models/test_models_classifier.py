"""The calibrated XGBoost classifier: calibration, constant labels, explanations."""

import logging

import numpy as np
import pandas as pd
import pytest

from tailor.models.classifier import (
    ClassifierParams, fit_classifier, numeric_feature_names, rule_baseline,
)


def _frame(rows: int = 2000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    probability = 1 / (1 + np.exp(-2 * signal))
    return pd.DataFrame({"signal": signal, "noise": rng.normal(size=rows),
                         "flag": rng.random(rows) < 0.5, "name": "x",
                         "label": (rng.random(rows) < probability).astype(int),
                         "moment": pd.date_range("2026-01-01", periods=rows, freq="h", tz="UTC")})


def test_probabilities_are_calibrated_on_later_rows() -> None:
    frame = _frame()
    model = fit_classifier(frame, ["signal", "noise"], "label", "moment",
                           ClassifierParams(threads=1))
    fresh = _frame(seed=2)
    probability = model.predict_proba(fresh)
    # In each probability band the observed rate is close to the promise.
    bands = pd.cut(probability, [0, 0.3, 0.7, 1.0])
    observed = fresh.groupby(bands, observed=True)["label"].mean()
    promised = pd.Series(probability).groupby(bands, observed=True).mean()
    assert np.abs(observed.to_numpy() - promised.to_numpy()).max() < 0.08
    assert model.validation_auc > 0.75


def test_contributions_point_at_the_informative_feature() -> None:
    model = fit_classifier(_frame(), ["signal", "noise"], "label", "moment")
    contributions = model.contributions(_frame(rows=50, seed=3))
    assert contributions.abs().mean().idxmax() == "signal"
    assert model.importance().index[0] == "signal"


def test_one_class_labels_give_a_constant_base_rate(caplog: pytest.LogCaptureFixture) -> None:
    frame = _frame().assign(label=1)
    with caplog.at_level(logging.WARNING):
        model = fit_classifier(frame, ["signal"], "label", "moment")
    assert model.booster is None and "one class" in model.notes[0]
    assert np.all(model.predict_proba(frame.head(3)) == 1.0)


def test_feature_names_are_numbers_and_booleans_only() -> None:
    assert numeric_feature_names(_frame(), exclude=("label",)) == ["signal", "noise", "flag"]


def test_missing_feature_columns_are_treated_as_missing_values() -> None:
    model = fit_classifier(_frame(), ["signal", "noise"], "label", "moment")
    absent = model.predict_proba(pd.DataFrame({"signal": [3.0, -3.0]}))
    missing = model.predict_proba(pd.DataFrame({"signal": [3.0, -3.0], "noise": [np.nan] * 2}))
    np.testing.assert_allclose(absent, missing)
    assert absent[0] > absent[1]  # the signal still decides


def test_rule_baseline_is_monotone_in_its_feature() -> None:
    train = pd.DataFrame({"days": [1, 2, 3, 50, 60, 70], "label": [0, 0, 0, 1, 1, 1]})
    scores = rule_baseline(train, pd.DataFrame({"days": [0, 10, 100]}), "days", "label")
    assert scores[0] < scores[1] < scores[2]
