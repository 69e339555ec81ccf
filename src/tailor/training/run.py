"""`tailor train MODEL` (and `mlflow run projects/<model>`): gate, tune, evaluate, register.

Reads: the data-quality gate (it refuses a failed gate unless forced), the privacy
exclusion list, the warehouse. Writes one MLflow run per model in experiment
`tailor-<model>`: the Optuna trials as nested runs, the best parameters, holdout metrics
beside the baselines (and the champion's on the same holdout), plots, the data and feature
versions, the reference monitoring will judge the version against (`reference/`), the model as a pyfunc registered `tailor-<model>`, its aliases and the reason
for the promotion decision. Before training, runs and versions a killed training of the
same model left behind are marked (`tailor.training.leftovers`); each run is tagged with
its process (pid, host, start time) so that the next run can tell.

Steps of one model:
  1. split the history (time: the last 20% is the holdout, or `cutoff`; or user);
  2. tune on the data before the holdout (an inner split; trial 0 = the defaults);
  3. backtest the best parameters on the holdout, beside the baselines;
  4. backtest the champion's parameters on the same holdout (when there is a champion);
  5. refit on the whole history, log and register it, set the aliases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from tailor.config import Settings
from tailor.models import feature_frames
from tailor.models.constants import DEFAULT_K, MODEL_NAMES
from tailor.models.data import NotEnoughData, ShopData, data_version, load_shop_data, make_split
from tailor.models.evaluate import BacktestResult, backtest
from tailor.training.reference import log_reference
from tailor.privacy.excluded_customers import excluded_customer_ids
from tailor.training.leftovers import clean_up_leftovers
from tailor.training.plots import log_plots
from tailor.training.registration import (
    CHAMPION, Promotion, alias_version, apply_aliases, experiment_id, log_model, logged_params,
    promote, use_tracking,
)
from tailor.training.specs import ModelSpec, get_spec
from tailor.training.tuning import (
    Reload, TuningResult, metric_key, project_run_id, start_parent_run, tune,
)

log = logging.getLogger(__name__)

RUN_PARAM_PREFIX = "run_"  # run-level settings; never read back as model parameters


@dataclass
class TrainResult:
    """What `train_model` did, for the CLI and the demo."""

    model: str
    status: str  # "trained" or "skipped"
    run_id: str | None = None
    version: str | None = None
    promoted: bool = False
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def feature_version(model: str, data: ShopData, holdout: BacktestResult) -> str:
    """Which features the model used: their source (Feast service or local) and a name hash."""
    classifier = getattr(holdout.fitted, "classifier", None)
    if classifier is None:
        return "events:interactions"
    digest = hashlib.sha256(",".join(classifier.feature_names).encode()).hexdigest()[:10]
    return f"{feature_frames.feature_source(data, model)}:{digest}"


def train_model(settings: Settings, model: str, trials: int = 20, *, data: ShopData | None = None,
                split: str = "time", cutoff: str | None = None, k: int = DEFAULT_K,
                jobs: int | None = None, gate_forced: bool = False,
                project_run: str | None = None, resume_project_run: bool = True,
                register_only: bool = False) -> TrainResult:
    """Tune, evaluate, register and (maybe) promote one model. The gate must have run already.

    Args:
        settings: tracking URI, business settings, Optuna settings.
        model: homepage, cross_sell, churn or checkout.
        trials: Optuna trials (1 = defaults only).
        data: the history (default: the warehouse minus excluded customers).
        split, cutoff, k: the holdout protocol.
        jobs: parallel trials (default from settings).
        gate_forced: the quality gate failed and training was forced (logged as a tag).
        project_run: the run `mlflow run` opened (`tuning.project_run_id()`), if any.
        resume_project_run: log into `project_run` (False: into a child of it).
        register_only: register the version as challenger and leave the champion alone (a
            monitoring round takes the decision itself, against the served champion).

    Returns:
        The `TrainResult`.

    Raises:
        NotEnoughData: the data cannot support this model (the message says why).
    """
    started = time.perf_counter()
    spec = get_spec(model)
    if data is None:
        data = load_shop_data(settings, excluded_customer_ids(settings))
    use_tracking(settings)
    experiment = experiment_id(settings, spec.registered_name)
    clean_up_leftovers(MlflowClient(), experiment, spec.registered_name)
    holdout_split = make_split(data, split, cutoff)
    with start_parent_run(experiment, f"train-{model}", project_run,
                          resume_project_run) as run:
        _tag_run(spec, data, settings, gate_forced, trials)
        mlflow.log_params({f"{RUN_PARAM_PREFIX}split": split, f"{RUN_PARAM_PREFIX}k": k,
                           f"{RUN_PARAM_PREFIX}cutoff": holdout_split.cutoff.isoformat(),
                           f"{RUN_PARAM_PREFIX}trials": trials})
        # Worker processes can rebuild the tuning data only if it came from the warehouse.
        reload = Reload(split, holdout_split.cutoff) if data.warehouse_settings is not None \
            else None
        tuning = tune(spec, holdout_split.train, settings, trials, run.info.run_id, k, jobs,
                      reload=reload)
        holdout = backtest(model, data, tuning.best_params, split, holdout_split.cutoff, k)
        if model == "homepage":
            tuning, holdout = _choose_reranker(data, tuning, holdout, split, k)
        _log_holdout(tuning, holdout)
        mlflow.set_tag("feature_version", feature_version(model, data, holdout))
        measured = _champion_on_holdout(spec, data, settings, holdout, tuning.best_params,
                                        split, k)
        final = spec.fit_final(data, tuning.best_params, holdout)
        log_reference(data, holdout)
        version = log_model(final, spec.registered_name)
        if register_only:
            promotion = apply_aliases(MlflowClient(), spec.registered_name, version, False,
                                      "challenger: registered for a monitoring round's decision",
                                      measured[1])
        else:
            promotion = promote(settings, MlflowClient(), spec.registered_name, version,
                                holdout, measured, lambda: _champion_on_holdout(
                                    spec, data, settings, holdout, tuning.best_params, split, k))
        mlflow.set_tags({"promotion": promotion.reason, "registered_version": version})
        return _result(model, run.info.run_id, promotion, holdout, promotion.champion, tuning,
                       started)


def _tag_run(spec: ModelSpec, data: ShopData, settings: Settings, gate_forced: bool,
             trials: int) -> None:
    mlflow.set_tags({"model": spec.name, "data_version": data_version(data),
                     "data_events": len(data.events), "data_from": data.start.isoformat(),
                     "data_to": data.end.isoformat(),
                     "quality_gate": "forced past failure" if gate_forced else "passed",
                     "excluded_customers": len(excluded_customer_ids(settings))})


def _choose_reranker(data: ShopData, tuning: TuningResult, plain: BacktestResult, split: str,
                     k: int) -> tuple[TuningResult, BacktestResult]:
    """Keep the homepage re-ranker only if it beats plain ALS on the same holdout."""
    params = replace(tuning.best_params, rerank=True)
    try:
        reranked = backtest("homepage", data, params, split, plain.cutoff, k)
    except NotEnoughData as error:
        reranked, why = None, f"re-ranker not evaluated: {error}"
    name = plain.primary_metric
    mlflow.log_metric(f"holdout_plain_{metric_key(name)}", plain.primary)
    if reranked is not None:
        mlflow.log_metric(f"holdout_reranked_{metric_key(name)}", reranked.primary)
        better = reranked.primary > plain.primary and reranked.fitted.reranker is not None
        why = (f"re-ranker {'kept' if better else 'not used'}: {name} {reranked.primary:.4f} "
               f"with it, {plain.primary:.4f} with plain ALS on the holdout")
        if better:
            tuning = replace(tuning, best_params=params, note="; ".join(
                note for note in (tuning.note, why) if note))
            mlflow.set_tag("reranker", why)
            return tuning, reranked
    mlflow.set_tag("reranker", why)
    return replace(tuning, note="; ".join(note for note in (tuning.note, why) if note)), plain


def _log_holdout(tuning: TuningResult, holdout: BacktestResult) -> None:
    """Best params, holdout metrics, baselines, notes and plots on the active run."""
    mlflow.log_params({name: value for name, value in asdict(tuning.best_params).items()})
    mlflow.log_metrics({f"holdout_{metric_key(name)}": float(value)
                        for name, value in holdout.metrics.items()})
    for baseline, values in holdout.baselines.items():
        mlflow.log_metrics({f"baseline_{baseline}_{metric_key(name)}": float(value)
                            for name, value in values.items()})
    mlflow.log_metrics({"trials_completed": tuning.completed, "trials_pruned": tuning.pruned,
                        "trials_own": tuning.own_trials,
                        "holdout_evaluated": holdout.n_evaluated})
    mlflow.set_tags({"optuna_study": tuning.study, "optuna_best_run": tuning.best_run or ""})
    if tuning.best_value is not None:
        mlflow.log_metric(f"validation_{metric_key(holdout.primary_metric)}", tuning.best_value)
    notes = holdout.notes + ([tuning.note] if tuning.note else [])
    mlflow.log_text(json.dumps(holdout.to_json(None), indent=2), "holdout.json")
    if notes:
        mlflow.log_text("\n".join(notes), "notes.txt")
    log_plots(holdout)


def _champion_on_holdout(spec: ModelSpec, data: ShopData, settings: Settings,
                         holdout: BacktestResult, holdout_params: Any, split: str, k: int
                         ) -> tuple[BacktestResult | None, str | None]:
    """The current champion's parameters backtested on the same holdout (None without one)."""
    client = MlflowClient()
    version = alias_version(client, spec.registered_name, CHAMPION)
    if version is None:
        return None, None
    params = spec.from_values(logged_params(client, version), settings)
    if params == holdout_params:
        # Same parameters, same data, same split: the backtest is deterministic, reuse it.
        result = holdout
    else:
        try:
            result = backtest(spec.name, data, params, split, holdout.cutoff, k)
        except NotEnoughData as error:
            log.warning("champion v%s could not be re-evaluated: %s", version.version, error)
            return None, None
    mlflow.log_metrics({f"champion_{metric_key(name)}": float(value)
                        for name, value in result.metrics.items()})
    mlflow.set_tag("champion_version", str(version.version))
    return result, str(version.version)


