"""A calibrated XGBoost binary classifier shared by the churn and checkout models.

Reads and writes nothing. Fits gradient-boosted trees on the earlier rows of a time-ordered
frame, stops early and calibrates (Platt scaling) on the later rows, so that a probability of
0.7 means about 70% of such rows are positive. Explains single predictions with XGBoost's
per-feature contributions (`pred_contribs`, SHAP values in log-odds).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.linear_model import LogisticRegression

from tailor.models.metrics import roc_auc
from tailor.models.params import LoggedParams

log = logging.getLogger(__name__)

RoundReporter = Callable[[int, float], None]
REPORT_EVERY = 10  # boosting rounds between two validation reports (for Optuna pruning)
MIN_CALIBRATION_ROWS = 30
PARALLEL_ROWS = 100_000  # below this many rows, extra threads cost more than they save


@dataclass(frozen=True)
class BoostingParams(LoggedParams):
    """The XGBoost hyper-parameters every classifier model tunes, as flat fields (for MLflow).

    A model's params class extends this one with its own fields (and may change a default);
    `classifier()` is the part `fit_classifier` reads.
    """

    max_depth: int = 4
    learning_rate: float = 0.05
    max_rounds: int = 400
    min_child_weight: float = 2.0
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    reg_lambda: float = 1.0
    seed: int = 7
    threads: int = 0  # 0: one thread below PARALLEL_ROWS rows, every core above

    def classifier(self) -> "ClassifierParams":
        """The boosting fields of these parameters, with the classifier's own defaults."""
        return ClassifierParams(**{item.name: getattr(self, item.name)
                                   for item in fields(BoostingParams)})


@dataclass(frozen=True)
class ClassifierParams(BoostingParams):
    """XGBoost hyper-parameters (tuned) and how the frame is cut for early stopping."""

    early_stopping_rounds: int = 30
    calibration_share: float = 0.25


@dataclass
class CalibratedClassifier:
    """Boosted trees plus a Platt calibration of their margin.

    `booster` is None when the training labels had one class only; then every row gets the
    training base rate (`base_rate`).
    """

    booster: xgb.Booster | None
    feature_names: list[str]
    platt_slope: float = 1.0
    platt_intercept: float = 0.0
    base_rate: float = 0.5
    rounds: int = 0
    validation_auc: float = 0.5
    notes: list[str] = field(default_factory=list)

    def matrix(self, frame: pd.DataFrame) -> xgb.DMatrix:
        """The frame's feature columns (missing ones as NaN) as a DMatrix."""
        return xgb.DMatrix(feature_matrix(frame, self.feature_names),
                           feature_names=self.feature_names)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive class for each row."""
        return self.predict_proba_values(feature_matrix(frame, self.feature_names))

    def predict_proba_values(self, values: np.ndarray) -> np.ndarray:
        """`predict_proba` on a float matrix whose columns are `feature_names` in order
        (NaN = missing); serving builds that matrix directly, which skips pandas."""
        if self.booster is None or len(values) == 0:
            return np.full(len(values), self.base_rate)
        return self.calibrated(self.booster.inplace_predict(values, predict_type="margin"))

    def calibrated(self, margin: np.ndarray) -> np.ndarray:
        """The calibrated probabilities of the booster's margins (float32, as XGBoost gives
        them; `tailor.models.tree_walk` computes the same margins for single rows)."""
        return _sigmoid(self.platt_slope * np.asarray(margin) + self.platt_intercept)

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per row and feature, the contribution to the log-odds (SHAP values; bias dropped)."""
        if self.booster is None:
            return pd.DataFrame(0.0, index=frame.index, columns=self.feature_names)
        values = self.booster.predict(self.matrix(frame), pred_contribs=True)
        return pd.DataFrame(values[:, :-1] * self.platt_slope, index=frame.index,
                            columns=self.feature_names)

    def importance(self) -> pd.Series:
        """Total gain per feature, largest first (features never split on score 0)."""
        gains = self.booster.get_score(importance_type="total_gain") if self.booster else {}
        series = pd.Series({name: gains.get(name, 0.0) for name in self.feature_names})
        return series.sort_values(ascending=False)


def feature_matrix(frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """Float matrix of `feature_names` (booleans as 0/1, missing columns and values as NaN)."""
    columns = frame.reindex(columns=list(feature_names))
    return columns.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)


def numeric_feature_names(frame: pd.DataFrame, exclude: Sequence[str]) -> list[str]:
    """Columns usable as features: numbers and booleans, minus keys and labels in `exclude`."""
    names = []
    for column in frame.columns:
        if column in exclude:
            continue
        kind = frame[column].dtype
        if pd.api.types.is_bool_dtype(kind) or pd.api.types.is_numeric_dtype(kind):
            names.append(column)
    return names


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(values, -35, 35)))


def _booster_params(params: ClassifierParams, base_rate: float, rows: int) -> dict:
    return {"objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist",
            "max_depth": params.max_depth, "eta": params.learning_rate,
            "min_child_weight": params.min_child_weight, "subsample": params.subsample,
            "colsample_bytree": params.colsample_bytree, "lambda": params.reg_lambda,
            "seed": params.seed,
            "nthread": params.threads or ((os.cpu_count() or 1) if rows >= PARALLEL_ROWS else 1),
            "base_score": float(np.clip(base_rate, 0.01, 0.99))}


