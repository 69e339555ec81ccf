"""Checkout: cart snapshots, cart features, the incentive policy and the uplift estimate."""

import numpy as np
import pandas as pd
import pytest

from model_shops import shop
from tailor.models.checkout import (
    CheckoutParams, IncentivePolicy, choose_incentives, estimate_uplift, fit_checkout,
    INCENTIVES, fit_checkout_frame, incentive_gain, incentive_gains,
)
from tailor.models.feature_frames import add_device_columns, cart_snapshots, checkout_features


def test_the_snapshot_is_the_cart_before_checkout() -> None:
    minute = 1 / 1440
    data = shop([("c1", "product_view", "a", 0, "s1"),
                 ("c1", "add_to_cart", "a", 1 * minute, "s1", None, 20.0, 2),
                 ("c1", "add_to_cart", "b", 2 * minute, "s1", None, 5.0, 1),
                 ("c1", "remove_from_cart", "b", 3 * minute, "s1", None, 5.0, 1),
                 ("c1", "checkout_start", None, 4 * minute, "s1"),
                 ("c1", "add_to_cart", "c", 5 * minute, "s1", None, 99.0, 1),
                 ("c1", "purchase", "a", 6 * minute, "s1", "o1", 20.0, 2),
                 ("c2", "add_to_cart", "a", 0, "s2", None, 20.0, 1)])
    snapshots = cart_snapshots(data)
    first = snapshots.set_index("session_key").loc["s1"]
    assert first.label == 0 and snapshots.set_index("session_key").loc["s2"].label == 1
    features = checkout_features(data, snapshots).set_index("session_key").loc["s1"]
    assert features.session_cart_value == pytest.approx(40.0)      # 2 x 20 (+5 -5); not the 99
    assert features.session_cart_items == pytest.approx(2.0)
    assert features.session_product_views == 1
    assert features.session_cart_removes == 1


def test_customer_history_counts_only_earlier_sessions() -> None:
    data = shop([("c1", "add_to_cart", "a", 0, "s1", None, 10.0, 1),
                 ("c1", "purchase", "a", 0.01, "s1", "o1", 10.0, 1),
                 ("c1", "add_to_cart", "a", 2, "s2", None, 10.0, 1),
                 ("c1", "add_to_cart", "a", 5, "s3", None, 10.0, 1)])
    features = checkout_features(data, cart_snapshots(data)).set_index("session_key")
    assert features.loc["s1", "orders_lifetime"] == 0
    assert features.loc["s2", "orders_lifetime"] == 1
    assert features.loc["s3", "carts_before"] == 2
    assert features.loc["s3", "cart_abandonment_rate"] == pytest.approx(0.5)   # s2 abandoned
    assert features.loc["s2", "days_since_last_purchase"] == pytest.approx(2 - 0.01, abs=1e-6)


def test_expected_gains_follow_the_formula() -> None:
    policy = IncentivePolicy(threshold=0.5, margin_rate=0.3, discount_rate=0.1, shipping_cost=5.99,
                             uplift={"10_off": 0.25, "free_shipping": 0.1})
    gains, costs = incentive_gains(np.array([100.0]), np.array([0.8]), policy)
    # 10% off: abandonment 0.8 -> 0.6; gain 0.2 x 100 x 0.3 - 0.4 x 10
    assert gains[0, 0] == pytest.approx(0.2 * 100 * 0.3 - 0.4 * 10.0)
    assert costs[0, 0] == pytest.approx(4.0)
    # free shipping: 0.8 -> 0.72; gain 0.08 x 30 - 0.28 x 5.99
    assert gains[0, 1] == pytest.approx(0.08 * 30 - 0.28 * 5.99)


def test_one_carts_gain_in_floats_is_the_arrays_to_the_bit() -> None:
    policy = IncentivePolicy(uplift={"10_off": 0.17, "free_shipping": 0.06})
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.uniform(0, 900, 200), [0.0, np.nan, np.inf, -np.inf, 1e308]])
    probabilities = rng.uniform(0, 1, len(values)).astype(np.float32).astype(float)
    gains, costs = incentive_gains(values, probabilities, policy)
    for row, (value, probability) in enumerate(zip(values, probabilities)):
        for column, incentive in enumerate(INCENTIVES):
            gain, cost = incentive_gain(float(value), float(probability), policy, incentive)
            assert (gain, cost) == (gains[row, column], costs[row, column]) or \
                (np.isnan([gain, gains[row, column]]).all() and cost == costs[row, column])


