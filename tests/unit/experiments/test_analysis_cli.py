"""`tailor experiment analyze` on a home whose prediction log and events are partly in the
lake (exported) and partly only in the event store (SQLite, or PostgreSQL): the JSON's shape
and figures, the page with its plots, bad names and times as exit 2."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from experiment_definitions import make_definition
from tailor.cli import app
from tailor.config import load_settings
from tailor.events.prediction_store import (
    PREDICTION_COLUMNS, datetime_to_micros, open_prediction_store,
)
from tailor.events.schema import EVENT_COLUMNS
from tailor.events.store import open_event_store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
UNITS = 400


def buys(index: int) -> bool:
    """Control (even) units buy one in ten, carousel (odd) ones one in two."""
    return index % 10 == 0 if index % 2 == 0 else index % 4 == 1


def store_rows(settings, indexes: range) -> None:
    """A homepage answer per unit (its variant by parity) and, for buyers, a purchase an hour
    later of a product the answer showed."""
    predictions = open_prediction_store(settings.event_store_url)
    rows = []
    for index in indexes:
        row = dict.fromkeys(PREDICTION_COLUMNS)
        row.update(served_at=datetime_to_micros(T0 + timedelta(minutes=index)),
                   request_id=f"r{index}", customer_id=f"c{index}", session_id=f"s{index}",
                   endpoint="homepage", model="homepage", variant="champion",
                   items=json.dumps([{"product_id": "p1", "score": 1.0, "reason": "x"}]),
                   fallback=index % 50 == 0, stale=False, experiment="layout-test",
                   experiment_variant="carousel" if index % 2 else "control")
        rows.append(tuple(row[column] for column in PREDICTION_COLUMNS))
    predictions.insert_predictions(rows)
    predictions.close()
    events = [{"event_id": f"e{index}", "customer_id": f"c{index}", "event_type": "purchase",
               "product_id": "p1", "timestamp": pd.Timestamp(T0 + timedelta(minutes=index + 60)),
               "session_id": f"s{index}", "price": 40.0, "quantity": 1.0,
               "order_id": f"o{index}"} for index in indexes if buys(index)]
    frame = pd.DataFrame(events).reindex(columns=list(EVENT_COLUMNS))
    store = open_event_store(settings.event_store_url)
    store.insert_events(frame, batch_id=f"b{indexes.start}")
    store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def home(request: pytest.FixtureRequest, tailor_home: Path,
         monkeypatch: pytest.MonkeyPatch) -> Path:
    """The experiment's store in SQLite under the home, or in PostgreSQL."""
    from tailor.events.lake import export_lake
    from tailor.experiments.state import open_store

    if request.param == "postgres":
        monkeypatch.setenv("TAILOR_DATABASE_URL", request.getfixturevalue("postgres_url"))
    settings = load_settings(home=tailor_home)
    assert settings.event_store_url.startswith(request.param)
    definition = make_definition(metrics={"primary": "conversion", "secondary": ["aov"]})
    with open_store(settings) as store:
        store.create(definition, "tests")
        store.start(definition, "tests", "go")
    store_rows(settings, range(0, UNITS // 2))
    export_lake(settings, progress=False)            # the first half is in the lake
    store_rows(settings, range(UNITS // 2, UNITS))   # the second only in the store
    return tailor_home


def run(home: Path, *arguments: str):
    return CliRunner().invoke(app, ["experiment", "analyze", *arguments, "--home", str(home)])


def test_json_has_the_figures_per_variant_and_the_report_has_plots(home: Path) -> None:
    result = run(home, "layout-test", "--json", "--as-of", "2026-03-04T00:00:00+00:00")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["units"] == {"control": UNITS // 2, "carousel": UNITS // 2}
    conversion = next(m for m in payload["metrics"] if m["metric"] == "conversion")
    expected = {variant: sum(buys(i) for i in range(UNITS) if i % 2 == parity) / (UNITS // 2)
                for variant, parity in (("control", 0), ("carousel", 1))}
    assert conversion["values"] == pytest.approx(expected)
    treatment = conversion["analysis"]["variants"][1]
    assert set(treatment["lift"]) >= {"relative", "relative_lower", "relative_upper", "p_value"}
    assert treatment["sequential"]["planned_looks"] == 14
    assert next(m for m in payload["metrics"] if m["metric"] == "aov")["values"] == \
        {"control": 40.0, "carousel": 40.0}
    assert payload["verdict"] == {"decision": "winner", "winner": "carousel",
                                  "reasons": payload["verdict"]["reasons"]}
    fallbacks = sum(1 for i in range(0, UNITS, 2) if i % 50 == 0)   # all in the control
    assert payload["guardrails"]["control"]["fallback_rate"] == pytest.approx(fallbacks / 200)
    assert payload["guardrails"]["carousel"]["fallback_rate"] == 0.0
    assert payload["sources"]["predictions_from_store"] == UNITS // 2
    page = Path(payload["report"])
    assert page.parent == home / "reports" / "experiments" / "layout-test"
    text = page.read_text()
    assert text.count("<svg") == 2 and 'id="verdict"' in text
    assert (page.parent / "latest.html").read_text() == text


def test_prose_names_the_verdict_and_the_report(home: Path) -> None:
    result = run(home, "layout-test", "--as-of", "2026-03-04")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "layout-test: winner: carousel" in said and "report:" in said


def test_an_unknown_experiment_or_time_before_any_exposure_exits_2(home: Path) -> None:
    unknown = run(home, "nope", "--json")
    assert unknown.exit_code == 2 and "nope: no such experiment" in " ".join(unknown.output.split())
    early = run(home, "layout-test", "--as-of", "2026-03-01")
    assert early.exit_code == 2 and "no exposure before" in " ".join(early.output.split())
    bad = run(home, "layout-test", "--as-of", "yesterday")
    assert bad.exit_code == 2 and "--as-of" in bad.output
