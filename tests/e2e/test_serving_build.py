"""`bentoml build` of bentofile.yaml: a Bento holding the service, the tailor source and the
pinned requirements, whose own copy of tailor is what its service imports. (Containerizing
it needs a Docker engine, which this machine lacks: README, "Serving".)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TAILOR_")}
    env.update(BENTOML_HOME=str(tmp_path / "bentoml"), TAILOR_HOME=str(tmp_path / "home"),
               BENTOML_DO_NOT_TRACK="true")
    return env


def test_bentoml_build_packs_the_service_and_the_tailor_source(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    built = subprocess.run([sys.executable, "-m", "bentoml", "build", "-o", "tag"], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    name, version = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:").split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["service"] == "bentos.service:Tailor" and info["entry_service"] == "Tailor"
    routes = {route["route"] for route in info["schema"]["routes"]}
    assert {"/homepage", "/also_bought", "/checkout_offer", "/batch/homepage"} <= routes
    source = bento / "src"
    for path in ("bentos/service.py", "tailor/serving/pipeline.py", "tailor/events/collector.py",
                 "tailor/events/static/tailor.js", "tailor/features/sql/customer_features.sql"):
        assert (source / path).is_file(), path
    assert not list(source.rglob("__pycache__")) and not (source / "tests").exists()
    runtime_env = {env["name"]: env["value"] for env in info["envs"]}
    assert runtime_env["OPENBLAS_NUM_THREADS"] == "1" and runtime_env["OMP_NUM_THREADS"] == "1"
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert {"bentoml==1.4.40", "mlflow==3.17.2", "feast==0.67.0"} <= set(requirements)
    assert not [line for line in requirements if line.startswith(("pytest", "schemathesis"))]

    # In the Bento's working folder its own copy of tailor wins over the installed one.
    imported = subprocess.run(
        [sys.executable, "-c", "import bentos.service, tailor; print(tailor.__file__)"],
        cwd=source, env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert Path(imported.stdout.strip()).is_relative_to(source)
