"""A monitoring round whose model registry is down: each model gets a recorded "failed"
decision that names the registry, the round returns, nothing is promoted or crashes, and
`tailor monitor` says so with exit 1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shop_homes import build_shop_home
from tailor.cli import app
from tailor.config import load_settings
from tailor.monitoring import audit
from tailor.monitoring.rounds import run_round

pytestmark = pytest.mark.slow


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # MLflow retries a refused connection for minutes by default; an operator sets these too
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    settings = load_settings(home=tmp_path / "home", env={}).replace(
        mlflow_tracking_uri=f"http://127.0.0.1:{_closed_port()}")
    build_shop_home(settings, tmp_path / "shop", customers=120, products=30, days=20, seed=4,
                    ends_days_ago=1)
    return settings


def test_a_round_with_the_registry_down_records_why_and_returns(settings) -> None:
    rounds = run_round(settings, ["homepage", "churn"])
    assert [(r.model, r.decision) for r in rounds] == [("homepage", "failed"),
                                                      ("churn", "failed")]
    assert all(r.reason.startswith("model registry unreachable") for r in rounds), rounds
    recorded = audit.history(settings)
    assert {(d.model, d.decision) for d in recorded} == {("homepage", "failed"),
                                                          ("churn", "failed")}
    assert all("registry unreachable" in d.reason for d in recorded)


def test_monitor_on_the_cli_exits_1_and_names_the_registry(settings) -> None:
    result = CliRunner().invoke(app, ["monitor", "--model", "checkout", "--json",
                                      "--home", str(settings.home_path)],
                                env={"MLFLOW_TRACKING_URI": settings.tracking_uri})
    payload = json.loads(result.stdout)
    [checkout] = payload["models"]
    assert checkout["decision"] == "failed"
    assert "model registry unreachable" in checkout["reason"]
    assert result.exit_code == 1, result.output
