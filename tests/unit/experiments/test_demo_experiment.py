"""The demo's experiment step on a small simulated shop: a week of the personalised homepage
against bestsellers in a home of its own, analysed; run twice, it starts afresh."""

from __future__ import annotations

from pathlib import Path

from tailor.config import load_settings
from tailor.demo import DEMO_EXPERIMENT_DAYS, _run_experiment
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
    second = _run_experiment(settings, shop, state)      # the demo's home is rebuilt
    assert second == first
    assert not (tailor_home / "events.db").exists()      # the demo's own store is untouched