class _Reporter(xgb.callback.TrainingCallback):
    """Calls `report(round, validation AUC)` every REPORT_EVERY rounds (Optuna prunes there)."""

    def __init__(self, report: RoundReporter) -> None:
        super().__init__()
        self.report = report

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if (epoch + 1) % REPORT_EVERY == 0 and "valid" in evals_log:
            self.report(epoch + 1, float(evals_log["valid"]["auc"][-1]))
        return False


def time_ordered_split(frame: pd.DataFrame, time_col: str, share: float
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier rows, the last `share` of rows by `time_col`); ties stay on one side."""
    ordered = frame.sort_values(time_col, kind="stable")
    times = ordered[time_col]
    cut_time = times.iloc[int(len(ordered) * (1.0 - share))] if len(ordered) else None
    later = times >= cut_time if cut_time is not None else times.notna()
    return ordered[~later], ordered[later]


def fit_classifier(frame: pd.DataFrame, feature_names: Sequence[str], label_col: str,
                   time_col: str, params: ClassifierParams = ClassifierParams(),
                   report: RoundReporter | None = None) -> CalibratedClassifier:
    """Fit, early-stop and calibrate on a time-ordered frame.

    Args:
        frame: one row per example; `label_col` holds 0/1, `time_col` orders the rows.
        feature_names: the columns to learn from.
        label_col, time_col: the label and the time columns.
        params: hyper-parameters.
        report: called with (round, validation AUC) during boosting (may raise to stop).

    Returns:
        The fitted, calibrated classifier (a constant one when the labels have one class).
    """
    names = list(feature_names)
    labels = frame[label_col].to_numpy(int)
    base_rate = float(labels.mean()) if len(labels) else 0.5
    if len(np.unique(labels)) < 2:
        note = f"training labels have one class only ({len(labels)} rows): constant {base_rate:.2f}"
        log.warning("classifier: %s", note)
        return CalibratedClassifier(None, names, base_rate=base_rate, notes=[note])
    fit_part, calibration_part = time_ordered_split(frame, time_col, params.calibration_share)
    usable = len(calibration_part) >= MIN_CALIBRATION_ROWS and \
        calibration_part[label_col].nunique() == 2 and fit_part[label_col].nunique() == 2
    if not usable:
        fit_part, calibration_part = frame, frame.iloc[0:0]
    booster = _boost(fit_part, calibration_part, names, label_col, params, base_rate, report)
    model = CalibratedClassifier(booster, names, base_rate=base_rate,
                                 rounds=booster.num_boosted_rounds())
    if usable:
        _calibrate(model, calibration_part, label_col)
    else:
        model.notes.append("too few later rows to early-stop and calibrate: raw probabilities")
    return model


def _boost(fit_part: pd.DataFrame, calibration_part: pd.DataFrame, names: list[str],
           label_col: str, params: ClassifierParams, base_rate: float,
           report: RoundReporter | None) -> xgb.Booster:
    train = xgb.DMatrix(feature_matrix(fit_part, names), label=fit_part[label_col].to_numpy(),
                        feature_names=names)
    evals, stopping, callbacks = [], None, []
    if len(calibration_part):
        valid = xgb.DMatrix(feature_matrix(calibration_part, names),
                            label=calibration_part[label_col].to_numpy(), feature_names=names)
        evals, stopping = [(valid, "valid")], params.early_stopping_rounds
        if report is not None:
            callbacks.append(_Reporter(report))
    booster = xgb.train(_booster_params(params, base_rate, len(fit_part)), train,
                        num_boost_round=params.max_rounds, evals=evals,
                        early_stopping_rounds=stopping, callbacks=callbacks, verbose_eval=False)
    if stopping is not None and booster.best_iteration is not None:
        booster = booster[: booster.best_iteration + 1]
    return booster


def _calibrate(model: CalibratedClassifier, calibration_part: pd.DataFrame, label_col: str) -> None:
    """Platt scaling: a logistic regression of the label on the raw margin."""
    margin = model.booster.predict(model.matrix(calibration_part), output_margin=True)
    labels = calibration_part[label_col].to_numpy(int)
    platt = LogisticRegression(C=1e4).fit(margin.reshape(-1, 1), labels)
    model.platt_slope = float(platt.coef_[0, 0])
    model.platt_intercept = float(platt.intercept_[0])
    model.validation_auc = roc_auc(labels, margin)


def rule_baseline(train: pd.DataFrame, test: pd.DataFrame, column: str, label_col: str
                  ) -> np.ndarray:
    """A one-feature rule turned into probabilities: logistic regression of label on `column`.

    Used for the recency baselines (e.g. days since the last purchase). Fit on `train`,
    applied to `test`; the base rate when training has one class.
    """
    labels = train[label_col].to_numpy(int)
    if len(np.unique(labels)) < 2:
        return np.full(len(test), labels.mean() if len(labels) else 0.5)
    values = np.log1p(train[[column]].clip(lower=0).fillna(0).to_numpy(float))
    rule = LogisticRegression().fit(values, labels)
    test_values = np.log1p(test[[column]].clip(lower=0).fillna(0).to_numpy(float))
    return rule.predict_proba(test_values)[:, 1]
