"""Promotion and guardrails on a real `ExperimentAnalysis` (`tailor.experiments.analysis`,
built from attributions with known effects by its own tests' helper): the analysis's
winner is promoted with the analysis as the run's artifact, and the guardrails read its
figures. Skipped until the analysis module is installed beside promotion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tailor.config import Settings, load_settings
from tailor.experiments.guardrails import BREACHED, OK, check_all
from tailor.experiments.promotion import MLFLOW_EXPERIMENT, promote_experiment
from tailor.experiments.state import start
from tailor.registry.tracking import use_tracking

analysis = pytest.importorskip("tailor.experiments.analysis")
helpers = pytest.importorskip("test_analysis")  # tests/unit/experiments/test_analysis.py


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    settings = load_settings(home=tailor_home, env={}).replace(
        mlflow_tracking_uri=f"sqlite:///{tailor_home / 'mlflow.db'}",
        experiments_guardrail_min_units=50, mail_recipients="")
    settings.home_path.mkdir(parents=True, exist_ok=True)
    return settings


def analysed(definition, rates: dict[str, float]):
    return analysis.analyze_attribution(definition, helpers.attribution(rates, 6_000),
                                        started_at=helpers.START.isoformat())


def test_the_analysis_winner_is_promoted_with_the_analysis_as_artifact(
        settings: Settings) -> None:
    definition = helpers.definition(name="layout-test")
    start(settings, "layout-test", "ana", "go", definition=definition)
    result = analysed(definition, {"control": 0.05, "carousel": 0.09})
    done = promote_experiment(settings, "layout-test", actor="ana", reason="won",
                              analyze=lambda settings, name: result)
    assert (done.winner, done.analysis_decision, done.forced) == ("carousel", "winner", False)
    client = MlflowClient(use_tracking(settings))
    [run] = client.search_runs([client.get_experiment_by_name(MLFLOW_EXPERIMENT).experiment_id])
    artifact = Path(run.info.artifact_uri.removeprefix("file://")) / "analysis.json"
    assert json.loads(artifact.read_text())["verdict"]["winner"] == "carousel"


def test_the_guardrails_read_the_analysis_figures(settings: Settings) -> None:
    definition = helpers.definition(name="layout-test", guardrails=[
        {"metric": "bounce_rate", "max_increase": 0.05},
        {"metric": "conversion", "max_increase": 0.01}])
    start(settings, "layout-test", "ana", "go", definition=definition)
    result = analysed(definition, {"control": 0.05, "carousel": 0.09})
    [checked] = check_all(settings, analyze=lambda settings, name: result)
    statuses = {check.metric: check.status for check in checked.checks
                if check.metric in ("bounce_rate", "conversion")}
    assert statuses == {"bounce_rate": OK, "conversion": BREACHED}  # +4 points > +1
    assert checked.stopped