def test_offers_need_risk_a_positive_gain_and_budget() -> None:
    policy = IncentivePolicy(threshold=0.5, budget=5.0, uplift={"10_off": 0.25,
                                                                "free_shipping": 0.1})
    carts = pd.DataFrame({"cart_value": [100.0, 100.0, 100.0, 5.0, 20.0],
                          "abandon_probability": [0.9, 0.8, 0.4, 0.9, 0.55]})
    decided = choose_incentives(carts, policy)
    # The riskiest cart has the best gain and takes 3.25 of the budget; the next one would
    # cost 4.00 more, over the budget; the 5.00 cart's 10% off costs 0.16 and still fits.
    # 0.4 is under the threshold; at 0.55 neither incentive pays for itself on 20.00.
    assert decided.incentive.tolist() == ["10_off", "none", "none", "10_off", "none"]
    assert decided.expected_cost.sum() == pytest.approx(3.25 + 0.1625)
    assert (decided.expected_gain[decided.incentive != "none"] > 0).all()


def test_uplift_is_shrunk_towards_the_prior() -> None:
    snapshots = pd.DataFrame({"incentive": ["none"] * 100 + ["10_off"] * 10,
                              "label": [1] * 80 + [0] * 20 + [1] * 4 + [0] * 6})
    uplift, counts = estimate_uplift(snapshots, prior=0.1, strength=10)
    # observed 1 - 0.4 / 0.8 = 0.5, mixed with 0.1 at equal weight
    assert uplift["10_off"] == pytest.approx(0.3)
    assert uplift["free_shipping"] == pytest.approx(0.1) and counts["free_shipping"] == 0


def test_checkout_model_learns_that_big_carts_are_abandoned() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for n in range(300):
        value = float(rng.choice([10.0, 200.0]))
        abandon = rng.random() < (0.85 if value > 100 else 0.25)
        session = f"s{n}"
        rows.append((f"c{n % 50}", "add_to_cart", "a", n / 10, session, None, value, 1))
        if not abandon:
            rows.append((f"c{n % 50}", "purchase", "a", n / 10 + 0.001, session, f"o{n}",
                         value, 1))
    model = fit_checkout(shop(rows), CheckoutParams(max_rounds=50))
    carts = pd.DataFrame({"session_cart_value": [10.0, 200.0]})
    probability = model.predict_proba(carts)
    assert probability[1] > 0.6 and probability[0] < 0.5
    assert probability[1] - probability[0] > 0.3
    decided = model.predict_frame(carts.assign(session_key=["small", "big"]))
    assert list(decided.columns[:2]) == ["session_key", "cart_value"]
    assert decided.set_index("session_key").loc["small", "incentive"] == "none"


def test_device_one_hots_come_from_the_session_else_the_customer() -> None:
    frame = pd.DataFrame({"session_device_type": ["mobile", "unknown", "tablet", "unknown"],
                          "device_type": ["desktop", "desktop", "mobile", "unknown"]})
    encoded = add_device_columns(frame)
    assert encoded[["device_mobile", "device_desktop", "device_tablet"]].values.tolist() == \
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_the_model_reads_a_feature_service_vector_as_served() -> None:
    """Rows shaped like the online `checkout` vector (session_device_type, no one-hots)
    score as the one-hot rows the model was fitted on."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"session_cart_value": rng.uniform(5, 200, 400),
                          "session_device_type": rng.choice(["mobile", "desktop"], 400)})
    frame = add_device_columns(frame)
    frame["label"] = (rng.random(400) < np.where(frame["device_mobile"] == 1, 0.9, 0.2)).astype(int)
    frame["event_timestamp"] = pd.date_range("2026-01-01", periods=400, freq="h", tz="UTC")
    frame["incentive"] = "none"
    model = fit_checkout_frame(frame, CheckoutParams(max_rounds=40))
    assert {"device_mobile", "device_desktop"} <= set(model.classifier.feature_names)
    served = pd.DataFrame({"session_cart_value": [50.0, 50.0],
                           "session_device_type": ["mobile", "desktop"]})
    probability = model.predict_proba(served)
    assert probability[0] > probability[1] + 0.3
    assert probability == pytest.approx(model.predict_proba(add_device_columns(served.copy())))
