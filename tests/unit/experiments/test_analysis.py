"""The analysis on attributions built in memory (effects known by construction) and on a
home's stores: the verdict's rules, a variant without conversions, the named errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiment_definitions import make_definition
from tailor.config import load_settings
from tailor.experiments.analysis import (
    KEEP_RUNNING, NO_WINNER, SRM, WINNER, NoExposures, UnknownExperiment, analyze_attribution,
    analyze_experiment,
)
from tailor.experiments.attribution import UNIT_COLUMNS, Attribution, VariantAnswers

START = datetime(2026, 3, 2, tzinfo=timezone.utc)


def attribution(rates: dict[str, float], units_per_variant: int | dict[str, int],
                seed: int = 1, days: int = 7) -> Attribution:
    """Units with conversion at each variant's rate, one order of 50 +- noise per buyer,
    first exposed evenly over `days`."""
    rng = np.random.default_rng(seed)
    frames = []
    for variant, rate in rates.items():
        n = units_per_variant if isinstance(units_per_variant, int) \
            else units_per_variant[variant]
        converted = rng.random(n) < rate
        frames.append(pd.DataFrame({
            "unit_id": [f"{variant}-{i}" for i in range(n)], "variant": variant,
            "first_exposure": [START + timedelta(days=int(i % days), hours=1) for i in range(n)],
            "exposures": 1, "variants": 1, "converted": converted,
            "orders": converted.astype(int),
            "revenue": np.where(converted, 50 + rng.normal(0, 5, n), 0.0),
            "clicks": (rng.random(n) < 0.2).astype(int), "clicked_mails": 0,
            "sessions": 1, "bounced_sessions": (rng.random(n) < 0.4).astype(int),
            "pre_revenue": np.where(rng.random(n) < 0.1, 40.0, 0.0),
            "pre_converted": False}))
    units = pd.concat(frames, ignore_index=True)[list(UNIT_COLUMNS)]
    units["pre_converted"] = units["pre_revenue"] > 0
    answers = {variant: VariantAnswers(int((units["variant"] == variant).sum()), 0)
               for variant in rates}
    return Attribution(units, answers, START + timedelta(days=days), 24.0, 28.0)


def definition(**overrides):
    return make_definition(metrics={"primary": "conversion",
                                    "secondary": ["click_through", "bounce_rate"]},
                           **overrides)


def test_a_clear_lift_is_a_winner_and_every_figure_is_json_ready() -> None:
    result = analyze_attribution(definition(), attribution(
        {"control": 0.05, "carousel": 0.09}, 6_000), started_at=START.isoformat())
    assert result.verdict.decision == WINNER and result.verdict.winner == "carousel"
    conversion = result.metric("conversion")
    row = conversion.analysis.variants[1]
    assert row.lift.relative > 0.4 and row.lift.relative_lower > 0
    assert row.cuped is not None and row.sequential is not None
    assert row.probability_to_beat_control > 0.99
    assert conversion.adjusted_p_values["carousel"] >= conversion.decision_p_values["carousel"]
    # primary, secondary, then the brief's headline figures (fallback_rate is a guardrail
    # figure of the serving, not a metric of the units)
    assert [(m.metric, m.role) for m in result.metrics] == [
        ("conversion", "primary"), ("click_through", "secondary"), ("bounce_rate", "secondary"),
        ("aov", "reported"), ("revenue_per_visitor", "reported")]
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["verdict"]["winner"] == "carousel"
    assert {row["variant"] for row in payload["daily"]} == {"control", "carousel"}
    assert len(payload["daily"]) == 2 * 7


def test_no_difference_keeps_running_then_has_no_winner_once_over() -> None:
    units = attribution({"control": 0.05, "carousel": 0.05}, 3_000, seed=3)
    running = analyze_attribution(definition(), units, started_at=START.isoformat())
    assert running.verdict.decision == KEEP_RUNNING
    stopped = analyze_attribution(definition(), units, status="stopped",
                                  started_at=START.isoformat())
    assert stopped.verdict.decision == NO_WINNER


def test_too_few_units_keep_running_and_a_broken_split_says_do_not_trust() -> None:
    few = analyze_attribution(definition(minimum_sample=5_000),
                              attribution({"control": 0.05, "carousel": 0.5}, 1_000))
    assert few.verdict.decision == KEEP_RUNNING and "5,000" in few.verdict.reasons[0]
    lopsided = analyze_attribution(definition(), attribution(
        {"control": 0.05, "carousel": 0.05}, {"control": 3_000, "carousel": 2_000}))
    assert lopsided.verdict.decision == SRM and lopsided.srm["mismatch"]


def test_a_variant_without_conversions_is_analysed_and_its_aov_is_explained() -> None:
    result = analyze_attribution(definition(), attribution(
        {"control": 0.05, "carousel": 0.0}, 2_000))
    conversion = result.metric("conversion")
    assert conversion.values["carousel"] == 0.0 and conversion.analysis is not None
    assert conversion.analysis.variants[1].lift.relative == pytest.approx(-1.0)
    aov = result.metric("aov")
    assert aov.analysis is None and "no orders in carousel" in aov.problem
    assert result.verdict.decision == WINNER and result.verdict.winner == "control"
    json.dumps(result.to_dict())


def test_a_guardrail_breach_keeps_a_better_variant_from_winning() -> None:
    units = attribution({"control": 0.05, "carousel": 0.09}, 6_000)
    carousel = units.units["variant"] == "carousel"
    units.units.loc[carousel, "bounced_sessions"] = 1   # every carousel session bounces
    result = analyze_attribution(
        definition(guardrails=[{"metric": "bounce_rate", "max_increase": 0.05}]), units,
        started_at=START.isoformat())
    assert result.guardrails["carousel"].bounce_rate == 1.0
    assert result.guardrail_breaches["carousel"]
    assert result.verdict.decision != WINNER and "guardrail" in result.verdict.reasons[-1]


def test_unknown_experiment_and_no_exposures_are_named(tailor_home: Path) -> None:
    from tailor.experiments.state import open_store

    settings = load_settings(home=tailor_home, env={})
    with pytest.raises(UnknownExperiment, match="nope: no such experiment"):
        analyze_experiment(settings, "nope")
    with open_store(settings) as store:
        store.create(make_definition(), "tests")
        store.start(make_definition(), "tests", "go")
    with pytest.raises(NoExposures, match="layout-test: no exposure"):
        analyze_experiment(settings, "layout-test")
