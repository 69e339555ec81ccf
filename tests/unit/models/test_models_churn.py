"""Churn: labels, the horizon rule, point-in-time features, snapshots and explanations."""

import numpy as np
import pandas as pd
import pytest

from model_shops import START, shop
from tailor.models.churn import ChurnParams, fit_churn, plan_horizon, snapshot_times
from tailor.models.data import NotEnoughData
from tailor.models.feature_frames import (
    churn_labels, churn_snapshot_entities, local_churn_features,
)


def test_label_is_no_purchase_within_the_horizon() -> None:
    data = shop([("c1", "purchase", "a", 5), ("c1", "purchase", "a", 20),
                 ("c2", "purchase", "a", 6)])
    entities = churn_snapshot_entities(data, START + pd.Timedelta(days=10))
    labels = dict(zip(entities.customer_id, churn_labels(data, entities, pd.Timedelta(days=7))))
    assert labels == {"c1": 1, "c2": 1}
    labels = dict(zip(entities.customer_id, churn_labels(data, entities, pd.Timedelta(days=15))))
    assert labels == {"c1": 0, "c2": 1}


def test_only_customers_who_bought_before_the_snapshot_are_scored() -> None:
    data = shop([("buyer", "purchase", "a", 1), ("browser", "product_view", "a", 1),
                 ("late", "purchase", "a", 20)])
    entities = churn_snapshot_entities(data, START + pd.Timedelta(days=10))
    assert entities.customer_id.tolist() == ["buyer"]


def test_a_short_history_shortens_the_horizon_and_says_so() -> None:
    horizon = plan_horizon(90, 12.0, "the cutoff")
    assert horizon.used_days == 12.0 and horizon.requested_days == 90
    assert "covers 12.0 days, less than the 90-day churn horizon" in horizon.note
    assert plan_horizon(90, 120.0, "the cutoff").note == ""
    with pytest.raises(NotEnoughData, match="only 0.5 days"):
        plan_horizon(90, 0.5, "the cutoff")


def test_features_never_see_events_after_the_snapshot() -> None:
    rows = [("c1", "purchase", "a", 1, "s1"), ("c1", "page_view", None, 3, "s2"),
            ("c1", "email_open", None, 4)]
    moment = START + pd.Timedelta(days=5)
    entities = pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [moment]})
    before = local_churn_features(shop(rows), entities)
    after = local_churn_features(shop(rows + [("c1", "purchase", "b", 6, "s3")]), entities)
    pd.testing.assert_frame_equal(before, after)
    row = before.iloc[0]
    assert row.orders_lifetime == 1 and row.email_opens_90d == 1
    assert row.days_since_last_purchase == pytest.approx(4.0)
    assert row.days_since_last_visit == pytest.approx(1.0)


def test_snapshots_are_a_step_apart_at_midnight_after_enough_history() -> None:
    data = shop([("c1", "page_view", None, day + 0.5) for day in range(60)])
    horizon = plan_horizon(10, 10, "end")
    params = ChurnParams(snapshots=10, snapshot_step_days=7, min_history_days=14)
    times = snapshot_times(data, data.end, horizon, params)
    assert times == sorted(times) and all(moment == moment.floor("D") for moment in times)
    assert np.diff(times).tolist() == [pd.Timedelta(days=7)] * (len(times) - 1)
    assert times[0] >= data.start + pd.Timedelta(days=14)
    assert times[-1] <= data.end - pd.Timedelta(days=10)


def _loyal_and_lapsing_shop():
    """Loyal customers buy weekly; lapsing ones bought twice early and then drifted away."""
    rows = []
    for n in range(60):
        rows += [(f"loyal{n}", "purchase", "a", day + n % 5, None, f"l{n}-{day}")
                 for day in range(0, 84, 7)]
        rows += [(f"gone{n}", "purchase", "a", day, None, f"g{n}-{day}") for day in (n % 9, 12)]
        rows += [(f"gone{n}", "page_view", None, 20 + n % 10)]
    return shop(rows)


def test_churn_model_separates_loyal_from_lapsing_customers() -> None:
    data = _loyal_and_lapsing_shop()
    model = fit_churn(data, ChurnParams(horizon_days=14, snapshots=4, min_history_days=14))
    scored = model.score(data, data.end)
    loyal = scored[scored.customer_id.str.startswith("loyal")].churn_probability.mean()
    gone = scored[scored.customer_id.str.startswith("gone")].churn_probability.mean()
    assert gone > 0.7 > loyal
    assert scored.high_risk.equals(scored.churn_probability > 0.7)
    top = scored.iloc[0].top_features
    assert "=" in top and "(+" in top
    assert set(scored.columns) == {"customer_id", "churn_probability", "high_risk",
                                   "top_features"}
