"""The churn model: P(no purchase in the next `horizon_days`) for customers who have bought.

Reads and writes nothing (fits on a `ShopData`; the weekly retention job in
`tailor.training.jobs` writes its list). Training rows are snapshots: at several times t
(a week apart, the latest one `horizon` before the end of the data), every customer with
a purchase before t, their features as of t, and label 1 when they bought nothing in
[t, t + horizon). When the history is shorter than the asked-for horizon the model uses
the longest horizon the data allows and says so (`horizon_note`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tailor.models.classifier import (
    BoostingParams, CalibratedClassifier, RoundReporter, fit_classifier, numeric_feature_names,
)
from tailor.models.constants import DEFAULT_CHURN_HORIZON_DAYS, DEFAULT_CHURN_THRESHOLD
from tailor.models.data import NotEnoughData, ShopData
from tailor.models.feature_frames import (
    churn_features, churn_labels, churn_snapshot_entities, feature_source, local_churn_features,
)

log = logging.getLogger(__name__)

MIN_HORIZON_DAYS = 1.0
CHURN_KEYS: tuple[str, ...] = ("customer_id", "event_timestamp", "label")
TOP_FEATURES = 3


@dataclass(frozen=True)
class ChurnParams(BoostingParams):
    """Label definition, snapshot plan and XGBoost hyper-parameters (flat, for MLflow)."""

    horizon_days: float = DEFAULT_CHURN_HORIZON_DAYS
    threshold: float = DEFAULT_CHURN_THRESHOLD
    snapshots: int = 6
    snapshot_step_days: float = 7.0
    min_history_days: float = 14.0
    max_depth: int = 2  # shallower than the classifier's default: few, strong signals


@dataclass(frozen=True)
class Horizon:
    """The label horizon actually used, and why it differs from the one asked for."""

    requested_days: float
    used_days: float
    note: str = ""

    @property
    def timedelta(self) -> pd.Timedelta:
        return pd.Timedelta(days=self.used_days)


def plan_horizon(requested_days: float, available_days: float, what: str) -> Horizon:
    """The horizon to use when only `available_days` of data follow the label's start.

    Raises:
        NotEnoughData: less than a day of data follows.
    """
    if available_days < MIN_HORIZON_DAYS:
        raise NotEnoughData(f"churn: only {available_days:.1f} days of data after {what}; "
                            f"the label needs at least {MIN_HORIZON_DAYS:g}")
    if available_days >= requested_days:
        return Horizon(requested_days, requested_days)
    note = (f"the data after {what} covers {available_days:.1f} days, less than the "
            f"{requested_days:g}-day churn horizon: the label is 'no purchase in "
            f"{available_days:.1f} days'")
    log.info("churn: %s", note)  # the note travels with the results; no need to shout each fit
    return Horizon(requested_days, float(available_days), note)


def snapshot_times(data: ShopData, end: pd.Timestamp, horizon: Horizon, params: ChurnParams
                   ) -> list[pd.Timestamp]:
    """Snapshot times: the latest `horizon` before `end`, then a step earlier each, oldest first.

    Snapshots need `min_history_days` of history before them; when even the latest has less,
    it is kept alone (a model on thin history beats none) and the caller's notes say so.
    """
    # Midnight UTC: the feature store's snapshots are stamped there, so features are exact.
    latest = (end - horizon.timedelta).floor("D")
    earliest = data.start + pd.Timedelta(days=params.min_history_days)
    times = [latest - pd.Timedelta(days=params.snapshot_step_days * step)
             for step in range(max(params.snapshots, 1))]
    kept = [moment for moment in times if moment >= earliest]
    if not kept and latest > data.start:
        kept = [latest]
    return sorted(kept)


def churn_training_frame(data: ShopData, end: pd.Timestamp, horizon: Horizon,
                         params: ChurnParams) -> pd.DataFrame:
    """Features and labels of every snapshot whose label window ends by `end`.

    The frame is cached on `data` (it does not change between Optuna trials).

    Raises:
        NotEnoughData: no snapshot has a customer with a purchase before it.
    """
    key = ("churn_training_frame", end, horizon.used_days, params.snapshots,
           params.snapshot_step_days, params.min_history_days)
    if key not in data.cache:
        data.cache[key] = _build_training_frame(data, end, horizon, params)
    return data.cache[key]


def _build_training_frame(data: ShopData, end: pd.Timestamp, horizon: Horizon,
                          params: ChurnParams) -> pd.DataFrame:
    entities = [churn_snapshot_entities(data, moment)
                 for moment in snapshot_times(data, end, horizon, params)]
    entities = [frame for frame in entities if not frame.empty]
    if not entities:
        raise NotEnoughData("churn: no customer bought anything early enough to be labelled; "
                            "churn needs purchases before the last horizon of the data")
    rows = pd.concat(entities, ignore_index=True)
    # One feature request for every snapshot: the feature store answers them in one join.
    return churn_features(data, rows.assign(label=churn_labels(data, rows, horizon.timedelta)))


@dataclass
class ChurnModel:
    """A fitted churn model; build with `fit_churn`."""

    params: ChurnParams
    classifier: CalibratedClassifier
    horizon: Horizon
    trained_until: pd.Timestamp
    training_rows: int
    feature_source: str = "local"

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated P(churn) for rows of churn features."""
        return self.classifier.predict_proba(features)

    def score(self, data: ShopData, as_of: pd.Timestamp) -> pd.DataFrame:
        """Every customer with a purchase before `as_of`: probability, risk and top reasons.

        Returns:
            Columns customer_id, churn_probability, high_risk, top_features (no PII), sorted by
            probability, highest first.
        """
        return self.explain(self.scoring_features(data, as_of))

    def scoring_features(self, data: ShopData, as_of: pd.Timestamp) -> pd.DataFrame:
        """The feature rows `score` scores: one per customer with a purchase before `as_of`."""
        entities = churn_snapshot_entities(data, as_of)
        # Score with features from where the model learnt them (the store may be newer).
        return local_churn_features(data, entities) if self.feature_source == "local" \
            else churn_features(data, entities)

    def explain(self, features: pd.DataFrame,
                probability: np.ndarray | None = None) -> pd.DataFrame:
        """Probability, high-risk flag and the top contributing features of each row
        (`probability` when it was computed elsewhere, e.g. on Spark)."""
        if probability is None:
            probability = self.predict_proba(features)
        contributions = self.classifier.contributions(features)
        return pd.DataFrame({
            "customer_id": features["customer_id"].to_numpy(),
            "churn_probability": np.round(probability, 4),
            "high_risk": probability > self.params.threshold,
            "top_features": top_feature_text(contributions, features)}) \
            .sort_values("churn_probability", ascending=False, kind="stable") \
            .reset_index(drop=True)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """MLflow pyfunc entry: rows of customer_id plus churn features -> probability, risk."""
        probability = self.predict_proba(frame)
        return pd.DataFrame({"customer_id": frame["customer_id"].astype(str).to_numpy(),
                             "churn_probability": probability,
                             "high_risk": probability > self.params.threshold})

    def input_example(self) -> pd.DataFrame:
        row = {name: 0.0 for name in self.classifier.feature_names}
        row.update({"days_since_last_purchase": 45.0, "orders_lifetime": 2.0})
        return pd.DataFrame([{"customer_id": "c-example", **row}])


