"""Optuna tuning of one model, every trial a nested MLflow run under the training run.

Reads: the training side of the holdout split (a `ShopData`). Writes: one child MLflow run
per trial (its parameters, validation metrics and state) and, when
`models_optuna_storage` is set, the study to that database. A study in a database is named
after the model, the data snapshot and the search's settings (`study_name`), not after the
run: `tailor train MODEL --trials N` started on several machines against one database (and
the same data) joins one study, each process adds its N trials, and each picks the best of
all the trials the study holds when its own are done. Every trial records the training run
and host that ran it (`RUN_ATTR`, `HOST_ATTR`). Trials score on an inner split of the
training data (its last 20%), never on the holdout. Trial 0 is always the current defaults
(enqueued once per study), so tuning cannot end worse than them on validation. Trials run in parallel worker processes (`models_optuna_jobs`; a worker
reloads the data from the warehouse and shares the study through a journal file under
`<home>/optuna/` or the configured database), and a median pruner stops trials whose
intermediate validation score (ALS stages, boosting rounds) falls behind the median of
earlier trials at the same step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from tailor.config import Settings
from tailor.models.constants import DEFAULT_K
from tailor.models.data import NotEnoughData, ShopData, data_version
from tailor.models.evaluate import backtest
from tailor.training.leftovers import process_tags
from tailor.training.specs import ModelSpec

log = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal:"
WORKER_SETTINGS = "TAILOR_WORKER_SETTINGS"  # the parent's resolved settings, as JSON
PARALLEL_EVENTS = 2_000_000  # below this, a worker's start-up costs more than its trials save
RUN_ATTR = "training_run"  # user attribute of each trial: the MLflow run it was run under
HOST_ATTR = "host"  # user attribute of each trial: the machine (host name) that ran it


@dataclass
class TuningResult:
    """The outcome of a study."""

    best_params: Any
    best_value: float | None
    completed: int
    pruned: int
    failed: int
    note: str = ""
    study: str = ""
    own_trials: int = 0  # trials this training run added (the others came from other runs)
    best_run: str | None = None  # the training run whose trial is the best


def parallel_jobs(settings: Settings, trials: int, events: int) -> int:
    """Processes for a study: the setting; else, on auto, one for small histories or small
    machines, and otherwise one per two cores (each process keeps two threads for ALS and
    XGBoost) as long as every process gets two trials or more. A worker first pays a Python
    start and a data reload; docs/scaling.md has the measurements behind these limits."""
    if settings.models_optuna_jobs:
        return max(1, min(settings.models_optuna_jobs, trials))
    cores = os.cpu_count() or 1
    if events < PARALLEL_EVENTS or cores <= 2:
        return 1
    return max(1, min(cores // 2, trials // 2))


@dataclass(frozen=True)
class Reload:
    """How a worker process rebuilds the tuning data: the holdout split of the warehouse."""

    split: str
    cutoff: pd.Timestamp


def storage_spec(settings: Settings, study_name: str, workers: int) -> str | None:
    """Where the study lives: the configured database, a journal file for local worker
    processes, or nowhere (in memory) for a single process."""
    if settings.models_optuna_storage:
        return settings.models_optuna_storage
    if workers == 0:
        return None
    folder = settings.home_path / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    return f"{JOURNAL_PREFIX}{folder / (study_name + '.log')}"


def study_name(spec: ModelSpec, train: ShopData, settings: Settings, k: int,
               parent_run_id: str) -> str:
    """The study's name: shared by every run on the same model, data and search settings when
    the study lives in a database (`models_optuna_storage`), else this run's own.

    The shared name holds the model, the data snapshot (`data_version` of the training side,
    which includes the holdout cut) and a digest of what makes two searches the same one: the
    default parameters (they follow the business settings; threads aside) and k. A run on
    other data or other settings starts a study of its own rather than mixing incomparable
    scores.
    """
    if not settings.models_optuna_storage:
        return f"{spec.registered_name}-{parent_run_id}"
    defaults = {key: value for key, value in asdict(spec.default_params(settings)).items()
                if key != "threads"}  # a machine's own affair, not the search's
    search = json.dumps({"defaults": defaults, "k": k}, sort_keys=True, default=str)
    digest = hashlib.sha256(search.encode()).hexdigest()[:8]
    return f"{spec.registered_name}-{data_version(train)}-{digest}"


def process_seed(seed: int, settings: Settings) -> int:
    """The sampler seed of this process: `seed` for a study of its own; for a shared study,
    `seed` moved by this host and process, so machines joining one study do not all draw the
    same random start-up trials."""
    if not settings.models_optuna_storage:
        return seed
    return seed + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_000


def storage_url(url: str) -> str:
    """A database URL SQLAlchemy can open with the installed driver: `postgresql://` means
    psycopg2 to SQLAlchemy, while Tailor installs psycopg 3, so the driver is named."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(spec: str | None) -> Any:
    """An Optuna storage for `storage_spec`'s answer.

    Machines that open a new database at the same time race to create Optuna's tables; the
    loser's `CREATE` fails on the winner's, and a second try finds them made.
    """
    if spec and spec.startswith(JOURNAL_PREFIX):
        backend = optuna.storages.journal.JournalFileBackend(spec[len(JOURNAL_PREFIX):])
        return optuna.storages.JournalStorage(backend)
    if not spec:
        return None
    from sqlalchemy.exc import DBAPIError

    url = storage_url(spec)
    for attempt in (1, 2):
        try:
            return optuna.storages.RDBStorage(url)
        except DBAPIError:
            time.sleep(0.5 * attempt)
    return optuna.storages.RDBStorage(url)  # a third failure is the database's answer


