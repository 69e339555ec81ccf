"""Two training runs of one model deciding their promotion at the same time.

On a real MLflow SQLite registry, two threads (and then two processes) with their own
clients each read "no champion yet" (a barrier makes sure both have read it before either
decides), then decide through `promote`, as `tailor train` does. Exactly one version ends champion, the other run's
decision is made against it, and every version's `promotion` tag agrees with the aliases.
Without the promotion lock and the second look at the champion, both promoted.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tailor.config import Settings, load_settings
from tailor.models.evaluate import BacktestResult
from tailor.training.locks import PromotionLockTimeout, lock_file, promotion_lock
from tailor.training.registration import (
    CHAMPION, CHALLENGER, ChampionOnHoldout, alias_version, promote, use_tracking,
)

NAME = "tailor-homepage"


def holdout(precision: float) -> BacktestResult:
    """A homepage holdout result whose primary metric is `precision` (baselines far below)."""
    return BacktestResult(model="homepage", split="time", cutoff=pd.Timestamp("2026-03-01",
                                                                              tz="UTC"),
                          k=10, metrics={"precision@10": precision},
                          baselines={"popularity": {"precision@10": 0.01},
                                     "random": {"precision@10": 0.001}}, n_evaluated=100)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(home=tmp_path / "home", env={})
    settings.home_path.mkdir(parents=True)
    use_tracking(settings)
    return settings


def register_versions(settings: Settings, count: int) -> list[str]:
    """`count` versions of NAME (each from a run with a tiny artifact folder)."""
    client = MlflowClient(settings.tracking_uri)
    client.create_registered_model(NAME)
    experiment = client.create_experiment(
        "tailor-homepage", artifact_location=(settings.home_path / "artifacts").as_uri())
    versions = []
    for _ in range(count):
        run = client.create_run(experiment)
        model_dir = settings.home_path / "models" / run.info.run_id
        model_dir.mkdir(parents=True)
        (model_dir / "MLmodel").write_text("flavors: {}\n")
        created = client.create_model_version(NAME, str(model_dir), run_id=run.info.run_id)
        versions.append(str(created.version))
    return versions


def measure(client: MlflowClient, scores: dict[str, float]) -> ChampionOnHoldout:
    """The current champion "backtested": its score from `scores`, as a holdout result."""
    current = alias_version(client, NAME, CHAMPION)
    if current is None:
        return None, None
    return holdout(scores[str(current.version)]), str(current.version)


def race(settings: Settings, scores: dict[str, float]) -> dict[str, str]:
    """Both versions decide at once (threads, one client each); returns version -> reason."""
    barrier = threading.Barrier(len(scores))
    reasons: dict[str, str] = {}
    errors: list[BaseException] = []

    def train(version: str) -> None:
        try:
            client = MlflowClient(settings.tracking_uri)
            measured = measure(client, scores)  # what the run saw while it trained
            barrier.wait(timeout=60)  # both saw it before either decides
            promotion = promote(settings, client, NAME, version, holdout(scores[version]),
                                measured, lambda: measure(client, scores))
            reasons[version] = promotion.reason
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=train, args=(version,)) for version in scores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return reasons


def test_two_runs_started_together_promote_one_and_compare_the_other_with_it(
        settings: Settings) -> None:
    first, second = register_versions(settings, 2)
    reasons = race(settings, {first: 0.20, second: 0.20})  # equal: the later one must not win
    client = MlflowClient(settings.tracking_uri)
    champion = str(client.get_model_version_by_alias(NAME, CHAMPION).version)
    other = second if champion == first else first
    assert reasons[champion].startswith("promoted: no champion yet")
    assert reasons[other].startswith(
        f"not promoted: precision@10 0.2000 does not beat champion v{champion}")
    for version in (first, second):  # tags agree with the aliases
        tags = client.get_model_version(NAME, version).tags
        assert tags["promotion"] == reasons[version]
        aliases = client.get_model_version(NAME, version).aliases
        assert (CHAMPION in aliases) == tags["promotion"].startswith("promoted")
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) in {first, second}


def test_a_better_second_run_is_compared_with_the_first_and_replaces_it(
        settings: Settings) -> None:
    first, second = register_versions(settings, 2)
    reasons = race(settings, {first: 0.20, second: 0.30})
    client = MlflowClient(settings.tracking_uri)
    champion = str(client.get_model_version_by_alias(NAME, CHAMPION).version)
    assert champion == second
    # Whichever decided first saw no champion; the other was compared with it.
    promoted_first = [version for version, reason in reasons.items()
                      if reason.startswith("promoted: no champion yet")]
    assert len(promoted_first) == 1
    if promoted_first == [first]:
        assert reasons[second].startswith(
            f"promoted: precision@10 0.3000 beats champion v{first}")
    else:
        assert reasons[first].startswith(
            f"not promoted: precision@10 0.2000 does not beat champion v{second}")


def test_the_lock_is_exclusive_and_gives_up_after_the_setting(settings: Settings) -> None:
    short = settings.replace(models_promotion_lock_seconds=0.2)
    assert lock_file(settings, NAME) == Path(
        settings.tracking_uri[len("sqlite:///"):] + ".locks") / f"{NAME}.lock"
    with promotion_lock(short, NAME):
        with pytest.raises(PromotionLockTimeout, match="promotion_lock_seconds"):
            with promotion_lock(short, NAME):
                pass
    with promotion_lock(short, NAME):  # released on exit
        pass


RACER = """
import sys, time
from pathlib import Path
from mlflow.tracking import MlflowClient
from tailor.config import load_settings
from test_promotion_concurrency import NAME, measure, holdout
from tailor.training.registration import promote, use_tracking

