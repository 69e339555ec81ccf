"""Promoting an experiment's winner on a real MLflow registry (SQLite, a temporary home, no
training: versions are tiny folders): the champion alias moves, an MLflow run in
`tailor-experiments` and an `experiment_audit` row say who, when and why; a promotion the
analysis does not back is refused; a registry or database that fails half-way leaves
nothing changed; the CLI's exit codes and --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from experiment_definitions import make_definition, variants
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from registry_homes import MODEL, analysis_with, champion, register, registry_settings
from typer.testing import CliRunner

from tailor.config import Settings
from tailor.errors import GateRefused, InputError
from tailor.experiments import promotion as promotion_module
from tailor.experiments.promotion import (
    MLFLOW_EXPERIMENT,
    RegistryUnavailable,
    promote_experiment,
)
from tailor.experiments.state import PROMOTED, RUNNING, current_assigner, open_store, start
from tailor.registry.tracking import use_tracking


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return registry_settings(tailor_home)


def start_model_test(settings: Settings) -> None:
    definition = make_definition(
        name="model-test", metrics={"primary": "conversion"},
        variants=variants(("control", 0.5, {"model": "champion"}),
                          ("new-model", 0.5, {"model": "challenger", "layout": "carousel"})))
    start(settings, "model-test", "ana", "go", definition=definition)


def promote_audits(settings: Settings, name: str) -> list[Any]:
    with open_store(settings) as store:
        return [entry for entry in store.audit(name) if entry.action == "promote"]


def runs(settings: Settings) -> list[Any]:
    client = MlflowClient(use_tracking(settings))
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def test_promoting_a_model_winner_moves_the_champion_and_records_run_and_audit(
        settings: Settings) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    start_model_test(settings)

    done = promote_experiment(settings, "model-test", actor="ana", reason="+5% conversion",
                              analyze=analysis_with("new-model"))

    assert champion(client) == "2"
    assert (done.winner, done.forced, done.model.previous, done.model.version) == \
        ("new-model", False, "1", "2")
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["promotion"].startswith("promoted by experiment model-test (winner new-model)")
    with open_store(settings) as store:
        record = store.record("model-test")
    assert (record.status, record.winner, record.actor) == (PROMOTED, "new-model", "ana")
    [audit] = promote_audits(settings, "model-test")
    assert (audit.actor, audit.from_status, audit.to_status) == ("ana", RUNNING, PROMOTED)
    assert audit.reason.startswith("+5% conversion; winner new-model (the analysis's winner); "
                                   "tailor-homepage champion v1 -> v2; MLflow run ")
    [run] = runs(settings)
    assert run.info.run_id == done.run_id and run.info.status == "FINISHED"
    assert {key: run.data.params[key] for key in ("experiment", "winner", "by", "reason")} == \
        {"experiment": "model-test", "winner": "new-model", "by": "ana",
         "reason": "+5% conversion"}
    assert (run.data.tags["previous_champion"], run.data.tags["new_champion"]) == ("1", "2")
    artifact = Path(run.info.artifact_uri.removeprefix("file://")) / "analysis.json"
    assert json.loads(artifact.read_text())["verdict"]["winner"] == "new-model"
    # The winner's other change is everyone's default; nobody is assigned any more.
    assigned = current_assigner(settings).assign("homepage", "any-visitor")
    assert assigned.experiment is None and assigned.changes.layout == "carousel"
    assert assigned.changes.model is None  # the model is the champion alias's business


def test_promoting_again_changes_nothing_and_another_winner_is_refused(
        settings: Settings) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    start_model_test(settings)
    promote_experiment(settings, "model-test", actor="ana", reason="won",
                       analyze=analysis_with("new-model"))
    client.set_registered_model_alias(MODEL, "champion", "1")  # monitoring rolled it back

    again = promote_experiment(settings, "model-test", actor="bo", reason="again",
                               analyze=analysis_with("new-model"))
    assert again.already_promoted and again.winner == "new-model"
    assert champion(client) == "1"  # a later decision is not overridden
    assert len(promote_audits(settings, "model-test")) == 1 and len(runs(settings)) == 1
    with pytest.raises(InputError, match="already promoted with winner 'new-model'"):
        promote_experiment(settings, "model-test", actor="bo", reason="x", variant="control",
                           force=True, analyze=analysis_with(None))


def test_no_winner_is_refused_and_nothing_changes_unless_forced_with_a_variant(
        settings: Settings) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    start_model_test(settings)
    no_winner = analysis_with(None)
    with pytest.raises(GateRefused, match="the analysis has no winner \\(no_winner: no metric"):
        promote_experiment(settings, "model-test", actor="ana", reason="r", analyze=no_winner)
    with pytest.raises(GateRefused, match="add --force to promote 'new-model' anyway"):
        promote_experiment(settings, "model-test", actor="ana", reason="r",
                           variant="new-model", analyze=no_winner)
    with pytest.raises(InputError, match="--force needs --variant"):
        promote_experiment(settings, "model-test", actor="ana", reason="r", force=True,
                           analyze=no_winner)
    with pytest.raises(GateRefused, match="the analysis's winner is 'new-model', not 'control'"):
        promote_experiment(settings, "model-test", actor="ana", reason="r", variant="control",
                           analyze=analysis_with("new-model"))
    assert champion(client) == "1" and promote_audits(settings, "model-test") == []
    assert runs(settings) == []
    with open_store(settings) as store:
        assert store.record("model-test").status == RUNNING

    forced = promote_experiment(settings, "model-test", actor="ana", reason="ship it",
                                variant="new-model", force=True, analyze=no_winner)
    assert forced.forced and champion(client) == "2"
    [audit] = promote_audits(settings, "model-test")
    assert "winner new-model (forced against the analysis)" in audit.reason


def test_a_registry_that_fails_mid_promotion_leaves_nothing_changed(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    start_model_test(settings)

    def down(*args: Any, **kwargs: Any) -> None:
        raise MlflowException("API request to http://registry:5000 failed: Connection refused")

    # The run was started and the alias read under the lock; then the registry went away.
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", down)
    with pytest.raises(RegistryUnavailable, match="moving the champion alias of "
                                                  "tailor-homepage to v2 failed"):
        promote_experiment(settings, "model-test", actor="ana", reason="r",
                           analyze=analysis_with("new-model"))
    monkeypatch.undo()
    assert champion(client) == "1"
    with open_store(settings) as store:
        assert store.record("model-test").status == RUNNING
    assert promote_audits(settings, "model-test") == []
    [run] = runs(settings)  # the attempt, marked failed
    assert run.info.status == "FAILED" and "could not be moved" in run.data.tags["outcome"]
    assert current_assigner(settings).assign("homepage", "any-visitor").experiment == \
        "model-test"

    # Once the registry is back, the same command completes.
    done = promote_experiment(settings, "model-test", actor="ana", reason="r",
                              analyze=analysis_with("new-model"))
    assert champion(client) == "2" and done.model.previous == "1"


def test_a_state_write_that_fails_puts_the_champion_back(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    start_model_test(settings)

    def database_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the event store is unreachable")

    monkeypatch.setattr(promotion_module, "record_promotion", database_down)
    with pytest.raises(ConnectionError):
        promote_experiment(settings, "model-test", actor="ana", reason="r",
                           analyze=analysis_with("new-model"))
    assert champion(client) == "1"
    assert runs(settings)[0].info.status == "FAILED"
    with open_store(settings) as store:
        assert store.record("model-test").status == RUNNING


def test_a_settings_winner_is_served_to_everyone_without_the_registry(
        settings: Settings) -> None:
    definition = make_definition(name="layout-test")  # control vs carousel, no model
    start(settings, "layout-test", "ana", "go", definition=definition)
    before = current_assigner(settings)
    units = [f"visitor-{index}" for index in range(200)]
    assert {before.assign("homepage", unit).variant for unit in units} == \
        {"control", "carousel"}
    done = promote_experiment(settings, "layout-test", actor="ana", reason="more clicks",
                              analyze=analysis_with("carousel"))
    assert done.model is None and done.serves == {"layout": "carousel"}
    after = current_assigner(settings)
    assert {(a.experiment, a.changes.layout) for a in
            (after.assign("homepage", unit) for unit in units)} == {(None, "carousel")}
    # The server's watcher reads the same: every visitor gets the carousel, in no experiment.
    from tailor.serving.experiment_watcher import ExperimentWatcher

    watcher = ExperimentWatcher(settings, {}, new_slot=None)  # type: ignore[arg-type]
    assert watcher.refresh()
    assert {(a.experiment, a.changes.layout) for a in
            (watcher.assign("homepage", unit) for unit in units)} == {(None, "carousel")}


def cli(home: Path, *arguments: str) -> Any:
    from tailor.cli import app

    return CliRunner().invoke(app, ["experiment", *arguments, "--home", str(home)])


def test_the_cli_exit_codes_and_json(settings: Settings,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = register(settings, 2, {"champion": 1, "challenger": 2})
    start_model_test(settings)
    home = settings.home_path
    monkeypatch.setattr(promotion_module, "default_analysis", analysis_with(None))
    refused = cli(home, "promote", "model-test", "--json")
    assert refused.exit_code == 1 and refused.stdout.strip() == ""
    assert "refused:" in refused.output and "--variant V --force" in " ".join(
        refused.output.split())
    assert cli(home, "promote", "model-test", "--variant", "nope").exit_code == 2
    assert cli(home, "promote", "no-such-test").exit_code == 2
    assert champion(client) == "1"

    done = cli(home, "promote", "model-test", "--variant", "new-model", "--force",
               "--reason", "launch", "--by", "ana", "--json")
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert (payload["winner"], payload["actor"], payload["forced"]) == ("new-model", "ana", True)
    assert payload["model"] == {"registered_name": MODEL, "reference": "challenger",
                                "version": "2", "previous": "1", "moved": True}
    assert champion(client) == "2"
    again = cli(home, "promote", "model-test", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["already_promoted"] is True


def test_a_challenger_becomes_a_variant_and_then_the_champion(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #12's path: a retrained challenger, tested against the champion, promoted."""
    from tailor.experiments.definition import load_definition

    home = settings.home_path
    assert cli(home, "create", "ct", "--challenger", "homepage").exit_code == 2  # no registry
    client = register(settings, 3, {"champion": 1, "challenger": 2})
    refused = cli(home, "create", "ct", "--challenger", "churn")
    assert refused.exit_code == 2 and "not a served model" in " ".join(refused.output.split())

    created = cli(home, "create", "ct", "--challenger", "homepage", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["source"] == "challenger:homepage"
    definition = load_definition(home / "experiments" / "ct.yaml")
    assert (definition.surface, definition.control) == ("homepage", "champion")
    assert {variant.name: variant.changes.model for variant in definition.variants} == \
        {"champion": "champion", "challenger": "2"}  # pinned: a retrain does not move it
    assert {guardrail.metric for guardrail in definition.guardrails} == \
        {"fallback_rate", "error_rate", "latency_p99_ms", "bounce_rate"}
    assert cli(home, "start", "ct").exit_code == 0

    client.set_registered_model_alias(MODEL, "challenger", "3")  # a retrain meanwhile
    done = promote_experiment(settings, "ct", actor="ana", reason="won",
                              analyze=analysis_with("challenger"))
    assert champion(client) == "2" and done.model.reference == "2"


def test_putting_the_alias_back_never_undoes_a_move_made_since(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    client = register(settings, 3, {"champion": 1, "challenger": 2})
    start_model_test(settings)

    def moved_by_someone_else_then_down(*args: Any, **kwargs: Any) -> None:
        client.set_registered_model_alias(MODEL, "champion", "3")  # monitoring, meanwhile
        raise ConnectionError("the event store is unreachable")

    monkeypatch.setattr(promotion_module, "record_promotion", moved_by_someone_else_then_down)
    with pytest.raises(ConnectionError):
        promote_experiment(settings, "model-test", actor="ana", reason="r",
                           analyze=analysis_with("new-model"))
    assert champion(client) == "3"


def test_a_treatment_the_guardrails_stopped_needs_force(settings: Settings) -> None:
    from tailor.experiments.state import stop

    start(settings, "layout-test", "ana", "go", definition=make_definition(name="layout-test"))
    stop(settings, "layout-test", "tailor-guardrails", "guardrail breached: fallback_rate")
    with pytest.raises(GateRefused, match="the guardrails stopped it"):
        promote_experiment(settings, "layout-test", actor="ana", reason="r",
                           analyze=analysis_with("carousel"))
    kept = promote_experiment(settings, "layout-test", actor="ana", reason="keep the grid",
                              variant="control", force=True, analyze=analysis_with("carousel"))
    assert kept.winner == "control" and kept.serves == {}


def test_a_tracking_server_that_is_down_exits_3_and_changes_nothing(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    start(settings.replace(mlflow_tracking_uri=""), "layout-test", "ana", "go",
          definition=make_definition(name="layout-test"))
    down = cli(settings.home_path, "promote", "layout-test", "--variant", "carousel",
               "--force", "--json")
    assert down.exit_code == 3, down.output
    assert "service failed: RegistryUnavailable: model registry: starting the MLflow run " \
           "failed" in " ".join(down.output.split())
    assert status_after(settings, "layout-test") == (RUNNING, [])


def status_after(settings: Settings, name: str) -> tuple[str, list[Any]]:
    with open_store(settings) as store:
        return store.record(name).status, promote_audits(settings, name)


def test_an_analysis_that_refuses_blocks_only_an_unforced_promotion(settings: Settings) -> None:
    start(settings, "layout-test", "ana", "go", definition=make_definition(name="layout-test"))

    def no_exposures(settings: Settings, name: str) -> Any:
        raise InputError(f"{name}: no exposures before now")

    with pytest.raises(InputError, match="no exposures"):
        promote_experiment(settings, "layout-test", actor="ana", reason="r",
                           variant="carousel", analyze=no_exposures)
    forced = promote_experiment(settings, "layout-test", actor="ana", reason="r",
                                variant="carousel", force=True, analyze=no_exposures)
    assert forced.forced and forced.notes == ("no analysis: layout-test: no exposures before now",)
