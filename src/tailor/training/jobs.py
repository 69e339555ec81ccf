"""The jobs around trained models: evaluate, recommend, churn scores and the weekly retention list.

Reads: the warehouse (minus excluded customers), the MLflow registry (champions and the
parameters they were trained with). `score_churn` and `recommend_for_customers` are also
what the re-engagement campaigns plan from. Writes: only `write_retention_list`, which writes
`<home>/reports/retention/retention_<date>.csv` and `latest.csv` (customer_id, probability,
top contributing features, no PII), and beside them what monitoring needs to judge the list
once its horizon has passed: `retention_<date>.scores.parquet` (every scored customer id and
probability) and `retention_<date>.json` (when, which version, threshold, horizon). Schedule
it weekly (cron, or `mlflow run projects/churn -e retention`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.config import Settings
from tailor.errors import InputError
from tailor.models.constants import DEFAULT_K
from tailor.models.data import load_shop_data
from tailor.models.evaluate import backtest
from tailor.privacy.excluded_customers import excluded_customer_ids
from tailor.training.registration import (
    CHAMPION, alias_version, load_champion, logged_params, tracking_store_exists, use_tracking,
)
from tailor.training.specs import get_spec

log = logging.getLogger(__name__)

RETENTION_COLUMNS: tuple[str, ...] = ("customer_id", "churn_probability", "top_features")


def champion_params(settings: Settings, model: str) -> tuple[Any, str | None]:
    """The champion's parameters and version, or the defaults and None without a champion."""
    from mlflow.tracking import MlflowClient

    spec = get_spec(model)
    if not tracking_store_exists(settings):
        return spec.default_params(settings), None
    use_tracking(settings)
    client = MlflowClient()
    version = alias_version(client, spec.registered_name, CHAMPION)
    if version is None:
        return spec.default_params(settings), None
    return spec.from_values(logged_params(client, version), settings), str(version.version)


def evaluate_model(settings: Settings, model: str, cutoff: str | None = None, split: str = "time",
                   k: int = DEFAULT_K) -> dict[str, Any]:
    """`tailor evaluate`: backtest with the champion's (or default) parameters.

    Returns:
        The ARCHITECTURE.md object: model, version, split, cutoff, k, metrics, baselines
        (plus n_evaluated and notes).

    Raises:
        InputError: bad model, split or cutoff.
        NotEnoughData: the data cannot support this evaluation.
    """
    if k < 1:
        raise InputError(f"k: must be at least 1, got {k}")
    params, version = champion_params(settings, model)
    data = load_shop_data(settings, excluded_customer_ids(settings))
    result = backtest(model, data, params, split, cutoff, k)
    return result.to_json(version)


def recommend_for_customer(settings: Settings, customer_id: str, k: int = DEFAULT_K
                           ) -> dict[str, Any]:
    """`tailor recommend`: the champion homepage model's list for one customer, with reasons.

    A customer who opted out (or was deleted) gets the same list as a stranger: personalisation
    is off for them.

    Raises:
        LookupError: no homepage champion is registered yet.
    """
    from tailor.events.tombstones import TombstoneSet

    personalised = customer_id not in excluded_customer_ids(settings) and \
        not TombstoneSet(settings.home_path).contains(customer_id)
    lookup_id = customer_id if personalised else "\x00not-personalised"
    items, version = recommend_for_customers(settings, [lookup_id], k=k)
    rows = items[["product_id", "rank", "score", "tier", "reason"]].to_dict(orient="records")
    return {"customer_id": customer_id, "model": "homepage", "version": version,
            "personalised": personalised, "items": rows}


def recommend_for_customers(settings: Settings, customer_ids: list[str], k: int = DEFAULT_K
                            ) -> tuple[pd.DataFrame, str]:
    """The champion homepage model's lists for many customers in one batch (the campaigns'
    picks); the caller leaves out excluded customers.

    Returns:
        Columns customer_id, product_id, rank, score, tier, reason; and the version.

    Raises:
        LookupError: no homepage champion is registered yet.
    """
    model, version = load_champion(settings, get_spec("homepage").registered_name)
    return model.recommend(list(customer_ids), k=k), version


