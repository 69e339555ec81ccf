"""Monitoring on a real MLflow registry and Evidently workspace: the reference kept with each
version, a round measuring the served version on data it never saw, a deliberately broken
champion caught and replaced within one round, a round run twice acting once, a failed
quality gate blocking retraining, a missing reference, and `tailor monitor` on the CLI.

One simulated shop shared by the module: the models are trained on its first 38 days, then
the last 12 days arrive, as they would after launch.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from registry_homes import analysis_with
from shop_homes import load_events
from tailor.cli import app
from tailor.config import Settings, load_settings
from tailor.experiments.state import open_store
from tailor.monitoring import audit, through_experiment
from tailor.training.reference import ARTIFACT_DIR, load_reference
from tailor.monitoring.rounds import run_round
from tailor.simulate import ShopConfig, simulate_shop
from tailor.training import train_models
from tailor.training.registration import log_model

pytestmark = pytest.mark.slow
HOMEPAGE = "tailor-homepage"
TRAINED_DAYS = 38


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A 50-day shop; homepage and checkout trained on its first 38 days, then the rest
    ingested. Rounds retrain with one Optuna trial."""
    root = tmp_path_factory.mktemp("monitoring")
    shop = root / "shop"
    simulate_shop(ShopConfig(n_customers=600, n_products=100, n_days=50, seed=5,
                             show_progress=False), shop)
    events = pd.read_parquet(shop / "events.parquet")
    split = events["timestamp"].min().normalize() + pd.Timedelta(days=TRAINED_DAYS)
    events[events["timestamp"] < split].to_parquet(root / "early.parquet", index=False)
    events[events["timestamp"] >= split].to_parquet(root / "late.parquet", index=False)
    settings = load_settings(home=root / "home", env={}).replace(monitoring_retrain_trials=1)
    load_events(settings, root / "early.parquet", products=shop / "products.csv",
                customers=shop / "customers.csv")
    trained = {result.model: result for result in
               train_models(settings, "homepage", trials=1)
               + train_models(settings, "checkout", trials=1)}
    mlflow.set_tracking_uri(settings.tracking_uri)
    for model, result in trained.items():  # served, as a shop would after its own review
        assert result.status == "trained", result.reason
        if not result.promoted:
            MlflowClient().set_registered_model_alias(f"tailor-{model}", "champion",
                                                      result.version)
    load_events(settings, root / "late.parquet")
    return settings


def _champion(name: str = HOMEPAGE) -> str:
    return str(MlflowClient().get_model_version_by_alias(name, "champion").version)


def _versions(name: str = HOMEPAGE) -> set[str]:
    return {str(v.version) for v in MlflowClient().search_model_versions(f"name = '{name}'")}


def _register_copy(version: str, change, with_reference: bool = True) -> str:
    """Register a changed copy of `version`'s fitted model (with that version's reference),
    as a person would push a hand-made version, and make it champion."""
    client = MlflowClient()
    source = client.get_model_version(HOMEPAGE, version)
    fitted = mlflow.pyfunc.load_model(f"models:/{HOMEPAGE}/{version}").unwrap_python_model().model
    change(fitted)
    experiment = client.get_run(source.run_id).info.experiment_id
    with mlflow.start_run(experiment_id=experiment, run_name="hand-made"):
        if with_reference:
            folder = mlflow.artifacts.download_artifacts(run_id=source.run_id,
                                                         artifact_path=ARTIFACT_DIR)
            mlflow.log_artifacts(folder, ARTIFACT_DIR)
        mlflow.log_params(client.get_run(source.run_id).data.params)
        new = log_model(fitted, HOMEPAGE)
    client.set_registered_model_alias(HOMEPAGE, "champion", new)
    return new


def _scramble_products(fitted) -> None:
    """An id-mapping bug: every score lands on another product; the model still loads."""
    from tailor.models.interactions import IdIndex

    ids = np.random.default_rng(0).permutation(fitted.products.ids)
    fitted.products = IdIndex(ids, {str(value): row for row, value in enumerate(ids)})


