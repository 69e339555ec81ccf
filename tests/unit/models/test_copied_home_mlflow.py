"""A home copied with `cp -a`: MLflow in the copy writes its artifacts into the
copy, never into the home it was copied from, and reads its old models from its own copy."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from tailor.config import load_settings
from tailor.training.registration import experiment_id, use_tracking


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def log_one_run(settings, text: str) -> str:
    """A run with one artifact in experiment tailor-copy-test; returns its artifact URI."""
    use_tracking(settings)
    with mlflow.start_run(experiment_id=experiment_id(settings, "tailor-copy-test")) as run:
        mlflow.log_text(text, "note.txt")
        return run.info.artifact_uri


def test_training_in_a_copy_leaves_the_original_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    original = load_settings(home=tmp_path / "V", env={})
    first_uri = log_one_run(original, "from V")
    assert first_uri.startswith((tmp_path / "V").resolve().as_uri())
    copy_home = tmp_path / "W"
    shutil.copytree(original.home_path, copy_home, symlinks=True)
    before = tree_hashes(original.home_path)
    copied = load_settings(home=copy_home, env={})
    second_uri = log_one_run(copied, "from W")
    mlflow.end_run()
    assert tree_hashes(original.home_path) == before  # byte for byte
    own = copy_home.resolve().as_uri()
    assert second_uri.startswith(own)
    client = MlflowClient(copied.tracking_uri)
    experiment = client.get_experiment_by_name("tailor-copy-test")
    assert experiment.artifact_location.startswith(own)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and all(run.info.artifact_uri.startswith(own) for run in runs)
    origin = MlflowClient(original.tracking_uri).get_experiment_by_name("tailor-copy-test")
    assert origin.artifact_location.startswith((tmp_path / "V").resolve().as_uri())
