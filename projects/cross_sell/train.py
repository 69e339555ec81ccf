"""Entry point of `mlflow run projects/cross_sell`: the same as `tailor train cross_sell`.

Reads the Tailor home (TAILOR_HOME) and the run MLflow started (MLFLOW_RUN_ID); writes the
training run, its nested Optuna trials and the registered version `tailor-cross_sell`.
"""

import sys

from tailor.training.entry import train_main

if __name__ == "__main__":
    sys.exit(train_main("cross_sell", sys.argv[1:]))
