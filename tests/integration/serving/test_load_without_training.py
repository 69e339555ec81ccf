"""Loading a served model stays out of training: in a fresh interpreter, a slot loads each
served version (and one logged with the pyfunc entry file of before `tailor.registry`)
without importing Optuna or matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

import tailor.training.registration as registration
from tailor.config import load_settings
from tailor.registry.tracking import CHAMPION, use_tracking
from tailor.training.registration import experiment_id, load_champion, log_model

SERVED = ("homepage", "cross_sell", "checkout")
TRAINING_ONLY = ("optuna", "matplotlib")
# The entry file every version logged before the wrapper moved to tailor.registry carries.
OLD_ENTRY = ("from mlflow.models import set_model\n\n"
             "from tailor.training.pyfunc import TailorModel\n\n"
             "set_model(TailorModel())\n")
# Loads the given models through ModelSlot in a new interpreter; prints what it found.
LOAD = """
import json, sys
from tailor.config import load_settings
from tailor.serving.model_slots import ModelSlot

home, uri, models = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
settings = load_settings(home=home, env={}).replace(mlflow_tracking_uri=uri)
loaded = {}
for model in models:
    slot = ModelSlot(settings, model, "champion")
    slot.refresh()
    current = slot.current
    loaded[model] = [current.version, current.source, type(current.model).__name__] \\
        if current else slot.last_error
print(json.dumps({"loaded": loaded,
                  "imported": [name for name in ("optuna", "matplotlib") if name in sys.modules]}))
"""


def load_in_subprocess(home: Path, uri: str, models: tuple[str, ...]) -> dict:
    """What `LOAD` printed for `models` from the registry at `uri`, with a new store in `home`."""
    done = subprocess.run([sys.executable, "-c", LOAD, str(home), uri, ",".join(models)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_the_served_models_imports_no_training_library(served_home,
                                                                tmp_path: Path) -> None:
    found = load_in_subprocess(tmp_path / "home", served_home.settings.tracking_uri, SERVED)
    for model in SERVED:
        version, source, _ = found["loaded"][model]
        assert (version, source) == (served_home.versions[model], "registry"), found
    assert found["imported"] == []


def test_a_version_logged_with_the_old_entry_file_still_loads(served_home, tmp_path: Path,
                                                              monkeypatch) -> None:
    fitted, _ = load_champion(served_home.settings, "tailor-checkout")
    old_entry = tmp_path / "old" / "pyfunc_entry.py"
    old_entry.parent.mkdir()
    old_entry.write_text(OLD_ENTRY)
    monkeypatch.setattr(registration, "PYFUNC_CODE", old_entry)
    registry = tmp_path / "registry"
    settings = load_settings(home=registry, env={}).replace(
        mlflow_tracking_uri=f"sqlite:///{registry.resolve() / 'mlflow.db'}")
    use_tracking(settings)
    with mlflow.start_run(experiment_id=experiment_id(settings, "old-layout")):
        version = log_model(fitted, "tailor-checkout")
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.set_registered_model_alias("tailor-checkout", CHAMPION, version)
    logged = Path(download_artifacts(f"models:/tailor-checkout/{version}",
                                     dst_path=str(tmp_path / "logged")))
    assert "from tailor.training.pyfunc import" in (logged / "pyfunc_entry.py").read_text()

    found = load_in_subprocess(tmp_path / "home", settings.tracking_uri, ("checkout",))
    assert found == {"loaded": {"checkout": [version, "registry", type(fitted).__name__]},
                     "imported": []}