def _as_utc(text: str) -> pd.Timestamp:
    """An ISO time as UTC (naive means UTC).

    Raises:
        InputError: not a time.
    """
    try:
        moment = pd.Timestamp(text)
    except ValueError:
        raise InputError(f"as_of: {text!r} is not an ISO 8601 time") from None
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


@dataclass(frozen=True)
class ChurnScores:
    """The churn champion's scores of every customer who has bought, and what they came from.

    Attributes:
        scores: customer_id, churn_probability, high_risk, top_features; highest first.
        version: the churn champion's version.
        as_of: the time scored at.
        products: the catalogue of the history scored (names and prices for campaign mail).
        model: the churn model that scored (its horizon, its parameters).
    """

    scores: pd.DataFrame
    version: str
    as_of: pd.Timestamp
    products: pd.DataFrame
    model: Any = None


def score_churn(settings: Settings, as_of: str | None = None) -> ChurnScores:
    """Score every customer who has bought (minus excluded ones) with the churn champion:
    in process, or through `mlflow.pyfunc.spark_udf` when `features.engine = spark` (the
    probabilities on Spark's executors; the reasons of each row here).

    Args:
        settings: registry, warehouse, exclusion list.
        as_of: ISO time to score at (default: just after the newest event).

    Raises:
        LookupError: no churn champion is registered yet.
    """
    name = get_spec("churn").registered_name
    model, version = load_champion(settings, name)
    data = load_shop_data(settings, excluded_customer_ids(settings))
    moment = _as_utc(as_of) if as_of else data.end + pd.Timedelta(seconds=1)
    if settings.features_engine != "spark":
        return ChurnScores(model.score(data, moment), version, moment, data.products, model)
    from tailor.training.spark_scoring import spark_churn_probabilities

    features = model.scoring_features(data, moment)
    probability = spark_churn_probabilities(settings, name, version, features,
                                            list(model.classifier.feature_names))
    return ChurnScores(model.explain(features, probability), version, moment, data.products,
                       model)


@dataclass(frozen=True)
class RetentionList:
    """Where the retention list went and what it holds."""

    path: str
    as_of: str
    model_version: str
    customers_scored: int
    high_risk: int
    threshold: float
    horizon_days: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_retention_list(settings: Settings, as_of: str | None = None) -> RetentionList:
    """Score every customer who has bought with the champion churn model; write the high-risk ones.

    Args:
        settings: home (report folder), registry, exclusion list.
        as_of: ISO time to score at (default: just after the newest event).

    Returns:
        The `RetentionList` summary.

    Raises:
        LookupError: no churn champion is registered yet.
    """
    churn = score_churn(settings, as_of)
    scored, version, moment, model = churn.scores, churn.version, churn.as_of, churn.model
    threshold = settings.models_churn_threshold
    high_risk = scored[scored["churn_probability"] > threshold][list(RETENTION_COLUMNS)]
    folder = settings.reports_path / "retention"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"retention_{moment:%Y-%m-%d}.csv"
    high_risk.to_csv(path, index=False)
    high_risk.to_csv(folder / "latest.csv", index=False)
    scored[["customer_id", "churn_probability"]].to_parquet(
        path.with_suffix(".scores.parquet"), index=False)
    horizon = getattr(getattr(model, "horizon", None), "used_days", None)
    summary = RetentionList(str(Path(path)), moment.isoformat(), version, len(scored),
                            len(high_risk), threshold,
                            None if horizon is None else float(horizon))
    path.with_suffix(".json").write_text(json.dumps(summary.to_dict(), indent=2))
    log.info("retention list: %d of %d customers above %.2f -> %s", len(high_risk), len(scored),
             threshold, path)
    return summary
