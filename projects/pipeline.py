"""Entry point of `mlflow run . -e pipeline`: validate -> export -> warehouse -> features -> models.

Reads and writes what each step does (see the root MLproject); every step is its own
MLflow run, and the first failing step stops the chain.
"""

import sys

from tailor.training.entry import pipeline_main

if __name__ == "__main__":
    sys.exit(pipeline_main(sys.argv[1:]))
