"""Entry point of `mlflow run projects/homepage`: the same as `tailor train homepage`.

Reads the Tailor home (TAILOR_HOME) and the run MLflow started (MLFLOW_RUN_ID); writes the
training run, its nested Optuna trials and the registered version `tailor-homepage`.
"""

import sys

from tailor.training.entry import train_main

if __name__ == "__main__":
    sys.exit(train_main("homepage", sys.argv[1:]))