def _result(model: str, run_id: str, promotion: Promotion, holdout: BacktestResult,
            champion: BacktestResult | None, tuning: TuningResult, started: float) -> TrainResult:
    return TrainResult(
        model=model, status="trained", run_id=run_id, version=promotion.version,
        promoted=promotion.promoted, reason=promotion.reason, metrics=dict(holdout.metrics),
        baselines=holdout.baselines, champion_metrics=dict(champion.metrics) if champion else None,
        params=asdict(tuning.best_params),
        tuning={"completed": tuning.completed, "pruned": tuning.pruned, "failed": tuning.failed,
                "best_validation": tuning.best_value, "study": tuning.study,
                "own_trials": tuning.own_trials, "best_run": tuning.best_run},
        notes=holdout.notes + ([tuning.note] if tuning.note else []),
        seconds=round(time.perf_counter() - started, 2))


def train_models(settings: Settings, model: str, trials: int = 20, force: bool = False,
                 jobs: int | None = None, split: str = "time", cutoff: str | None = None,
                 k: int = DEFAULT_K) -> list[TrainResult]:
    """`tailor train`: check the gate once, then train one model or all four.

    With `model="all"`, a model the data cannot support is skipped with the reason and the
    others still train; a single model that cannot train raises.

    Raises:
        QualityGateFailed: the gate failed and `force` is False.
        NotEnoughData: the single requested model cannot be trained on this data.
    """
    from tailor.quality import require_passing_gate

    names = list(MODEL_NAMES) if model == "all" else [get_spec(model).name]
    report = require_passing_gate(settings, force=force)
    data = load_shop_data(settings, excluded_customer_ids(settings))
    use_tracking(settings)
    project_run = project_run_id()
    results = []
    for name in names:
        try:
            results.append(train_model(settings, name, trials, data=data, split=split,
                                       cutoff=cutoff, k=k, jobs=jobs,
                                       gate_forced=not report.passed,
                                       project_run=project_run,
                                       resume_project_run=len(names) == 1))
        except NotEnoughData as error:
            if model != "all":
                raise
            log.warning("%s skipped: %s", name, error)
            results.append(TrainResult(name, "skipped", reason=str(error)))
    return results