def test_each_version_keeps_the_reference_it_is_judged_against(home: Settings) -> None:
    client = MlflowClient()
    version = client.get_model_version(HOMEPAGE, _champion())
    reference = load_reference(version.run_id, "homepage")
    run = client.get_run(version.run_id)
    assert reference.primary_metric == "precision@10"
    assert reference.baseline == pytest.approx(run.data.metrics["holdout_precision_at_10"])
    assert reference.data_to == pd.Timestamp(run.data.tags["data_to"])
    assert reference.window_start < reference.window_end == reference.data_to
    assert {"product_id", "score"} <= set(reference.scored.columns) and len(reference.scored)
    assert {"events", "purchases", "spend", "top_category"} <= set(reference.profile.columns)
    checkout = client.get_model_version_by_alias("tailor-checkout", "challenger")
    scored = load_reference(checkout.run_id, "checkout").scored
    assert {"prediction", "label"} <= set(scored.columns) and scored["prediction"].between(0, 1).all()


def test_a_dry_run_measures_the_served_version_on_data_it_never_saw(home: Settings) -> None:
    before = _versions()
    [result] = run_round(home, ["homepage"], dry_run=True)
    assert result.source == "served version on unseen data", result.reason
    assert result.decision in ("ok", "would_retrain") and result.current is not None
    assert result.window_start >= load_reference(
        MlflowClient().get_model_version(HOMEPAGE, _champion()).run_id, "h").data_to
    profile = next(d for d in result.drift if d.dataset == "profile")
    assert profile.columns >= 8 and profile.snapshot and Path(profile.html).is_file()
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(home.home_path / "evidently"))
    [project] = workspace.search_project("tailor-homepage")
    assert len(workspace.list_runs(project.id)) >= 1
    assert _versions() == before and audit.history(home, "homepage") == []  # nothing recorded


