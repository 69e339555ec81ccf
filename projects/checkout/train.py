"""Entry point of `mlflow run projects/checkout`: the same as `tailor train checkout`.

Reads the Tailor home (TAILOR_HOME) and the run MLflow started (MLFLOW_RUN_ID); writes the
training run, its nested Optuna trials and the registered version `tailor-checkout`.
"""

import sys

from tailor.training.entry import train_main

if __name__ == "__main__":
    sys.exit(train_main("checkout", sys.argv[1:]))
