"""What a killed `tailor train` leaves behind, marked by the next run.

A real `tailor train homepage` process is SIGKILLed once its MLflow run exists; its run (and
its trials) stay RUNNING. A version left without a decision, as a kill right after "Created
version" leaves it, is registered from that run. The next `train` marks the run KILLED and
tags the version orphaned (not promoted), and leaves alone a RUNNING run whose process still
lives and a version registered by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from shop_homes import build_shop_home
from tailor.config import Settings, load_settings
from tailor.training import train_models
from tailor.training.leftovers import (
    CLEANUP_TAG, ORPHANED, PID_TAG, STATUS_TAG, process_tags,
)
from tailor.training.registration import CHAMPION, alias_version, use_tracking

pytestmark = pytest.mark.slow

TAILOR = str(Path(sys.executable).with_name("tailor"))
NAME = "tailor-homepage"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("leftovers")
    settings = load_settings(home=root / "home", env={})
    build_shop_home(settings, root / "shop", customers=400, products=80, days=60, seed=3,
                    ends_days_ago=1)
    return settings


def wait_for_run_of(client: MlflowClient, pid: int, process: subprocess.Popen) -> str:
    """The id of the run process `pid` opened, once it exists (it tags it at creation)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the training process ended before it was killed"
        experiment = client.get_experiment_by_name(NAME)
        if experiment is not None:
            runs = client.search_runs([experiment.experiment_id],
                                      f"tags.`{PID_TAG}` = '{pid}'")
            if runs:
                return runs[0].info.run_id
        time.sleep(0.2)
    raise AssertionError("the training run did not appear within 300 s")


def test_the_next_train_marks_a_killed_run_and_its_orphan_version(home: Settings,
                                                                  tmp_path: Path) -> None:
    settings = home
    use_tracking(settings)
    client = MlflowClient(settings.tracking_uri)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TAILOR_")}
    env.update(TAILOR_HOME=str(settings.home_path))
    env.pop("MLFLOW_TRACKING_URI", None)
    training = subprocess.Popen([TAILOR, "train", "homepage", "--trials", "50", "--force"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        killed_run = wait_for_run_of(client, training.pid, training)
    finally:
        training.send_signal(signal.SIGKILL)
        training.wait()
    assert client.get_run(killed_run).info.status == "RUNNING"  # the leftover
    experiment = client.get_run(killed_run).info.experiment_id
    # A trial run of the killed training, still RUNNING.
    trial = client.create_run(experiment, tags={MLFLOW_PARENT_RUN_ID: killed_run}).info.run_id
    # A kill right after "Created version": a READY version from the killed run, no decision.
    source = tmp_path / "model"
    source.mkdir()
    (source / "MLmodel").write_text("flavors: {}\n")
    if not client.search_registered_models(f"name = '{NAME}'"):
        client.create_registered_model(NAME)  # the killed run got no further than this
    orphan = str(client.create_model_version(NAME, str(source), run_id=killed_run).version)
    by_hand = str(client.create_model_version(NAME, str(source)).version)  # no run: not ours
    # A training of this model still running in a live process (this test's own), with a
    # trial; and a trial left RUNNING under a training run that ended (a killed worker's).
    alive = client.create_run(experiment, tags=process_tags()).info.run_id
    alive_trial = client.create_run(experiment, tags={MLFLOW_PARENT_RUN_ID: alive}).info.run_id
    ended = client.create_run(experiment, tags=process_tags()).info.run_id
    client.set_terminated(ended, "FINISHED")
    stray_trial = client.create_run(experiment, tags={MLFLOW_PARENT_RUN_ID: ended}).info.run_id

    result = train_models(settings, "homepage", trials=1, force=True)[0]

    killed = client.get_run(killed_run)
    assert killed.info.status == "KILLED"
    assert f"process {training.pid}" in killed.data.tags[CLEANUP_TAG]
    assert client.get_run(trial).info.status == "KILLED"
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.get_run(alive_trial).info.status == "RUNNING"
    assert client.get_run(stray_trial).info.status == "KILLED"
    assert "FINISHED" in client.get_run(stray_trial).data.tags[CLEANUP_TAG]
    orphan_tags = client.get_model_version(NAME, orphan).tags
    assert orphan_tags[STATUS_TAG] == ORPHANED
    assert orphan_tags["promotion"].startswith("not promoted: orphaned")
    assert not client.get_model_version(NAME, orphan).aliases
    assert STATUS_TAG not in client.get_model_version(NAME, by_hand).tags
    # The new run decided normally, against no orphan.
    assert result.status == "trained" and result.version not in {orphan, by_hand}
    new_tags = client.get_model_version(NAME, result.version).tags
    assert new_tags["promotion"] == result.reason and STATUS_TAG not in new_tags
    champion = alias_version(client, NAME, CHAMPION)
    assert champion is None or str(champion.version) == result.version
    assert client.get_run(result.run_id).data.tags[PID_TAG] == str(os.getpid())
    client.set_terminated(alive_trial, "FINISHED")
    client.set_terminated(alive, "FINISHED")
