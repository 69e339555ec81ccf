"""Training at scale: `tailor train MODEL --trials N` run by two processes at once (as on two
machines) shares one Optuna study in PostgreSQL.

A tiny simulated shop is loaded into one home (the two processes share its warehouse and its
MLflow store, as machines would share the lake and the tracking server); the study lives in
a fresh schema of the test database. Both processes find the same study by name (model and
data snapshot), each adds its own trials, and the one finishing last picks the best of all
of them, whichever process ran it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from shop_homes import load_events
from tailor.config import load_settings
from tailor.models.data import load_shop_data, make_split
from tailor.simulate import ShopConfig, simulate_shop
from tailor.training.registration import use_tracking
from tailor.training.specs import get_spec
from tailor.training.tuning import (
    RUN_ATTR, open_storage, storage_spec, storage_url, study_name,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
TRIALS = 3  # per process
MODEL = "checkout"  # the quickest model to tune on a tiny shop


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-day shop of 150 customers, ingested, exported and in the warehouse, with its
    MLflow store created (machines share a tracking server that is already up; two processes
    creating one SQLite store at once race on its migrations)."""
    root = tmp_path_factory.mktemp("shared-study")
    simulate_shop(ShopConfig(n_customers=150, n_products=30, n_days=40, seed=5,
                             show_progress=False), root / "shop")
    settings = load_settings(home=root / "home", env={})
    load_events(settings, root / "shop" / "events.parquet",
                products=root / "shop" / "products.csv",
                customers=root / "shop" / "customers.csv")
    use_tracking(settings)
    MlflowClient().search_experiments()
    return root / "home"


def _train(home: Path, storage: str) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("TAILOR_", "MLFLOW_"))}
    environment.update(TAILOR_HOME=str(home), TAILOR_MODELS_OPTUNA_STORAGE=storage,
                       PYTHONPATH=os.pathsep.join([str(REPO / "src"),
                                                   environment.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-m", "tailor.cli", "train", MODEL, "--trials", str(TRIALS),
         "--jobs", "1", "--force", "--json"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_share_one_study_and_pick_the_best_of_all(tiny_home: Path,
                                                                 postgres_url: str) -> None:
    processes = [_train(tiny_home, postgres_url) for _ in range(2)]
    outputs = [process.communicate(timeout=180) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    results = [json.loads(stdout)["models"][0] for stdout, _ in outputs]
    runs = {result["run_id"] for result in results}
    assert len(runs) == 2
    names = {result["tuning"]["study"] for result in results}
    assert len(names) == 1, names  # the same name from the same data: one study

    study = optuna.load_study(study_name=names.pop(), storage=open_storage(postgres_url))
    trials = study.get_trials(deepcopy=False)
    by_run = {run: [trial for trial in trials if trial.user_attrs.get(RUN_ATTR) == run]
              for run in runs}
    # Both processes contributed their N trials, and the study holds exactly their sum.
    assert {run: len(own) for run, own in by_run.items()} == dict.fromkeys(runs, TRIALS)
    assert len(trials) == 2 * TRIALS
    assert all(result["tuning"]["own_trials"] == TRIALS for result in results)
    # Each process drew its own suggestions (a seed per process), not the same ones twice.
    suggested = [tuple(sorted(trial.params.items())) for trial in trials
                 if "fixed_params" not in trial.system_attrs]
    assert len(suggested) == len(set(suggested))

    finished = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    best = max(finished, key=lambda trial: trial.value)
    # The process whose trials ended last saw every trial finished: its choice is the best of
    # both processes' trials, and the model it trained uses that trial's parameters.
    last = [result for result in results
            if result["tuning"]["completed"] + result["tuning"]["pruned"]
            + result["tuning"]["failed"] == 2 * TRIALS]
    assert last, [result["tuning"] for result in results]
    for result in last:
        assert result["tuning"]["best_validation"] == pytest.approx(best.value)
        assert result["tuning"]["best_run"] == best.user_attrs[RUN_ATTR]
        assert {key: result["params"][key] for key in best.params} == best.params
    for result in results:  # and neither picked worse than its own best
        own_best = max((trial.value for trial in by_run[result["run_id"]]
                        if trial.state == optuna.trial.TrialState.COMPLETE), default=None)
        assert own_best is None or result["tuning"]["best_validation"] >= own_best


def test_study_names_follow_the_data_and_the_storage(tiny_home: Path) -> None:
    local = load_settings(home=tiny_home, env={})
    shared = local.replace(models_optuna_storage="postgresql://db.example/optuna")
    spec = get_spec(MODEL)
    data = load_shop_data(local)
    train = make_split(data, "time", None).train
    earlier = make_split(data, "time", data.end - (data.end - data.start) / 2).train
    # Without a database each run keeps a study of its own.
    assert study_name(spec, train, local, 10, "run-a") != study_name(spec, train, local, 10,
                                                                    "run-b")
    # With one, runs on the same data and search meet in one study; other data or another k
    # start another.
    assert study_name(spec, train, shared, 10, "run-a") == study_name(spec, train, shared, 10,
                                                                     "run-b")
    assert study_name(spec, earlier, shared, 10, "run-a") != study_name(spec, train, shared,
                                                                       10, "run-a")
    assert study_name(spec, train, shared, 5, "run-a") != study_name(spec, train, shared, 10,
                                                                    "run-a")
    cheaper = shared.replace(models_checkout_shipping_cost=1.0)  # another objective
    assert study_name(spec, train, cheaper, 10, "a") != study_name(spec, train, shared, 10, "a")
    assert storage_spec(shared, "any", 0) == "postgresql://db.example/optuna"
    assert storage_spec(local, "any", 0) is None


def test_a_plain_postgresql_url_opens_with_the_installed_driver() -> None:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        assert storage_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    else:
        assert storage_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert storage_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url("sqlite:///optuna.db") == "sqlite:///optuna.db"
