"""Training end to end on a real MLflow store: simulated shop -> event store -> lake ->
warehouse -> Feast features -> `train all` -> registry, aliases, nested trials, plots,
pyfunc and BentoML import, evaluate/recommend on the CLI, the retention list, the quality
gate, and `mlflow run projects/<model>`.

One small shop and one training run shared by the module (two trials per model, in
parallel), so the whole file runs in about a minute and a half.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from shop_homes import load_events
from tailor.cli import app
from tailor.config import Settings, load_settings
from tailor.features.build import run_features
from tailor.models.data import load_shop_data
from tailor.privacy.excluded_customers import exclusions_path
from tailor.quality import QualityGateFailed
from tailor.simulate import ShopConfig, simulate_shop
from tailor.training import train_models, write_retention_list

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
MODELS = ("homepage", "cross_sell", "churn", "checkout")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    """A 90-day shop of 800 customers, loaded and featurised like production would."""
    root = tmp_path_factory.mktemp("training")
    shop_dir = root / "shop"
    simulate_shop(ShopConfig(n_customers=800, n_products=120, n_days=90, seed=3), shop_dir)
    settings = load_settings(home=root / "home", env={})
    load_events(settings, shop_dir / "events.parquet", products=shop_dir / "products.csv",
                customers=shop_dir / "customers.csv")
    run_features(settings, show_progress=False)
    return settings, shop_dir


@pytest.fixture(scope="module")
def trained(shop: tuple[Settings, Path]) -> dict:
    settings, _ = shop
    results = train_models(settings, "all", trials=2, jobs=2)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return {result.model: result for result in results}


def _primary(model: str) -> str:
    return {"homepage": "precision@10", "cross_sell": "hit_rate@10"}.get(model, "roc_auc")


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def test_every_model_is_registered_with_aliases(shop, trained: dict) -> None:
    client = MlflowClient()
    for model in MODELS:
        result = trained[model]
        assert result.status == "trained" and result.version == "1", result.reason
        name = f"tailor-{model}"
        assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"
        tags = client.get_model_version(name, "1").tags
        assert tags["promotion"] == result.reason
        # A first version becomes champion exactly when it beats every baseline.
        beats = all(result.metrics[_primary(model)] > values[_primary(model)]
                    for values in result.baselines.values())
        assert result.promoted == beats
        champion = _alias(client, name, "champion")
        assert (champion == "1") if beats else (champion is None)
        if beats:
            assert result.reason.startswith("promoted: no champion yet")
        else:
            assert result.reason.startswith("not promoted: ")


def test_the_run_logs_trials_metrics_baselines_plots_and_versions(trained: dict) -> None:
    client = MlflowClient()
    for model, plot in (("homepage", "plots/precision_at_k.png"), ("churn", "plots/roc_pr.png")):
        run = client.get_run(trained[model].run_id)
        children = client.search_runs([run.info.experiment_id],
                                      f"tags.mlflow.parentRunId = '{run.info.run_id}'")
        assert len(children) == 2
        assert {child.data.tags["optuna_state"] for child in children} <= {"COMPLETE", "PRUNED"}
        metrics, tags = run.data.metrics, run.data.tags
        primary = "holdout_precision_at_10" if model == "homepage" else "holdout_roc_auc"
        assert primary in metrics
        assert any(name.startswith("baseline_popularity_") for name in metrics)
        assert {"data_version", "feature_version", "promotion"} <= set(tags)
        artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "plots")}
        assert plot in artifacts
    churn_run = client.get_run(trained["churn"].run_id)
    assert churn_run.data.tags["feature_version"].startswith("feast:churn")
    checkout_run = client.get_run(trained["checkout"].run_id)
    assert checkout_run.data.tags["feature_version"].startswith("feast:checkout")
    assert "plots/calibration.png" in {item.path for item in
                                       client.list_artifacts(churn_run.info.run_id, "plots")}
    assert "reranker" in client.get_run(trained["homepage"].run_id).data.tags


def test_the_logged_model_is_a_pyfunc_that_bentoml_imports(shop, trained: dict,
                                                           tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    model = mlflow.pyfunc.load_model("models:/tailor-homepage@champion")
    answer = model.predict(pd.DataFrame({"customer_id": ["c000001", "new-visitor"], "k": [5, 5]}))
    assert answer.groupby("customer_id").size().tolist() == [5, 5]
    assert answer["reason"].str.len().gt(0).all()
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    import bentoml

    imported = bentoml.mlflow.import_model("tailor-checkout", "models:/tailor-checkout@champion")
    loaded = bentoml.mlflow.load_model(imported.tag)
    carts = pd.DataFrame({"session_key": ["s1"], "session_cart_value": [80.0]})
    decision = loaded.predict(carts)
    assert decision.loc[0, "incentive"] in {"none", "10_off", "free_shipping"}
    assert 0.0 <= decision.loc[0, "abandon_probability"] <= 1.0


def test_a_retrained_equal_model_stays_challenger(shop, trained: dict) -> None:
    settings, _ = shop
    again = train_models(settings, "cross_sell", trials=1)[0]
    client = MlflowClient()
    assert again.version == "2" and not again.promoted
    assert "does not beat champion v1" in again.reason
    assert str(client.get_model_version_by_alias("tailor-cross_sell", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("tailor-cross_sell", "challenger").version) == "2"
    assert client.get_model_version("tailor-cross_sell", "2").tags["promotion"] == again.reason


def test_cli_evaluate_prints_the_architecture_json(shop, trained: dict) -> None:
    settings, _ = shop
    result = CliRunner().invoke(app, ["evaluate", "homepage", "--json", "--home",
                                      str(settings.home_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload)[:7] == ["model", "version", "split", "cutoff", "k", "metrics",
                                 "baselines"]
    assert payload["version"] == "1" and payload["k"] == 10
    assert "precision@10" in payload["metrics"]
    assert set(payload["baselines"]) == {"popularity", "random"}
    bad = CliRunner().invoke(app, ["evaluate", "churn", "--split", "user", "--home",
                                   str(settings.home_path)])
    assert bad.exit_code == 2 and "use --split time" in bad.output


def test_cli_recommend_explains_every_product(shop, trained: dict) -> None:
    settings, _ = shop
    customer = load_shop_data(settings).purchases().customer_id.iloc[0]
    result = CliRunner().invoke(app, ["recommend", customer, "--k", "5", "--json", "--home",
                                      str(settings.home_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["customer_id"] == customer and payload["personalised"]
    assert len(payload["items"]) == 5 and all(item["reason"] for item in payload["items"])


def test_opted_out_customers_are_left_out(shop, trained: dict) -> None:
    settings, _ = shop
    customer = load_shop_data(settings).purchases().customer_id.iloc[0]
    with exclusions_path(settings).open("a") as handle:
        handle.write(f"{customer},opted_out,2026-04-01T00:00:00Z\n")
    try:
        assert customer not in set(load_shop_data(settings,
                                                  excluded_customers={customer}).events.customer_id)
        result = CliRunner().invoke(app, ["recommend", customer, "--json", "--home",
                                          str(settings.home_path)])
        payload = json.loads(result.stdout)
        assert not payload["personalised"]
        assert {item["tier"] for item in payload["items"]} == {"cold_start"}
    finally:
        lines = exclusions_path(settings).read_text().splitlines()[:1]
        exclusions_path(settings).write_text("\n".join(lines) + "\n")


def test_retention_list_has_no_pii(shop, trained: dict) -> None:
    settings, shop_dir = shop
    client = MlflowClient()
    if _alias(client, "tailor-churn", "champion") is None:
        # This small shop's churn model may not beat recency; an operator promotes by hand.
        client.set_registered_model_alias("tailor-churn", "champion", "1")
    summary = write_retention_list(settings)
    written = pd.read_csv(summary.path)
    assert list(written.columns) == ["customer_id", "churn_probability", "top_features"]
    assert (written.churn_probability > 0.7).all()
    assert len(written) == summary.high_risk <= summary.customers_scored
    text = Path(summary.path).read_text()
    emails = pd.read_csv(shop_dir / "customers.csv")["email"].head(200)
    assert not any(email in text for email in emails)


def test_the_retention_command_writes_the_list_as_of_a_date(shop, trained: dict) -> None:
    """`tailor retention --as-of`, the scheduler's weekly job, on the trained shop."""
    settings, _ = shop
    client = MlflowClient()
    if _alias(client, "tailor-churn", "champion") is None:
        client.set_registered_model_alias("tailor-churn", "champion", "1")
    as_of = (load_shop_data(settings).end - pd.Timedelta(days=7)).strftime("%Y-%m-%d")
    result = CliRunner().invoke(app, ["retention", "--as-of", as_of, "--json",
                                      "--home", str(settings.home_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["as_of"].startswith(as_of)
    assert Path(payload["path"]).name == f"retention_{as_of}.csv"
    written = pd.read_csv(payload["path"])
    assert len(written) == payload["high_risk"] <= payload["customers_scored"]
    # what monitoring judges the list by once its horizon has passed
    scores = pd.read_parquet(Path(payload["path"]).with_suffix(".scores.parquet"))
    assert len(scores) == payload["customers_scored"]
    assert set(written["customer_id"]) == set(
        scores.loc[scores["churn_probability"] > payload["threshold"], "customer_id"])
    summary = json.loads(Path(payload["path"]).with_suffix(".json").read_text())
    assert summary == payload and summary["horizon_days"] > 0


def test_a_failed_quality_gate_refuses_training(shop, trained: dict,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings, _ = shop
    stale = settings.replace(quality_freshness_blocking=True, quality_freshness_max_hours=1.0)
    with pytest.raises(QualityGateFailed):
        train_models(stale, "churn", trials=1)
    monkeypatch.setenv("TAILOR_QUALITY_FRESHNESS_BLOCKING", "true")
    monkeypatch.setenv("TAILOR_QUALITY_FRESHNESS_MAX_HOURS", "1")
    result = CliRunner().invoke(app, ["train", "churn", "--trials", "1", "--home",
                                      str(settings.home_path)])
    assert result.exit_code == 1 and "refused" in result.output


def test_mlflow_run_of_a_project_trains_like_tailor_train(shop, trained: dict) -> None:
    settings, _ = shop
    environment = {**os.environ, "TAILOR_HOME": str(settings.home_path),
                   "MLFLOW_TRACKING_URI": settings.tracking_uri,
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "mlflow"), "run",
         str(REPO / "projects" / "cross_sell"), "--env-manager", "local", "-P", "trials=1",
         "--experiment-name", "tailor-cross_sell"],
        env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    client = MlflowClient()
    versions = client.search_model_versions("name = 'tailor-cross_sell'")
    newest = max(versions, key=lambda version: int(version.version))
    assert int(newest.version) >= 2
    run = client.get_run(newest.run_id)
    assert run.data.params["run_trials"] == "1"
    # Training ran inside the run `mlflow run` opened, not beside it.
    assert run.data.tags["mlflow.source.type"] == "PROJECT"
    assert run.data.tags["mlflow.project.entryPoint"] == "main"


def test_several_models_under_one_project_run_get_a_child_run_each(
        shop, trained: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from tailor.training.tuning import project_run_id, start_parent_run

    client = MlflowClient()
    project_run = client.create_run(client.get_experiment_by_name("tailor-churn").experiment_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run.info.run_id)
    run_id = project_run_id()
    assert run_id == project_run.info.run_id
    for model in ("churn", "checkout"):          # `mlflow run . -e train -P model=all`
        with start_parent_run("unused", f"train-{model}", run_id, resume=False) as child:
            assert child.info.run_id != run_id
        assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == run_id
    with start_parent_run("unused", "train-churn", run_id, resume=True) as resumed:
        assert resumed.info.run_id == run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef0123456789abcdef")
    assert project_run_id() is None                # a run from another store is ignored
