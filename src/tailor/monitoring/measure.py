"""Measuring a registered version on a window: its primary metric (the served artifact on
unseen data, else a backtest of its parameters), the drift of what it saw and scored, and the
served answers' own accuracy.

Reads the registry (the version's artifact and logged parameters), the `ShopData` of the
round and the prediction log; writes Evidently snapshots and HTML through
`tailor.monitoring.drift`. Used by `tailor.monitoring.rounds`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tailor.config import Settings
from tailor.monitoring.drift import DriftResult

log = logging.getLogger(__name__)

SERVED_UNSEEN = "served version on unseen data"


@dataclass
class Measured:
    primary: float
    source: str
    scored: pd.DataFrame | None
    popularity: float | None
    se: float | None


def measure(settings: Settings, client: Any, spec: Any, version: Any, reference: Any,
            data: Any, start: pd.Timestamp) -> Measured:
    """The version's primary metric on the window from `start`, its standard error and the
    popularity baseline's on the same customers (`tailor.monitoring.rounds`, step 2)."""
    result, source = score_version(settings, client, spec, version, reference, data, start)
    popularity = result.baselines.get("popularity", {}).get(result.primary_metric)
    return Measured(result.primary, source, result.scored,
                    None if popularity is None else float(popularity), result.primary_se)


def score_version(settings: Settings, client: Any, spec: Any, version: Any, reference: Any,
                  data: Any, start: pd.Timestamp) -> tuple[Any, str]:
    """The version's `BacktestResult` on the window and how it was measured: its artifact
    when its training data ended by `start`, else its parameters refitted before `start`."""
    from tailor.models.evaluate import backtest, evaluate_fitted

    if reference.data_to <= start:
        fitted = load_fitted(spec.registered_name, str(version.version))
        return (evaluate_fitted(spec.name, data, fitted, start, reference.k),
                SERVED_UNSEEN)
    from tailor.training.registration import logged_params

    params = spec.from_values(logged_params(client, version), settings)
    return (backtest(spec.name, data, params, "time", start, reference.k),
            "backtest of its parameters (its training data covers the window)")


def load_fitted(registered_name: str, version: str) -> Any:
    """The fitted model object of a registered version (the pyfunc's inner model)."""
    import mlflow.pyfunc

    from tailor.logs import library_output

    with library_output("mlflow.output"):  # artifact download bars go to the log only
        loaded = mlflow.pyfunc.load_model(f"models:/{registered_name}/{version}")
    return loaded.unwrap_python_model().model


def drift(settings: Settings, model: str, reference: Any, data: Any, start: pd.Timestamp,
          measured: Measured, version: str, shared: Any = None) -> list[DriftResult]:
    """Data drift of the window's customer profiles, and drift of what the model scored.
    `shared`: the round's `RoundReports` (the workspace, and reports to reuse)."""
    from tailor.models.profiles import customer_profiles
    from tailor.monitoring.drift import compare

    window = data.events[data.events["timestamp"] >= start]
    tags = {"version": version, "window_start": start.isoformat()}
    results = []
    pairs = [("profile", reference.profile, customer_profiles(window, data.products))]
    if measured.scored is not None and len(measured.scored) and len(reference.scored):
        pairs.append(("scored", reference.scored, measured.scored))
    for dataset, before, after in pairs:
        try:
            results.append(compare(settings, model, dataset, before, after, data.end, tags,
                                   shared))
        except Exception as error:  # a drift report is evidence, never a reason to stop
            log.warning("%s %s drift report failed: %s: %s", model, dataset,
                        type(error).__name__, error)
    return results


def served(settings: Settings, data: Any, model: str, start: pd.Timestamp, end: pd.Timestamp,
           k: int) -> dict[str, float] | None:
    """The served answers' accuracy on the window, or for churn the newest retention list's
    whose horizon has passed (evidence; None without matured answers)."""
    from tailor.monitoring.churn_outcomes import churn_list_accuracy
    from tailor.monitoring.served_accuracy import served_accuracy

    try:
        if model == "churn":  # scored in batch: the retention lists whose horizon has passed
            return churn_list_accuracy(settings, data)
        return served_accuracy(settings, data, model, start, end, k)
    except Exception as error:  # evidence only: a missing log never stops a round
        log.warning("%s: served answers not measured: %s: %s", model, type(error).__name__,
                    error)
        return None
