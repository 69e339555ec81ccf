"""Guardrails on a real prediction log (SQLite, and PostgreSQL once): a variant that breaks
one stops its experiment by itself, with the reason in the audit and an alert mailed, and
the server's watcher then serves everyone the defaults; too few customers is waiting; the
rules as pure functions; `tailor experiment guardrails` exit codes and --json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from experiment_definitions import make_definition
from smtp_servers import SmtpServer, local_smtp_server
from tailor.config import Settings, load_settings
from tailor.events.prediction_store import (
    PREDICTION_COLUMNS, datetime_to_micros, open_prediction_store,
)
from tailor.experiments.definition import Guardrail
from tailor.experiments.guardrails import (
    ACTOR, BREACHED, NOT_MEASURED, OK, WAITING, check_all, judge, percentile_from_histogram,
)
from tailor.experiments.state import RUNNING, STOPPED, open_store, start
from tailor.serving.experiment_watcher import ExperimentWatcher

GUARDRAILS = [{"metric": "fallback_rate", "max_increase": 0.02},
              {"metric": "latency_p99_ms", "max": 100}]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with local_smtp_server() as server:
        yield server


def home_settings(home: Path, smtp_port: int, **overrides: Any) -> Settings:
    return load_settings(home=home, env={}).replace(
        mail_host="127.0.0.1", mail_port=smtp_port, mail_timeout_seconds=5.0,
        mail_recipients="team@shop.example", mail_sender="tailor@shop.example",
        experiments_guardrail_min_units=50, **overrides)


@pytest.fixture
def settings(tailor_home: Path, smtp: SmtpServer) -> Settings:
    return home_settings(tailor_home, smtp.port)


def start_layout_test(settings: Settings, guardrails: list[dict] = GUARDRAILS) -> None:
    start(settings, "layout-test", "ana", "go",
          definition=make_definition(guardrails=guardrails))


def serve(settings: Settings, variant: str, customers: int, *, fallbacks: int = 0,
          errors: int = 0, latency_ms: float = 20.0, prefix: str = "") -> None:
    """`customers` answers of `variant`, one per customer, the first ones fallbacks."""
    store = open_prediction_store(settings.event_store_url)
    now = datetime.now(timezone.utc) + timedelta(seconds=1)
    rows = []
    for index in range(customers):
        row = dict.fromkeys(PREDICTION_COLUMNS)
        failed = index < fallbacks
        row.update(served_at=datetime_to_micros(now), request_id=f"{prefix}{variant}-{index}",
                   customer_id=f"{prefix}{variant}-c{index}", endpoint="homepage",
                   model="homepage", variant="champion", items="[]", fallback=failed,
                   fallback_reason="timeout" if failed else None, stale=False,
                   experiment="layout-test", experiment_variant=variant, latency_ms=latency_ms,
                   fallback_kind=("internal_error" if index < errors else "timeout")
                   if failed else None)
        rows.append(tuple(row[column] for column in PREDICTION_COLUMNS))
    store.insert_predictions(rows)
    store.close()


def status_of(settings: Settings) -> Any:
    with open_store(settings) as store:
        return store.record("layout-test")


# -- the rules ------------------------------------------------------------------------------


def test_the_percentile_is_the_nearest_rank_of_the_histogram() -> None:
    assert percentile_from_histogram([(5, 98), (200, 2)]) == 200  # rank 99 of 100
    assert percentile_from_histogram([(5, 99), (200, 1)]) == 5
    assert percentile_from_histogram([]) is None


def test_judge_waits_for_customers_then_breaches_above_the_limit() -> None:
    definition = make_definition()
    rule = Guardrail(metric="fallback_rate", max_increase=0.02)
    ceiling = Guardrail(metric="latency_p99_ms", max=100)
    values = {"fallback_rate": {"control": 0.01, "carousel": 0.04},
              "latency_p99_ms": {"control": 500.0, "carousel": 90.0}}
    [waiting] = judge(definition, [rule], values, {"control": 10, "carousel": 500}, 100)
    assert waiting.status == WAITING and "control has 10 customers" in waiting.detail
    [breached] = judge(definition, [rule], values, {"control": 100, "carousel": 100}, 100)
    assert breached.status == BREACHED and breached.value == 0.04
    assert breached.detail == ("fallback_rate: carousel 0.04 vs control 0.01: +0.03, above "
                               "max_increase 0.02")
    # A ceiling judges the variant alone (the control's own latency is not the test's doing).
    [ok] = judge(definition, [ceiling], values, {"control": 0, "carousel": 100}, 100)
    assert ok.status == OK
    [unknown] = judge(definition, [rule], {}, {"control": 100, "carousel": 100}, 100,
                      {"fallback_rate": "no answers"})
    assert (unknown.status, unknown.detail) == (NOT_MEASURED, "no answers")


# -- on a real prediction log -------------------------------------------------------------


def breach_stops_the_experiment(settings: Settings, smtp: SmtpServer) -> None:
    start_layout_test(settings)
    watcher = ExperimentWatcher(settings, {}, new_slot=None)  # type: ignore[arg-type]
    assert watcher.refresh()
    units = [f"visitor-{index}" for index in range(100)]
    assert {watcher.assign("homepage", unit).variant for unit in units} == \
        {"control", "carousel"}
    serve(settings, "control", 60, fallbacks=0)
    serve(settings, "carousel", 60, fallbacks=6)  # 10% against 0%: above +2 points

    [result] = check_all(settings)

    assert result.stopped and [check.metric for check in result.breaches] == ["fallback_rate"]
    record = status_of(settings)
    assert (record.status, record.actor) == (STOPPED, ACTOR)
    assert record.reason == ("guardrail breached: fallback_rate: carousel 0.1 vs control 0: "
                             "+0.1, above max_increase 0.02")
    with open_store(settings) as store:
        audit = store.audit("layout-test")[-1]
    assert (audit.action, audit.actor, audit.reason) == ("stop", ACTOR, record.reason)
    assert result.alerted == {"mail": "sent"}
    [mail] = smtp.messages
    assert "layout-test stopped by a guardrail" in mail.message["Subject"]
    assert "fallback_rate: carousel 0.1" in mail.body()
    assert watcher.refresh()  # the server's next refresh: everyone gets the defaults
    assert {watcher.assign("homepage", unit) for unit in units} == {None}


def test_a_breach_stops_the_experiment_alerts_and_the_server_serves_the_defaults(
        settings: Settings, smtp: SmtpServer) -> None:
    breach_stops_the_experiment(settings, smtp)


@pytest.mark.postgres
def test_the_same_on_postgresql(tailor_home: Path, smtp: SmtpServer, postgres_url: str) -> None:
    breach_stops_the_experiment(home_settings(tailor_home, smtp.port, database_url=postgres_url),
                                smtp)


def test_too_few_customers_is_waiting_and_nothing_stops(settings: Settings,
                                                         smtp: SmtpServer) -> None:
    start_layout_test(settings)
    serve(settings, "control", 60)
    serve(settings, "carousel", 49, fallbacks=49)  # all fallbacks, but under 50 customers
    [result] = check_all(settings)
    assert not result.stopped and {check.status for check in result.checks} == {WAITING}
    assert status_of(settings).status == RUNNING and smtp.messages == []


def test_latency_and_the_implicit_error_rate_are_judged(settings: Settings) -> None:
    start_layout_test(settings)
    serve(settings, "control", 60, latency_ms=30.2)
    serve(settings, "carousel", 60, latency_ms=80.4)
    [calm] = check_all(settings)
    assert {check.metric: (check.status, check.value) for check in calm.checks} == {
        "fallback_rate": (OK, 0.0), "latency_p99_ms": (OK, 81.0), "error_rate": (OK, 0.0)}
    serve(settings, "carousel", 60, latency_ms=150.0, fallbacks=3, errors=3, prefix="slow-")
    [result] = check_all(settings)
    assert {check.metric for check in result.breaches} == {"latency_p99_ms", "error_rate",
                                                           "fallback_rate"}
    assert "latency_p99_ms: carousel 150, above max 100" in result.stop_reason
    assert status_of(settings).status == STOPPED


@dataclass
class Bounce:
    bounce_rate: float


@dataclass
class FakeAnalysis:
    guardrails: dict[str, Bounce]
    units: dict[str, int]

    def metric(self, name: str) -> None:
        return None


def test_bounce_comes_from_the_analysis_and_is_not_measured_without_one(
        settings: Settings) -> None:
    start_layout_test(settings, [{"metric": "bounce_rate", "max_increase": 0.05}])
    serve(settings, "control", 60)
    serve(settings, "carousel", 60)
    [without] = check_all(settings, analyze=lambda settings, name: None)
    bounce = [check for check in without.checks if check.metric == "bounce_rate"]
    assert [(check.status, check.detail) for check in bounce] == \
        [(NOT_MEASURED, "no analysis available")]
    assert not without.stopped
    analysis = FakeAnalysis({"control": Bounce(0.40), "carousel": Bounce(0.52)},
                            {"control": 80, "carousel": 80})
    [result] = check_all(settings, analyze=lambda settings, name: analysis)
    assert result.stopped and result.breaches[0].detail == (
        "bounce_rate: carousel 0.52 vs control 0.4: +0.12, above max_increase 0.05")


def test_the_cli_exit_codes_and_json(settings: Settings) -> None:
    from tailor.cli import app

    def run() -> Any:
        return CliRunner().invoke(app, ["experiment", "guardrails", "--json",
                                        "--home", str(settings.home_path)],
                                  env={"TAILOR_EXPERIMENTS_GUARDRAIL_MIN_UNITS": "50",
                                       "TAILOR_MAIL_RECIPIENTS": ""})

    nothing = run()
    assert nothing.exit_code == 0 and json.loads(nothing.stdout) == {"experiments": [],
                                                                     "stopped": []}
    start_layout_test(settings)
    serve(settings, "control", 60)
    serve(settings, "carousel", 60)
    calm = run()
    assert calm.exit_code == 0, calm.output
    assert json.loads(calm.stdout)["experiments"][0]["breaches"] == 0
    serve(settings, "carousel", 60, fallbacks=60, prefix="bad-")
    stopped = run()
    assert stopped.exit_code == 1
    payload = json.loads(stopped.stdout)
    assert payload["stopped"] == ["layout-test"]
    assert payload["experiments"][0]["stop_reason"].startswith("guardrail breached: ")
