"""Promotion through an experiment (`monitoring.promote_through = "experiment"`) on a real
MLflow registry and the home's experiment tables, with tiny registered versions and given
analyses (the round that starts one on a trained shop is in test_monitoring.py): the
experiment pins the challenger's version, a running one waits, a winner becomes champion
through the experiment's promotion, a loser or a draw closes it with the champion kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from registry_homes import analysis_with, champion, register, registry_settings

from tailor.config import Settings
from tailor.errors import InputError
from tailor.experiments.state import PROMOTED, RUNNING, open_store
from tailor.monitoring import through_experiment


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return registry_settings(tailor_home)


def _start(settings: Settings) -> str:
    return through_experiment.start(settings, "homepage", "2", "monitoring: drop")


def test_the_experiment_pins_the_challenger_against_the_champion(settings: Settings) -> None:
    register(settings, 2, {"champion": 1, "challenger": 2})
    name = _start(settings)
    assert name == "monitor-homepage-v2"
    assert through_experiment.open_experiment(settings, "homepage") == name
    assert through_experiment.open_experiment(settings, "cross_sell") is None
    with open_store(settings) as store:
        record = store.record(name)
    assert (record.status, record.actor, record.surface) == (RUNNING, "tailor-monitoring",
                                                             "homepage")
    changes = {variant.name: variant.changes.model for variant in record.definition().variants}
    assert changes == {"champion": "champion", "challenger": "2"}
    assert (settings.home_path / "experiments" / f"{name}.yaml").is_file()


def test_a_second_experiment_on_a_full_layer_is_refused(settings: Settings) -> None:
    register(settings, 3, {"champion": 1, "challenger": 2})
    _start(settings)
    MlflowClient().set_registered_model_alias("tailor-homepage", "challenger", "3")
    with pytest.raises(InputError, match="layer"):
        through_experiment.start(settings, "homepage", "3", "monitoring: drop")


def test_while_the_analysis_has_no_verdict_the_experiment_keeps_running(
        settings: Settings) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    name = _start(settings)
    outcome = through_experiment.follow(settings, name, analyze=analysis_with(
        None, "keep_running"))
    assert outcome.decision == "experiment_running" and name in outcome.reason
    assert champion(client) == "1"
    outcome = through_experiment.follow(settings, name, analyze=lambda settings, name: None)
    assert outcome.decision == "experiment_running" and "no exposures" in outcome.reason


def test_a_winning_challenger_becomes_champion_through_the_experiment(
        settings: Settings) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    name = _start(settings)
    outcome = through_experiment.follow(settings, name, analyze=analysis_with("challenger"))
    assert (outcome.decision, outcome.new_champion) == ("promoted", "2")
    assert champion(client) == "2"
    assert client.get_model_version("tailor-homepage", "2").tags["promotion"].startswith(
        f"promoted by experiment {name} (winner challenger) by tailor-monitoring")
    assert through_experiment.open_experiment(settings, "homepage") is None


@pytest.mark.parametrize("winner", ["champion", None])
def test_a_challenger_that_does_not_win_leaves_the_champion_and_closes_the_experiment(
        settings: Settings, winner: str | None) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    name = _start(settings)
    outcome = through_experiment.follow(settings, name, analyze=analysis_with(winner))
    assert outcome.decision == "escalated" and outcome.new_champion is None
    assert ("the champion won" if winner else "no winner") in outcome.reason
    assert champion(client) == "1"
    with open_store(settings) as store:
        record = store.record(name)
    assert (record.status, record.winner) == (PROMOTED, "champion")
    assert through_experiment.open_experiment(settings, "homepage") is None


def test_only_models_that_serve_visitors_go_through_an_experiment(settings: Settings) -> None:
    through = settings.replace(monitoring_promote_through="experiment")
    assert not through_experiment.wanted(settings, "homepage")
    assert through_experiment.wanted(through, "homepage")
    assert through_experiment.wanted(through, "checkout")
    assert not through_experiment.wanted(through, "churn")