home, version, score, other, folder = sys.argv[1:6]
scores = {version: float(score), other: float(score)}
settings = load_settings(home=home, env={})
use_tracking(settings)
client = MlflowClient(settings.tracking_uri)
measured = measure(client, scores)
Path(folder, version).touch()  # this process has read the champion
while not Path(folder, other).exists():  # wait until the other one has too
    time.sleep(0.01)
promotion = promote(settings, client, NAME, version, holdout(scores[version]), measured,
                    lambda: measure(client, scores))
print(promotion.reason)
"""


def test_two_processes_promote_one_and_compare_the_other_with_it(settings: Settings,
                                                                 tmp_path: Path) -> None:
    """The same race between two processes, each with its own registry client."""
    import os
    import subprocess
    import sys

    first, second = register_versions(settings, 2)
    folder = tmp_path / "barrier"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(settings.home_path), version,
                                "0.2", other, str(folder)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
              for version, other in ((first, second), (second, first))]
    reasons = {}
    for version, racer in zip((first, second), racers):
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-2000:]
        reasons[version] = out.strip().splitlines()[-1]
    client = MlflowClient(settings.tracking_uri)
    champion = str(client.get_model_version_by_alias(NAME, CHAMPION).version)
    other = second if champion == first else first
    assert reasons[champion].startswith("promoted: no champion yet")
    assert reasons[other].startswith(f"not promoted: precision@10 0.2000 does not beat "
                                     f"champion v{champion}")
    for version in (first, second):
        assert client.get_model_version(NAME, version).tags["promotion"] == reasons[version]


@pytest.mark.postgres
def test_a_postgresql_registry_is_locked_in_its_own_database(settings: Settings,
                                                             postgres_server_url: str) -> None:
    registry = settings.replace(models_promotion_lock_seconds=0.2,
                                mlflow_tracking_uri=postgres_server_url.replace(
                                    "postgresql://", "postgresql+psycopg://", 1))
    assert lock_file(registry, NAME) is None  # an advisory lock, no file
    with promotion_lock(registry, NAME):
        with pytest.raises(PromotionLockTimeout):
            with promotion_lock(registry, NAME):
                pass
        with promotion_lock(registry, "tailor-churn"):  # another model is not held up
            pass
    with promotion_lock(registry, NAME):
        pass
