"""Training throughput: `tailor train all --trials 1` on N events (target: 10M in <= 15 min).

Prepares a simulated shop of about N events (simulate -> ingest -> lake -> warehouse; the
preparation is timed but not part of the target), then measures:
  * baseline: reading the history out of the warehouse once (`load_shop_data`), the floor
    any training run pays;
  * the figure: `train_models(settings, "all", trials=1)`, per model and in total, with the
    MLflow logging, registration and plots it does in production;
  * unit costs for docs/scaling.md: ALS seconds per million interactions and iteration, and
    XGBoost seconds per million rows and boosting round, on synthetic data of known size;
  * Optuna: the same study with 1 and 2 worker processes (wall time, pruned trials).

Run: .venv/bin/python bench/bench_train.py [--events 10000000] [--skip-optuna]
     [--keep DIR (reuse a prepared shop)]
The feature store is not built here (churn reads locally computed features); see
docs/scaling.md for why and what the Feast path costs.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tailor.config import Settings, load_settings
from tailor.events.ingest.job import ingest_files
from tailor.events.lake import export_lake
from tailor.models.data import load_shop_data
from tailor.simulate import ShopConfig, simulate_shop
from tailor.warehouse import refresh_warehouse

TARGET_SECONDS = 15 * 60
TARGET_EVENTS = 10_000_000
EVENTS_PER_CUSTOMER_DAY = 2.3  # what the simulator's default shop produces
DAYS = 90


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def prepare_shop(events: int, folder: Path) -> Settings:
    """Simulate about `events` events and load them into a fresh home (skipped if done)."""
    settings = load_settings(home=folder / "home", env={})
    if settings.warehouse_file.is_file():
        print(f"reusing the prepared shop in {folder}")
        return settings
    customers = int(events / (EVENTS_PER_CUSTOMER_DAY * DAYS))
    products = max(300, customers // 20)
    started = time.perf_counter()
    summary = simulate_shop(ShopConfig(n_customers=customers, n_products=products, n_days=DAYS,
                                       seed=7), folder / "shop")
    print(f"simulated {summary.n_events:,} events ({customers:,} customers, {products:,} "
          f"products, {DAYS} days) in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    shop = folder / "shop"
    ingest_files(settings, shop / "events.parquet", products_path=shop / "products.csv",
                 customers_path=shop / "customers.csv")
    export_lake(settings)
    refresh_warehouse(settings)
    print(f"ingest + lake + warehouse: {time.perf_counter() - started:.0f} s")
    return settings


def measure_training(settings: Settings) -> tuple[float, int]:
    """Print the baseline (one read) and the per-model training times.

    Returns:
        (total training seconds, events in the history).
    """
    from tailor.training import train_models

    started = time.perf_counter()
    data = load_shop_data(settings)
    read_seconds = time.perf_counter() - started
    events = len(data.events)
    print(f"baseline: reading {events:,} events from the warehouse: {read_seconds:.1f} s"
          f" (peak memory {peak_memory_gb():.1f} GB)")
    del data
    started = time.perf_counter()
    results = train_models(settings, "all", trials=1, force=True)
    total = time.perf_counter() - started
    for result in results:
        print(f"  {result.model:<10} {result.status:<8} {result.seconds:7.1f} s  {result.reason}")
    print(f"train all --trials 1: {total:.1f} s (peak memory {peak_memory_gb():.1f} GB)")
    return total, events


def als_unit_cost(users: int = 200_000, items: int = 5_000, per_user: int = 25,
                  factors: int = 64, iterations: int = 10) -> float:
    """Seconds of ALS per million interactions and per iteration (all cores)."""
    from tailor.models.interactions import AlsParams, fit_als

    rng = np.random.default_rng(1)
    rows = np.repeat(np.arange(users), per_user)
    cols = (rng.zipf(1.3, users * per_user) - 1) % items
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, items))
    matrix.sum_duplicates()
    started = time.perf_counter()
    fit_als(matrix, AlsParams(factors=factors, iterations=iterations, threads=os.cpu_count() or 1))
    seconds = time.perf_counter() - started
    per_unit = seconds / (matrix.nnz / 1e6) / iterations
    print(f"ALS: {matrix.nnz:,} interactions, {factors} factors, {iterations} iterations: "
          f"{seconds:.1f} s = {per_unit:.3f} s per million interactions per iteration")
    return per_unit


def xgboost_unit_cost(rows: int = 1_000_000, features: int = 30, rounds: int = 50) -> float:
    """Seconds of XGBoost (hist, depth 4) per million rows and per boosting round."""
    import xgboost as xgb

    rng = np.random.default_rng(2)
    values = rng.normal(size=(rows, features)).astype(np.float32)
    labels = (values[:, 0] + rng.normal(size=rows) > 0).astype(int)
    matrix = xgb.DMatrix(values, label=labels)
    started = time.perf_counter()
    xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 4,
               "nthread": os.cpu_count() or 1}, matrix, num_boost_round=rounds)
    seconds = time.perf_counter() - started
    per_unit = seconds / (rows / 1e6) / rounds
    print(f"XGBoost: {rows:,} rows x {features} features, {rounds} rounds: {seconds:.1f} s = "
          f"{per_unit:.3f} s per million rows per round")
    return per_unit


OPTUNA_MODEL = "churn"  # the study timed with one and two worker processes


def optuna_parallel(settings: Settings, trials: int = 6) -> None:
    """The churn study with 1 and 2 worker processes: wall time and pruned trials."""
    import mlflow

    from tailor.models.data import make_split
    from tailor.training.registration import experiment_id, use_tracking
    from tailor.training.specs import get_spec
    from tailor.training.tuning import Reload, tune

    history = load_shop_data(settings)
    use_tracking(settings)
    for jobs in (1, 2):
        split = make_split(history, "time")        # a fresh copy: no feature frames cached
        with mlflow.start_run(experiment_id=experiment_id(settings, "bench-optuna")) as run:
            started = time.perf_counter()
            result = tune(get_spec(OPTUNA_MODEL), split.train, settings, trials, run.info.run_id,
                          jobs=jobs, reload=Reload("time", split.cutoff))
            print(f"optuna {OPTUNA_MODEL}, {trials} trials, {jobs} process(es): "
                  f"{time.perf_counter() - started:.1f} s; completed {result.completed}, "
                  f"pruned {result.pruned}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=TARGET_EVENTS)
    parser.add_argument("--keep", type=Path, default=None, help="folder to prepare/reuse")
    parser.add_argument("--skip-optuna", action="store_true")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-train-"))
    settings = prepare_shop(args.events, folder)
    total, events = measure_training(settings)
    scaled = total * TARGET_EVENTS / events
    verdict = "meets" if scaled <= TARGET_SECONDS else "misses"
    print(f"RESULT: {total:.0f} s for {events:,} events; linear at {TARGET_EVENTS:,}: "
          f"{scaled:.0f} s; target {TARGET_SECONDS} s -> {verdict} the target")
    als_unit_cost()
    xgboost_unit_cost()
    if not args.skip_optuna:
        optuna_parallel(settings)
    print(f"shop and MLflow store kept in {folder}")


if __name__ == "__main__":
    main()