def sampler_and_pruner(seed: int) -> tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]:
    """The TPE sampler and the median pruner every process of a study uses."""
    return (optuna.samplers.TPESampler(seed=seed),
            optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0))


def _child_run(client: MlflowClient, experiment_id: str, parent_run_id: str, number: int) -> str:
    run = client.create_run(experiment_id, tags={MLFLOW_PARENT_RUN_ID: parent_run_id,
                                                 MLFLOW_RUN_NAME: f"trial-{number}"})
    return run.info.run_id


def _log_trial(client: MlflowClient, run_id: str, params: Any, metrics: dict[str, float],
               state: str) -> None:
    """Params, metrics (names made MLflow-safe) and the trial state of one child run."""
    now = int(time.time() * 1000)
    client.log_batch(
        run_id, params=[Param(name, str(value)) for name, value in asdict(params).items()],
        metrics=[Metric(metric_key(name), float(value), now, 0) for name, value in metrics.items()],
        tags=[RunTag("optuna_state", state)])
    client.set_terminated(run_id, "FINISHED" if state != "FAILED" else "FAILED")


def metric_key(name: str) -> str:
    """An MLflow metric name for a protocol metric: 'precision@10' -> 'precision_at_10'."""
    return name.replace("@", "_at_")


def tune(spec: ModelSpec, train: ShopData, settings: Settings, trials: int, parent_run_id: str,
         k: int = DEFAULT_K, jobs: int | None = None, seed: int = 7,
         reload: Reload | None = None) -> TuningResult:
    """Search `spec`'s parameters on an inner time split of `train`.

    Args:
        spec: the model.
        train: the data before the holdout cut.
        settings: business settings (applied to every trial) and Optuna storage.
        trials: number of trials (1 = the defaults only).
        parent_run_id: the MLflow run the trials nest under.
        k: list length of the ranking metrics.
        jobs: processes running trials (default: `parallel_jobs`).
        seed: sampler seed (worker processes use seed + their number).
        reload: how worker processes rebuild `train` from the warehouse; without it (data
            built in memory) the trials run in threads of this process instead.

    Returns:
        The best parameters (the defaults when no trial completed, with a note saying why).
    """
    defaults = spec.default_params(settings)
    jobs = jobs or parallel_jobs(settings, trials, len(train.events))
    workers = jobs - 1 if reload is not None and jobs > 1 else 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(spec, train, settings, k, parent_run_id)
    storage = storage_spec(settings, name, workers)
    seed = process_seed(seed, settings)
    sampler, pruner = sampler_and_pruner(seed)
    # load_if_exists: the first run to get there creates the study, later ones join it.
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner,
                                storage=open_storage(storage), study_name=name,
                                load_if_exists=True)
    # The defaults are trial 0 of the study, once however many runs join it.
    study.enqueue_trial({key: value for key, value in asdict(defaults).items()
                         if not isinstance(value, str)}, skip_if_exists=True)
    # Trials running side by side share the cores, so each one gets a single thread.
    threads = 1 if jobs > 1 else defaults.threads
    errors: list[str] = []
    objective = make_objective(spec, train, settings, threads, k, parent_run_id, errors)
    shares = np.array_split(np.arange(trials), jobs)
    processes = [_start_worker(spec, settings, name, storage, len(share), parent_run_id,
                               reload, k, seed + number + 1)
                 for number, share in enumerate(shares[1:workers + 1])]
    in_threads = 1 if workers else jobs
    own_trials = trials - sum(len(share) for share in shares[1:workers + 1])
    study.optimize(objective, n_trials=own_trials, n_jobs=in_threads, catch=(NotEnoughData,))
    _wait_for(processes)
    return _result(study, spec, defaults, settings, errors, parent_run_id)


