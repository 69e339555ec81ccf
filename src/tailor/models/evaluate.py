"""The backtest: fit a model on the data before the split, score it after, beside baselines.

Reads and writes nothing: `backtest` takes a `ShopData`, the model's parameters and the
split, and returns metrics, baselines and what the plots need. `tailor evaluate` and
`tailor train` both call it, so the numbers they print are computed the same way.

Baselines per ARCHITECTURE.md: popularity and random for every model; for churn and
checkout also the recency rule (a logistic curve on days since the last purchase, fitted
on the training rows). For the classifiers, "popularity" is the base-rate predictor (every
row gets the training share of positives) and "random" scores uniformly at random.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from tailor.errors import InputError
from tailor.models.checkout import NO_INCENTIVE, CheckoutParams, checkout_frame, fit_checkout_frame
from tailor.models.churn import (
    ChurnParams, Horizon, churn_training_frame, fit_churn_frame, plan_horizon,
)
from tailor.models.classifier import rule_baseline
from tailor.models.constants import DEFAULT_K
from tailor.models.cross_sell import CrossSellParams, fit_cross_sell
from tailor.models.data import NotEnoughData, ShopData, Split, make_split
from tailor.models.feature_frames import (
    churn_features, churn_labels, churn_snapshot_entities, feature_source,
)
from tailor.models.homepage import (
    MIN_PRODUCTS_FOR_ALS, HomepageModel, HomepageParams, fit_homepage,
)
from tailor.models.metrics import (
    auc_standard_error, classification_metrics, per_user_values, standard_error_of_mean,
)
from tailor.models.ranking_eval import (
    cross_sell_predictions, curve_length, homepage_predictions, precision_curve,
    ranking_baselines, score_ranking,
)
from tailor.models.targets import cross_sell_targets, homepage_targets

log = logging.getLogger(__name__)

Reporter = Callable[[int, float], None]
PRIMARY_METRIC = {"homepage": "precision@{k}", "cross_sell": "hit_rate@{k}", "churn": "roc_auc",
                  "checkout": "roc_auc"}
ALS_STAGES = 3  # homepage ALS is fitted in stages so Optuna can prune between them


@dataclass
class BacktestResult:
    """What one backtest measured.

    Attributes:
        model: homepage, cross_sell, churn or checkout.
        split, cutoff, k: the protocol's settings as used.
        metrics: the model's metrics (keys as in ARCHITECTURE.md).
        baselines: metrics of each baseline on the same split.
        n_evaluated: customers, cases or carts scored.
        notes: anything the reader must know (a shortened horizon, a fallback...).
        curves: inputs for the plots (precision@k points, or labels and probabilities).
        fitted: the model fitted on the training side (or the one given to `evaluate_fitted`).
        primary_se: the primary metric's standard error (per-unit values for the rankers,
            Hanley-McNeil for an AUC), so monitoring can tell a drop from sampling noise.
        scored: what the model scored, for monitoring's reference: a classifier's test rows
            (its features, `prediction` and `label`); a ranker's lists (unit, product_id,
            score).
    """

    model: str
    split: str
    cutoff: pd.Timestamp
    k: int
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    n_evaluated: int
    notes: list[str] = field(default_factory=list)
    curves: dict[str, Any] = field(default_factory=dict)
    fitted: Any = None
    scored: pd.DataFrame | None = None
    primary_se: float | None = None  # standard error of the primary metric on this sample

    @property
    def primary_metric(self) -> str:
        """The metric that decides tuning and promotion."""
        return PRIMARY_METRIC[self.model].format(k=self.k)

    @property
    def primary(self) -> float:
        return float(self.metrics.get(self.primary_metric, 0.0))

    def beats_baselines(self) -> tuple[bool, str]:
        """Whether the primary metric is above every baseline's, and a sentence saying so."""
        name = self.primary_metric
        behind = {base: values.get(name, 0.0) for base, values in self.baselines.items()
                  if values.get(name, 0.0) >= self.primary}
        if behind:
            listed = ", ".join(f"{base} {value:.4f}" for base, value in behind.items())
            return False, f"{name} {self.primary:.4f} does not beat {listed}"
        return True, f"{name} {self.primary:.4f} beats every baseline"

    def to_json(self, version: str | None) -> dict[str, Any]:
        """The `evaluate --json` object of ARCHITECTURE.md."""
        return {"model": self.model, "version": version, "split": self.split,
                "cutoff": self.cutoff.isoformat(), "k": self.k,
                "metrics": _plain(self.metrics),
                "baselines": {name: _plain(values) for name, values in self.baselines.items()},
                "n_evaluated": self.n_evaluated, "notes": self.notes}


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {key: (float(value) if isinstance(value, (int, float, np.number)) else value)
            for key, value in values.items()}


