"""`tailor retention [--as-of DATE]`: the weekly retention list from the CLI (the scheduler's
weekly job). The list itself is tested end to end in tests/integration/test_training_mlflow.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailor.cli import app


def test_prints_the_summary_and_passes_as_of(tailor_home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tailor.training.jobs import RetentionList

    calls = []

    def fake(settings, as_of=None):
        calls.append((settings.home_path, as_of))
        return RetentionList(str(settings.reports_path / "retention" / "retention_2026-03-02.csv"),
                             "2026-03-02T00:00:00+00:00", "3", 1_200, 87, 0.7)

    monkeypatch.setattr("tailor.training.jobs.write_retention_list", fake)
    result = CliRunner().invoke(app, ["retention", "--as-of", "2026-03-02", "--json"])
    assert result.exit_code == 0, result.output
    assert calls == [(tailor_home, "2026-03-02")]
    payload = json.loads(result.stdout)
    assert payload["high_risk"] == 87 and payload["model_version"] == "3"

    human = CliRunner().invoke(app, ["retention"])
    assert "87 of 1,200 customers above 0.70 (churn v3" in human.stderr
    assert calls[-1][1] is None


def test_without_a_churn_model_exits_2_saying_what_to_do(tailor_home: Path) -> None:
    result = CliRunner().invoke(app, ["retention"])
    assert result.exit_code == 2, result.output
    assert "tailor train" in result.output
