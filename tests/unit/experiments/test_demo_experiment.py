"""The demo's experiment step on a small simulated shop: a week of the personalised homepage
against bestsellers in a home of its own, analysed and printed; run twice, it starts afresh."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from tailor.config import load_settings
from tailor.demo import DEMO_EXPERIMENT_DAYS, _print_experiment, _run_experiment
from tailor.simulate import ShopConfig, simulate_shop


def test_the_demo_runs_and_analyses_a_week_long_experiment_again_and_again(
        tailor_home: Path) -> None:
    settings = load_settings(home=tailor_home, env={})
    shop = tailor_home / "shop"
    simulate_shop(ShopConfig(n_customers=400, n_products=80, n_days=30, seed=5), shop)
    state: dict[str, object] = {}
    first = _run_experiment(settings, shop, state)
    analysis = state["experiment"]
    assert f"for {DEMO_EXPERIMENT_DAYS} days" in first and "reports/experiments" in first
    assert set(analysis.units) == {"bestsellers", "personalised"}
    assert analysis.metric("conversion").analysis is not None
    printed = printed_experiment(state)
    for metric in ("conversion", "aov", "revenue_per_visitor"):   # the analysis is printed
        lift = analysis.metric(metric).analysis.variants[1].lift
        assert metric in printed and f"{100 * lift.relative:+.1f}%" in printed
    assert "personalised against bestsellers" in printed
    assert printed_experiment({}) == ""                   # no step, no table
    second = _run_experiment(settings, shop, state)      # the demo's home is rebuilt
    assert second == first
    assert not (tailor_home / "events.db").exists()      # the demo's own store is untouched


def printed_experiment(state: dict[str, object]) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    _print_experiment(console, state)
    return console.export_text()
