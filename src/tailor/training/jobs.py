"""The jobs around trained models: evaluate, recommend, and the weekly retention list.

Reads: the warehouse (minus excluded customers), the MLflow registry (champions and the
parameters they were trained with). Writes: only `write_retention_list`, which writes
`<home>/reports/retention/retention_<date>.csv` and `latest.csv` (customer_id, probability,
top contributing features, no PII). Schedule it weekly (cron, or `mlflow run projects/churn
-e retention`).
"""

from __future__ import annotations

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
    model, version = load_champion(settings, get_spec("homepage").registered_name)
    personalised = customer_id not in excluded_customer_ids(settings)
    lookup_id = customer_id if personalised else "\x00not-personalised"
    items = model.recommend([lookup_id], k=k)
    rows = items[["product_id", "rank", "score", "tier", "reason"]].to_dict(orient="records")
    return {"customer_id": customer_id, "model": "homepage", "version": version,
            "personalised": personalised, "items": rows}


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
class RetentionList:
    """Where the retention list went and what it holds."""

    path: str
    as_of: str
    model_version: str
    customers_scored: int
    high_risk: int
    threshold: float

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
    model, version = load_champion(settings, get_spec("churn").registered_name)
    data = load_shop_data(settings, excluded_customer_ids(settings))
    moment = _as_utc(as_of) if as_of else data.end + pd.Timedelta(seconds=1)
    scored = model.score(data, moment)
    threshold = settings.models_churn_threshold
    high_risk = scored[scored["churn_probability"] > threshold][list(RETENTION_COLUMNS)]
    folder = settings.reports_path / "retention"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"retention_{moment:%Y-%m-%d}.csv"
    high_risk.to_csv(path, index=False)
    high_risk.to_csv(folder / "latest.csv", index=False)
    log.info("retention list: %d of %d customers above %.2f -> %s", len(high_risk), len(scored),
             threshold, path)
    return RetentionList(str(Path(path)), moment.isoformat(), version, len(scored),
                         len(high_risk), threshold)