def _start_worker(spec: ModelSpec, settings: Settings, study_name: str, storage: str | None,
                  trials: int, parent_run_id: str, reload: Reload | None, k: int,
                  seed: int) -> subprocess.Popen:
    """Start `python -m tailor.training.worker` on a share of the study's trials."""
    arguments = [sys.executable, "-m", "tailor.training.worker", "--model", spec.name,
                 "--study", study_name, "--storage", str(storage), "--trials", str(trials),
                 "--parent-run", parent_run_id, "--split", reload.split,
                 "--cutoff", reload.cutoff.isoformat(), "--k", str(k), "--seed", str(seed)]
    environment = {**os.environ, WORKER_SETTINGS: json.dumps(dict(settings.values)),
                   "MLFLOW_TRACKING_URI": settings.tracking_uri}
    environment.pop("MLFLOW_RUN_ID", None)
    return subprocess.Popen(arguments, env=environment)


def _wait_for(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.wait() != 0:
            log.warning("an Optuna worker process exited with %d; its trials are missing",
                        process.returncode)


def make_objective(spec: ModelSpec, train: ShopData, settings: Settings, threads: int, k: int,
                   parent_run_id: str, errors: list[str]) -> Callable[[optuna.Trial], float]:
    """The study's objective: backtest one suggestion on `train`'s inner split, log a child run.

    NotEnoughData messages are appended to `errors` (the trial fails, the study goes on).
    """
    defaults = spec.default_params(settings)
    client = MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id

    def objective(trial: optuna.Trial) -> float:
        params = replace(spec.with_settings(replace(defaults, **spec.suggest(trial)), settings),
                         threads=threads)
        run_id = _child_run(client, experiment_id, parent_run_id, trial.number)
        trial.set_user_attr(RUN_ATTR, parent_run_id)
        trial.set_user_attr(HOST_ATTR, socket.gethostname())

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"step {step}: {value:.4f} behind the median")

        try:
            result = backtest(spec.name, train, params, "time", None, k, report)
        except optuna.TrialPruned:
            _log_trial(client, run_id, params, {}, "PRUNED")
            raise
        except NotEnoughData as error:
            errors.append(str(error))
            client.set_tag(run_id, "error", str(error))
            _log_trial(client, run_id, params, {}, "FAILED")
            raise
        _log_trial(client, run_id, params, result.metrics, "COMPLETE")
        return result.primary

    return objective


def _result(study: optuna.Study, spec: ModelSpec, defaults: Any, settings: Settings,
            errors: list[str], parent_run_id: str) -> TuningResult:
    """The best of every trial the study holds (this run's and, on a shared study, the
    other runs' that have finished), counted by state."""
    trials = study.get_trials(deepcopy=False)
    states = [trial.state for trial in trials]
    completed = states.count(optuna.trial.TrialState.COMPLETE)
    pruned = states.count(optuna.trial.TrialState.PRUNED)
    failed = states.count(optuna.trial.TrialState.FAIL)
    own = sum(trial.user_attrs.get(RUN_ATTR) == parent_run_id for trial in trials)
    if completed == 0:
        note = ("no trial could be scored on the inner validation split, so the defaults are "
                "used" + (f": {errors[0]}" if errors else ""))
        log.warning("%s: %s", spec.name, note)
        return TuningResult(defaults, None, 0, pruned, failed, note, study.study_name, own)
    best_trial = study.best_trial
    best = spec.from_values({**asdict(defaults), **best_trial.params}, settings)
    return TuningResult(best, float(best_trial.value), completed, pruned, failed,
                        study=study.study_name, own_trials=own,
                        best_run=best_trial.user_attrs.get(RUN_ATTR))


def project_run_id() -> str | None:
    """The run `mlflow run` opened for this process (MLFLOW_RUN_ID), if it is in our store.

    Read it once, before any run ends: MLflow drops the variable when a run ends.
    """
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id and not _run_exists(run_id):
        log.warning("MLFLOW_RUN_ID %s is not in %s; training starts its own runs", run_id,
                    mlflow.get_tracking_uri())
        os.environ.pop("MLFLOW_RUN_ID", None)
        return None
    return run_id


def start_parent_run(experiment_id: str, run_name: str, project_run: str | None = None,
                     resume: bool = True) -> mlflow.ActiveRun:
    """Start the training run of one model.

    Under `mlflow run` (`project_run` from `project_run_id`) training logs into the run MLflow
    opened when `resume` is true (one model per project), or into a child of it otherwise
    (several models from one entry point, each needing its own parameters).
    """
    # Tagged with this process from the start: a run killed at any point can be told apart
    # from one still running (`tailor.training.leftovers`).
    tags = process_tags()
    if project_run and resume:
        return mlflow.start_run(run_id=project_run, tags=tags)
    if project_run:
        # Open the child beside its parent (the UI nests runs within one experiment).
        client = MlflowClient()
        parent_experiment = client.get_run(project_run).info.experiment_id
        child = client.create_run(parent_experiment, tags={MLFLOW_PARENT_RUN_ID: project_run,
                                                           MLFLOW_RUN_NAME: run_name, **tags})
        return mlflow.start_run(run_id=child.info.run_id)
    return mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)


def _run_exists(run_id: str) -> bool:
    try:
        MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True
