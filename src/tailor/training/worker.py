"""One extra Optuna worker process of a training run (started by `tuning.tune`, not by hand).

Reads: the parent's resolved settings (JSON in TAILOR_WORKER_SETTINGS), the warehouse (the
same holdout split the parent tunes on), the shared study (journal file or database).
Writes: its trials into the study and one nested MLflow run per trial under the parent's
training run. Separate processes, because trials spend most of their time in pandas,
which holds the GIL: threads would take turns rather than run side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Sequence

import optuna
import pandas as pd

from tailor.config import Settings
from tailor.models.data import NotEnoughData, load_shop_data, make_split
from tailor.privacy.excluded_customers import excluded_customer_ids
from tailor.training.registration import use_tracking
from tailor.training.specs import get_spec
from tailor.training.tuning import (
    WORKER_SETTINGS, make_objective, open_storage, sampler_and_pruner,
)

log = logging.getLogger(__name__)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a share of an Optuna study's trials.")
    for name in ("--model", "--study", "--storage", "--parent-run", "--split", "--cutoff"):
        parser.add_argument(name, required=True)
    for name in ("--trials", "--k", "--seed"):
        parser.add_argument(name, type=int, required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Load the data as the parent did, then optimise the shared study; returns an exit code."""
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = Settings.from_values(json.loads(os.environ[WORKER_SETTINGS]))
    spec = get_spec(args.model)
    data = load_shop_data(settings, excluded_customer_ids(settings))
    cutoff = pd.Timestamp(args.cutoff) if args.split == "time" else None
    train = make_split(data, args.split, cutoff).train
    use_tracking(settings)
    sampler, pruner = sampler_and_pruner(args.seed)
    study = optuna.load_study(study_name=args.study, storage=open_storage(args.storage),
                              sampler=sampler, pruner=pruner)
    errors: list[str] = []
    objective = make_objective(spec, train, settings, 1, args.k, args.parent_run, errors)
    study.optimize(objective, n_trials=args.trials, catch=(NotEnoughData,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
