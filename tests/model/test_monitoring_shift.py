"""The monitoring loop proven on the simulator: a shop whose tastes and catalogue shift on one
day, monitored as the days arrive. Before the shift nothing is retrained; after it drift is
reported, a significant drop past 5% is seen, a challenger is trained and promoted, and on the
newest days the new champion beats the pre-shift version it replaced, both scored as served
on the same customers.

About five minutes on a 2-core machine (a 1,000-customer shop, ten rounds), so it runs when
TAILOR_PROOF=1 (`make proof`), not in `make test`'s ten-minute budget; docs/operations.md shows
one run's rounds.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from shop_homes import load_events
from tailor.config import load_settings
from tailor.monitoring.rounds import run_round
from tailor.simulate import ShopConfig, simulate_shop
from tailor.training import train_models

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    os.environ.get("TAILOR_PROOF") != "1",
    reason="the five-minute monitoring proof runs with TAILOR_PROOF=1 (make proof)")]
TRAINED_DAYS, SHIFT_DAY, DAYS = 32, 44, 70
STEPS = (4, 4, 4, 2, 2, 2, 4, 4, 4, 4)  # days ingested before each round


def test_a_shift_is_caught_retrained_and_recovered(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    simulate_shop(ShopConfig(n_customers=1_000, n_products=150, n_days=DAYS, seed=5,
                             shift_at_day=SHIFT_DAY, show_progress=False), shop)
    events = pd.read_parquet(shop / "events.parquet")
    start = events["timestamp"].min().normalize()

    def days(first: int, last: int) -> Path:
        path = tmp_path / f"days_{first}_{last}.parquet"
        when = events["timestamp"]
        events[(when >= start + pd.Timedelta(days=first))
               & (when < start + pd.Timedelta(days=last))].to_parquet(path, index=False)
        return path

    settings = load_settings(home=tmp_path / "home", env={}).replace(monitoring_retrain_trials=1)
    load_events(settings, days(0, TRAINED_DAYS), products=shop / "products.csv",
                customers=shop / "customers.csv")
    [first] = train_models(settings, "homepage", trials=1)
    mlflow.set_tracking_uri(settings.tracking_uri)
    if not first.promoted:
        MlflowClient().set_registered_model_alias("tailor-homepage", "champion", first.version)
    rounds, day = [], TRAINED_DAYS
    for step in STEPS:
        load_events(settings, days(day, day + step))
        day += step
        [result] = run_round(settings, ["homepage"])
        rounds.append((day, result))
    before = [r for d, r in rounds if d <= SHIFT_DAY]
    after = [r for d, r in rounds if d > SHIFT_DAY]
    story = "\n".join(f"day {d}: v{r.champion_version} {r.decision} {r.current} {r.reason}"
                      for d, r in rounds)
    assert before and all(r.decision == "ok" for r in before), story
    caught = next((r for r in after[:3] if r.decision == "promoted"), None)
    assert caught is not None, story
    assert caught.drop > settings.monitoring_max_drop and caught.z >= 1.64, story
    assert any(d.drifted for d in caught.drift), story
    # Recovery: on the newest window (after the last promotion's data) the champion beats
    # the pre-shift version it replaced, both scored as served, on the same customers.
    from tailor.models.data import load_shop_data
    from tailor.models.evaluate import evaluate_fitted
    from tailor.monitoring.measure import load_fitted

    final = rounds[-1][1]
    assert final.champion_version != first.version, story
    data = load_shop_data(settings)
    cutoff = data.end - pd.Timedelta(days=5)
    scores = {version: evaluate_fitted("homepage", data, load_fitted("tailor-homepage", version),
                                       cutoff).primary
              for version in (first.version, final.champion_version)}
    pre_shift = np.mean([r.current for r in before if r.current is not None])
    story += f"\nlast 5 days: {scores}; v{first.version} before the shift: {pre_shift:.4f}"
    assert scores[final.champion_version] > scores[first.version], story