def top_feature_text(contributions: pd.DataFrame, features: pd.DataFrame,
                     top: int = TOP_FEATURES) -> list[str]:
    """Per row: 'name=value (+0.42); ...' for the features that pushed the risk up most."""
    texts = []
    values = contributions.to_numpy()
    names = np.asarray(contributions.columns)
    for row, contribution in enumerate(values):
        order = np.argsort(-contribution)[:top]
        parts = [f"{names[i]}={_short(features[names[i]].iloc[row])} ({contribution[i]:+.2f})"
                 if names[i] in features else f"{names[i]}=missing ({contribution[i]:+.2f})"
                 for i in order if contribution[i] > 0]
        texts.append("; ".join(parts))
    return texts


def _short(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def fit_churn(data: ShopData, params: ChurnParams = ChurnParams(),
              end: pd.Timestamp | None = None, horizon: Horizon | None = None,
              report: RoundReporter | None = None) -> ChurnModel:
    """Fit the churn model on snapshots whose label windows end by `end`.

    Args:
        data: the history (labels look into it up to `end`).
        params: label, snapshot and XGBoost parameters.
        end: the latest time a label window may reach (default: the last event).
        horizon: the horizon to label with (a backtest passes its test window's); default:
            `params.horizon_days`, shortened to half the history when the data is shorter.
        report: called with (round, validation AUC) while boosting (Optuna pruning).

    Raises:
        NotEnoughData: too little history for any labelled snapshot.
    """
    end = end if end is not None else data.end
    if horizon is None:
        available = (end - data.start) / pd.Timedelta(days=1) / 2.0
        horizon = plan_horizon(params.horizon_days, available, "the earliest usable snapshot")
    return fit_churn_frame(churn_training_frame(data, end, horizon, params), params, end, horizon,
                           report, feature_source(data, "churn"))


def fit_churn_frame(frame: pd.DataFrame, params: ChurnParams, end: pd.Timestamp,
                    horizon: Horizon, report: RoundReporter | None = None,
                    source: str = "local") -> ChurnModel:
    """Fit on a ready `churn_training_frame` (features, label, event_timestamp).

    `source` says where the frame's features came from (`feature_frames.feature_source`).
    """
    names = numeric_feature_names(frame, CHURN_KEYS)
    classifier = fit_classifier(frame, names, "label", "event_timestamp", params.classifier(),
                                report)
    return ChurnModel(params, classifier, horizon, end, len(frame), source)
