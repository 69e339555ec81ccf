"""requirements/runtime.txt (what the Bento installs) is the run-time part of
constraints.txt, regenerated whenever the dependency set changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_runtime_requirements_are_current_and_hold_no_dev_tools() -> None:
    checked = subprocess.run([sys.executable, str(REPO / "requirements" / "runtime.py"),
                              "--check"], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    pins = [line for line in (REPO / "requirements" / "runtime.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    names = {line.split("==")[0].lower() for line in pins}
    assert {"bentoml", "mlflow", "feast", "implicit", "xgboost", "redis", "numpy"} <= names
    assert not names & {"pytest", "schemathesis", "hypothesis", "selenium"}
    constraints = set((REPO / "requirements" / "constraints.txt").read_text().splitlines())
    assert set(pins) <= constraints