def backtest(model: str, data: ShopData, params: Any, split: str = "time",
             cutoff: str | pd.Timestamp | None = None, k: int = DEFAULT_K,
             report: Reporter | None = None) -> BacktestResult:
    """Fit `model` with `params` before the split and score it after, beside the baselines.

    Args:
        model: homepage, cross_sell, churn or checkout.
        data: the whole history.
        params: the model's params dataclass.
        split: "time" or "user".
        cutoff: ISO time or Timestamp for the time split (default: the last 20%).
        k: list length for the ranking metrics.
        report: called with (step, validation value) while fitting (Optuna pruning).

    Raises:
        InputError: a bad split or cutoff.
        NotEnoughData: the data cannot support this model or split (the message says why).
    """
    chosen = make_split(data, split, cutoff)
    if model not in _RUNNERS:
        raise InputError(f"model: must be one of {', '.join(_RUNNERS)}, got {model!r}")
    return _RUNNERS[model](data, chosen, params, k, report)


def evaluate_fitted(model: str, data: ShopData, fitted: Any, cutoff: pd.Timestamp,
                    k: int = DEFAULT_K) -> BacktestResult:
    """Score an already fitted model (a registered version) on the events after `cutoff`,
    beside the same baselines, without fitting anything: the same metrics as `backtest`, so
    monitoring compares like with like. The caller makes sure the model never saw the data
    after `cutoff` (a version's training data ends before it).

    Raises:
        NotEnoughData: the window holds nothing to score (the message says why).
    """
    if model not in _RUNNERS:
        raise InputError(f"model: must be one of {', '.join(_RUNNERS)}, got {model!r}")
    return _RUNNERS[model](data, make_split(data, "time", cutoff), fitted.params, k, None,
                           fitted)


# -- ranking models ------------------------------------------------------------------------------


def _homepage(data: ShopData, split: Split, params: HomepageParams, k: int,
              report: Reporter | None, fitted: HomepageModel | None = None) -> BacktestResult:
    targets = homepage_targets(split)
    if targets.size == 0:
        products = split.train.products["product_id"].nunique()
        why = f" ({products} product(s): popularity is all there is)" \
            if products < MIN_PRODUCTS_FOR_ALS else ""
        raise NotEnoughData("homepage: no customer with history bought a new product after the "
                            f"cut{why}; choose an earlier --cutoff or add data")
    n_items = len(data.products)

    def on_stage(stage: int, partial: HomepageModel) -> None:
        predictions = homepage_predictions(partial, targets, k)
        report(stage, score_ranking(predictions, targets, split, k, n_items)[f"precision@{k}"])

    if fitted is None:
        fitted = fit_homepage(split.train, params, ALS_STAGES if report else 1,
                              on_stage if report else None)
    predictions = homepage_predictions(fitted, targets, curve_length(k))
    return _ranking_result("homepage", split, k, fitted, predictions, targets, n_items,
                           [fitted.note] if fitted.note else [])


def _cross_sell(data: ShopData, split: Split, params: CrossSellParams, k: int,
                report: Reporter | None, fitted: Any = None) -> BacktestResult:
    targets = cross_sell_targets(split)
    if targets.size == 0:
        raise NotEnoughData("cross_sell: no customer bought two different products after the cut; "
                            "choose an earlier --cutoff or add data")
    if fitted is None:
        fitted = fit_cross_sell(split.train, params)
    predictions = cross_sell_predictions(fitted, targets, curve_length(k))
    return _ranking_result("cross_sell", split, k, fitted, predictions, targets,
                           len(data.products), [fitted.note] if fitted.note else [])


def _ranking_result(model: str, split: Split, k: int, fitted: Any, predictions: pd.DataFrame,
                    targets: Any, n_items: int, notes: list[str]) -> BacktestResult:
    metrics = score_ranking(predictions, targets, split, k, n_items)
    baselines, curves = ranking_baselines(targets, split, k, n_items)
    curves = {"model": precision_curve(predictions, targets), **curves}
    scored = predictions.groupby(targets.unit, sort=False).head(k) \
        if targets.unit in predictions else predictions
    name = PRIMARY_METRIC[model].format(k=k).split("@")[0]
    spread = standard_error_of_mean(per_user_values(name, targets.truth, predictions, k,
                                                    user_col=targets.unit))
    return BacktestResult(model, split.kind, split.cutoff, k, metrics, baselines, targets.size,
                          notes, curves, fitted, scored.reset_index(drop=True), spread)


