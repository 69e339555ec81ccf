"""Command lines of the MLflow projects: `mlflow run projects/<model>` and the root pipeline.

Reads the Tailor settings (TAILOR_HOME, tailor.toml) and the MLflow environment that
`mlflow run` sets (MLFLOW_RUN_ID, MLFLOW_TRACKING_URI). Writes what `tailor train` writes
(MLflow runs and registered versions) and, for the retention job, the retention list.
The scripts under projects/ are one-line calls into here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from tailor.config import load_settings

log = logging.getLogger(__name__)

PIPELINE_STEPS: tuple[str, ...] = ("validate", "export", "warehouse", "features")


def _truthy(text: str) -> bool:
    return str(text).strip().lower() in {"1", "true", "yes", "on"}


def train_main(model: str, argv: Sequence[str] | None = None) -> int:
    """`mlflow run projects/<model>`: the same as `tailor train <model>`; returns the exit code."""
    from tailor.models.data import NotEnoughData
    from tailor.quality import QualityGateFailed
    from tailor.training.run import train_models

    parser = argparse.ArgumentParser(description=f"Train the {model} model (tailor train).")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--force", default="false", help="true: train past a failed quality gate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = load_settings()
    try:
        results = train_models(settings, model, trials=args.trials, force=_truthy(args.force))
    except QualityGateFailed as error:
        log.error("%s", error)
        return 1
    except NotEnoughData as error:
        log.error("%s", error)
        return 2
    sys.stdout.write(json.dumps([result.to_dict() for result in results], default=str) + "\n")
    return 0


def retention_main(argv: Sequence[str] | None = None) -> int:
    """`mlflow run projects/churn -e retention`: write this week's retention list."""
    from tailor.training.jobs import write_retention_list

    parser = argparse.ArgumentParser(description="Write the churn retention list.")
    parser.add_argument("--as-of", default="", help="ISO time to score at (default: latest data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        summary = write_retention_list(load_settings(), as_of=args.as_of or None)
    except (LookupError, ValueError) as error:
        log.error("%s", error)
        return 2
    sys.stdout.write(json.dumps(summary.to_dict()) + "\n")
    return 0


def pipeline_main(argv: Sequence[str] | None = None) -> int:
    """The root project's `pipeline`: validate, export, warehouse, features, then each model.

    Every step is its own `mlflow run` (root entry points, then projects/<model>), so the
    tracking UI shows the chain; the first failing step stops it.
    """
    import mlflow
    import mlflow.projects

    from tailor.models.constants import MODEL_NAMES
    from tailor.training.registration import experiment_id, use_tracking

    parser = argparse.ArgumentParser(description="Run the whole training pipeline.")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--root", default=".", help="the folder holding the root MLproject")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = load_settings()
    # Sub-runs must land in the store the training code reads.
    os.environ["MLFLOW_TRACKING_URI"] = use_tracking(settings)
    root = Path(args.root).resolve()
    for step in PIPELINE_STEPS:
        _run_step(mlflow.projects.run, str(root), step, {}, experiment_id(settings,
                                                                          "tailor-pipeline"))
    for model in MODEL_NAMES:
        _run_step(mlflow.projects.run, str(root / "projects" / model), "main",
                  {"trials": args.trials}, experiment_id(settings, f"tailor-{model}"))
    return 0


def _run_step(run, uri: str, entry_point: str, parameters: dict, experiment: str) -> None:
    log.info("pipeline: %s %s", uri, entry_point)
    submitted = run(uri, entry_point=entry_point, parameters=parameters, env_manager="local",
                    experiment_id=experiment, synchronous=True)
    log.info("pipeline: %s finished (run %s)", entry_point, submitted.run_id)
