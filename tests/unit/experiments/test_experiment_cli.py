"""`tailor experiment create | start | status | stop` on a temporary home: the ready
definitions copied, the lifecycle in the JSON, bad input as one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tailor.cli import app
from tailor.config import load_settings
from tailor.events.prediction_store import PREDICTION_COLUMNS, open_prediction_store


def run(home: Path, *arguments: str):
    return CliRunner().invoke(app, ["experiment", *arguments, "--home", str(home)])


def said(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def run_json(home: Path, *arguments: str) -> dict:
    result = run(home, *arguments, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_create_start_status_stop(tailor_home: Path) -> None:
    created = run_json(tailor_home, "create", "homepage-layout", "--actor", "ana")
    assert created["status"] == "draft" and created["source"].endswith(
        "experiments/homepage-layout.yaml")
    assert (tailor_home / "experiments" / "homepage-layout.yaml").read_text() == \
        Path(created["source"]).read_text()
    started = run_json(tailor_home, "start", "homepage-layout", "--actor", "ana")
    assert (started["status"], started["slice_start"], started["actor"]) == ("running", 0.0, "ana")

    settings = load_settings(home=tailor_home, env={})
    store = open_prediction_store(settings.event_store_url)
    row = dict.fromkeys(PREDICTION_COLUMNS)
    row.update(served_at=1, request_id="r1", customer_id="c1", endpoint="homepage",
               model="homepage", variant="champion", items="[]", fallback=False, stale=False,
               experiment="homepage-layout", experiment_variant="carousel")
    store.insert_predictions([tuple(row[column] for column in PREDICTION_COLUMNS)])
    store.close()

    status = run_json(tailor_home, "status")["experiments"]
    assert [(e["name"], e["status"]) for e in status] == [("homepage-layout", "running")]
    by_variant = {v["name"]: (v["answers"], v["customers"], v["changes"])
                  for v in status[0]["variants"]}
    assert by_variant == {"grid": (0, 0, {"layout": "grid"}),
                          "carousel": (1, 1, {"layout": "carousel"}),
                          "hero-grid": (0, 0, {"layout": "hero_grid"})}
    assert status[0]["definition_changed"] is False

    assert run(tailor_home, "stop", "homepage-layout").exit_code == 2  # --reason is required
    stopped = run_json(tailor_home, "stop", "homepage-layout", "--reason", "two weeks done")
    assert (stopped["status"], stopped["reason"]) == ("stopped", "two weeks done")
    human = run(tailor_home, "status")
    assert human.exit_code == 0 and "homepage-layout" in human.output


def test_create_writes_a_template_that_loads_and_refuses_to_overwrite(tailor_home: Path) -> None:
    run_json(tailor_home, "create", "my-test")
    written = yaml.safe_load((tailor_home / "experiments" / "my-test.yaml").read_text())
    assert written["name"] == "my-test" and len(written["variants"]) == 2
    again = run(tailor_home, "create", "my-test")
    assert again.exit_code == 2 and "already exists" in said(again)
    assert run(tailor_home, "create", "Not A Name").exit_code == 2


def test_a_refused_start_is_one_line_exit_2_and_leaves_a_draft(tailor_home: Path) -> None:
    run_json(tailor_home, "create", "homepage-layout")
    run_json(tailor_home, "create", "my-test")  # homepage, traffic 1.0: no room beside it
    run_json(tailor_home, "start", "homepage-layout")
    refused = run(tailor_home, "start", "my-test")
    assert refused.exit_code == 2
    assert "error: my-test: traffic: 1 of layer 'homepage' overlaps the running " \
           "homepage-layout (traffic 0.4, slice [0, 0.4))" in said(refused)
    assert "Traceback" not in refused.output
    status = {e["name"]: e["status"] for e in run_json(tailor_home, "status")["experiments"]}
    assert status == {"homepage-layout": "running", "my-test": "draft"}


def test_start_without_a_definition_says_how_to_write_one(tailor_home: Path) -> None:
    result = run(tailor_home, "start", "nothing-here")
    assert result.exit_code == 2
    assert "no such experiment definition; `tailor experiment create nothing-here` writes " \
           "one" in said(result)


def test_an_edited_definition_is_flagged_in_the_status(tailor_home: Path) -> None:
    run_json(tailor_home, "create", "recommendation-diversity")
    run_json(tailor_home, "start", "recommendation-diversity")
    path = tailor_home / "experiments" / "recommendation-diversity.yaml"
    path.write_text(path.read_text().replace("traffic: 0.3", "traffic: 0.2"))
    (row,) = run_json(tailor_home, "status", "recommendation-diversity")["experiments"]
    assert row["definition_changed"] is True and row["traffic"] == 0.3  # as started
