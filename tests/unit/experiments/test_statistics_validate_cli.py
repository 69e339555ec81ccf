"""`tailor experiment validate` through the Typer sub-app (the lead registers it on the main
app): one JSON object on stdout, exit 0 when the gates hold, 2 on bad input."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from tailor.experiments.commands import experiment_app

app = typer.Typer()
app.add_typer(experiment_app, name="experiment")   # as tailor.cli registers it


def test_validate_prints_one_json_object_and_passes() -> None:
    result = CliRunner().invoke(app, ["experiment", "validate", "--runs", "1000", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runs"] == 1000 and report["passed"]
    assert set(report["false_positive_rate"]) >= {"fixed_horizon", "sequential_daily",
                                                  "naive_daily_peeking"}
    assert report["gate_limits"] == {"false_positive_rate": [0.03, 0.07],
                                     "minimum_coverage": 0.93}
    assert 0 < report["cuped"]["correlated"]["a_a"]["interval_width_ratio"] < 1


def test_validate_prose_names_the_rates_and_bad_input_exits_2() -> None:
    runner = CliRunner()
    prose = runner.invoke(app, ["experiment", "validate", "--runs", "200"])
    assert "false-positive rate" in prose.output and "CUPED interval width ratio" in prose.output
    bad = runner.invoke(app, ["experiment", "validate", "--runs", "5"])
    assert bad.exit_code == 2