def test_the_evidently_ui_shows_each_model_and_its_snapshots(home: Settings) -> None:
    import socket
    import subprocess
    import sys
    import time

    import httpx

    run_round(home, ["homepage"], dry_run=True)  # at least one snapshot, whatever ran before
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ui = subprocess.Popen([str(Path(sys.executable).with_name("evidently")), "ui", "--workspace",
                           str(home.home_path / "evidently"), "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base, deadline, projects = f"http://127.0.0.1:{port}/api/projects", time.monotonic() + 90, None
        while projects is None and time.monotonic() < deadline and ui.poll() is None:
            try:
                projects = httpx.get(base + "/", timeout=5).json()
            except httpx.HTTPError:
                time.sleep(0.5)
        assert projects is not None, f"evidently ui did not answer (exit {ui.poll()})"
        [project] = [p for p in projects if p["name"] == "tailor-homepage"]
        snapshots = httpx.get(f"{base}/{project['id']}/snapshots", timeout=10).json()
        assert snapshots and all("homepage" in snapshot["tags"] for snapshot in snapshots)
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_a_broken_champion_is_caught_and_replaced_within_one_round(home: Settings) -> None:
    good = _champion()
    broken = _register_copy(good, _scramble_products)
    [result] = run_round(home, ["homepage"])
    assert result.champion_version == broken
    assert result.drop is not None and result.drop > home.monitoring_max_drop, result.reason
    assert result.decision in ("promoted", "rolled_back"), result.reason
    assert _champion() == result.new_champion != broken
    [row] = audit.history(home, "homepage")
    assert row.decision == result.decision and row.champion_version == broken
    assert row.evidence["baseline"] == pytest.approx(result.baseline)
    runs = mlflow.search_runs(experiment_names=["tailor-monitoring"])
    assert (runs["tags.decision"] == result.decision).any()
    tags = MlflowClient().get_model_version(HOMEPAGE, broken).tags
    assert tags["monitoring_decision"] == result.decision


def test_a_round_run_twice_acts_once(home: Settings) -> None:
    versions, champion = _versions(), _champion()
    first = run_round(home, ["homepage"])[0]
    second = run_round(home, ["homepage"])[0]
    assert second.repeated and second.decision == first.decision
    assert _versions() == versions and _champion() == champion


def test_a_failed_quality_gate_blocks_retraining(home: Settings) -> None:
    broken = _register_copy("1", _scramble_products)  # trained before the newest days
    versions = _versions()
    stale = home.replace(quality_freshness_blocking=True)  # the shop's data ended months ago
    [result] = run_round(stale, ["homepage"])
    assert result.decision == "retrain_blocked" and "freshness" in result.reason
    assert result.below_threshold
    assert _versions() == versions and _champion() == broken


def test_a_version_without_reference_is_reported_not_crashed(home: Settings) -> None:
    bare = _register_copy(_champion(), lambda fitted: None, with_reference=False)
    [result] = run_round(home, ["homepage"])
    assert result.decision == "no_reference" and f"v{bare}" in result.reason


def test_monitor_on_the_cli_prints_one_json_object_and_sets_the_exit_code(
        home: Settings) -> None:
    result = CliRunner().invoke(app, ["monitor", "--model", "checkout", "--dry-run", "--json",
                                      "--home", str(home.home_path)])
    payload = json.loads(result.stdout)
    [checkout] = payload["models"]
    assert checkout["model"] == "checkout"
    assert result.exit_code == (1 if checkout["below_threshold"] else 0)
    bad = CliRunner().invoke(app, ["monitor", "--model", "nope", "--home",
                                   str(home.home_path)])
    assert bad.exit_code == 2 and "must be one of" in bad.output


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_audit_table_keeps_one_decision_per_round(backend: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    settings = load_settings(home=tmp_path, env={})
    if backend == "postgresql":
        settings = settings.replace(database_url=request.getfixturevalue("postgres_url"))
    first = audit.Decision("homepage|v3|2026-02-01T00:00:00+00:00", "2026-02-02T01:00:00+00:00",
                           "homepage", "2026-01-25T00:00:00+00:00", "2026-02-01T00:00:00+00:00",
                           "3", "escalated", "kept; o'reilly's \"quotes\" survive",
                           {"baseline": 0.2, "current": 0.1})
    assert audit.find(settings, first.round_key) is None
    audit.record(settings, first)
    assert audit.find(settings, first.round_key) == first
    later = audit.Decision(**{**first.to_dict(), "decision": "promoted",
                              "decided_at": "2026-02-02T02:00:00+00:00"})
    audit.record(settings, later)  # the same round decided again replaces the row
    other = audit.Decision(**{**first.to_dict(), "round_key": "checkout|v1|x", "model": "checkout"})
    audit.record(settings, other)
    assert [d.decision for d in audit.history(settings, "homepage")] == ["promoted"]
    assert len(audit.history(settings)) == 2


def test_through_an_experiment_the_challenger_faces_visitors_before_it_serves_everyone(
        home: Settings) -> None:
    """`monitoring.promote_through = "experiment"`: the round starts a champion-vs-challenger
    experiment instead of moving the alias; the next day's round waits for it and trains
    nothing; its winner then becomes champion. Last in the module: it adds a day of data."""
    through = home.replace(monitoring_promote_through="experiment")
    broken = _register_copy("1", _scramble_products)  # the champion before has no reference
    [first] = run_round(through, ["homepage"])
    assert first.decision == "experiment_started", first.reason
    assert first.experiment == f"monitor-homepage-v{first.challenger_version}"
    assert _champion() == broken  # no visitor's model changed yet
    with open_store(home) as store:
        record = store.record(first.experiment)
    assert record.status == "running" and record.surface == "homepage"
    assert {variant.name: variant.changes.model for variant in record.definition().variants} \
        == {"champion": "champion", "challenger": first.challenger_version}

    late = pd.read_parquet(home.home_path.parent / "late.parquet")
    day = late[late["timestamp"] > late["timestamp"].max() - pd.Timedelta(days=1)].copy()
    day["timestamp"] += pd.Timedelta(days=1)
    day["event_id"] = day["event_id"].astype(str) + "-next-day"
    day.to_parquet(home.home_path.parent / "next-day.parquet", index=False)
    load_events(home, home.home_path.parent / "next-day.parquet")
    versions = _versions()
    [second] = run_round(through, ["homepage"])
    assert (second.decision, second.experiment) == ("experiment_running", first.experiment)
    assert "no exposures" in second.reason and not second.repeated
    assert _versions() == versions and _champion() == broken  # no second challenger

    outcome = through_experiment.follow(home, first.experiment,
                                        analyze=analysis_with("challenger"))
    assert (outcome.decision, outcome.new_champion) == ("promoted", first.challenger_version)
    assert _champion() == first.challenger_version
    assert through_experiment.open_experiment(home, "homepage") is None