# -- classifiers ---------------------------------------------------------------------------------


def _churn(data: ShopData, split: Split, params: ChurnParams, k: int,
           report: Reporter | None, fitted: Any = None) -> BacktestResult:
    if split.kind != "time":
        raise InputError("split: churn is labelled by the time after a cutoff; use --split time")
    test_days = (data.end - split.cutoff) / pd.Timedelta(days=1)
    horizon = plan_horizon(params.horizon_days, test_days, "the cutoff")
    train_rows = _cached(data, ("churn_train", split.cutoff, horizon.used_days, params.snapshots,
                                params.snapshot_step_days, params.min_history_days),
                         lambda: churn_training_frame(split.train, split.cutoff, horizon, params))
    if fitted is None:
        fitted = fit_churn_frame(train_rows, params, split.cutoff, horizon, report,
                                 feature_source(split.train, "churn"))
    test = _cached(data, ("churn_test", split.cutoff, horizon.used_days),
                   lambda: _churn_test_rows(data, split, horizon))
    probability = fitted.predict_proba(test)
    notes = [horizon.note] if horizon.note else []
    return _classifier_result("churn", split, k, fitted, test, probability, train_rows,
                              params.threshold, notes + fitted.classifier.notes)


def _cached(data: ShopData, key: tuple, build: Callable[[], Any]) -> Any:
    """`build()`, computed once per history and key (feature frames repeat across trials)."""
    if key not in data.cache:
        data.cache[key] = build()
    return data.cache[key]


def _churn_test_rows(data: ShopData, split: Split, horizon: Horizon) -> pd.DataFrame:
    """Customers who bought before the cutoff: features at the cutoff, label after it."""
    entities = churn_snapshot_entities(split.train, split.cutoff)
    if entities.empty:
        raise NotEnoughData("churn: no customer bought anything before the cutoff")
    return churn_features(split.train, entities.assign(
        label=churn_labels(data, entities, horizon.timedelta)))


def _checkout(data: ShopData, split: Split, params: CheckoutParams, k: int,
              report: Reporter | None, fitted: Any = None) -> BacktestResult:
    frame = checkout_frame(data)
    if split.kind == "time":
        is_test = frame["event_timestamp"] >= split.cutoff
    else:
        is_test = frame["session_key"].isin(set(split.test_events["session_key"]))
    train, test = frame[~is_test], frame[is_test & (frame["incentive"] == NO_INCENTIVE)]
    if len(test) == 0 or train["label"].nunique() < 2:
        raise NotEnoughData(f"checkout: {len(train)} training and {len(test)} test carts; both "
                            "sides need carts (and training needs both outcomes)")
    if fitted is None:
        fitted = fit_checkout_frame(train, params, report)
    probability = fitted.predict_proba(test)
    notes = [f"{int((is_test & (frame['incentive'] != NO_INCENTIVE)).sum())} test carts that "
             "were offered an incentive are not scored"] + fitted.classifier.notes
    return _classifier_result("checkout", split, k, fitted, test, probability,
                              train[train["incentive"] == NO_INCENTIVE], params.threshold, notes)


def _classifier_result(model: str, split: Split, k: int, fitted: Any, test: pd.DataFrame,
                       probability: np.ndarray, train_rows: pd.DataFrame, threshold: float,
                       notes: list[str]) -> BacktestResult:
    labels = test["label"].to_numpy(int)
    recency = rule_baseline(train_rows, test, "days_since_last_purchase", "label")
    base_rate = float(train_rows["label"].mean()) if len(train_rows) else 0.5
    chance = np.random.default_rng(7).random(len(test))
    baselines = {"popularity": classification_metrics(labels, np.full(len(test), base_rate),
                                                      threshold),
                 "random": classification_metrics(labels, chance, threshold),
                 "recency": classification_metrics(labels, recency, threshold)}
    curves = {"labels": labels, "model": probability, "recency": recency,
              "importance": fitted.classifier.importance()}
    scored = test[list(fitted.classifier.feature_names)].assign(prediction=probability,
                                                                  label=labels)
    metrics = classification_metrics(labels, probability, threshold)
    positives = int(labels.sum())
    spread = auc_standard_error(float(metrics["roc_auc"]), positives, len(labels) - positives)
    return BacktestResult(model, split.kind, split.cutoff, k, metrics, baselines, len(test),
                          notes, curves, fitted, scored.reset_index(drop=True), spread)


_RUNNERS: dict[str, Callable[..., BacktestResult]] = {
    "homepage": _homepage, "cross_sell": _cross_sell, "churn": _churn, "checkout": _checkout}
