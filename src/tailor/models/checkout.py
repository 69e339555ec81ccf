"""The checkout model: P(abandon | cart, session, customer), and the incentive policy on top.

Reads and writes nothing (fits on a `ShopData`). One training row per session that added to
the cart, described as the cart stood before checkout (see `feature_frames.cart_snapshots`);
label 1 when the session bought nothing. Carts that were offered an incentive are left out
of the P(abandon) fit (the offer changed their outcome) and used instead to estimate how
much each incentive lowers abandonment.

Incentive policy: for a cart of value v with P(abandon) p, offering incentive i lowers the
abandonment to p * (1 - uplift_i). Its expected margin gain is
    (p - p_i) * v * margin_rate          (margin of the carts it recovers)
  - (1 - p_i) * cost_i                   (paid on every order that completes with it)
with cost = discount_rate * v for "10_off" and shipping_cost for "free_shipping". A cart gets
the incentive with the best positive gain when p is above the threshold, best gains first,
until the expected cost reaches the budget.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tailor.models.classifier import (
    BoostingParams, CalibratedClassifier, RoundReporter, fit_classifier, numeric_feature_names,
)
from tailor.models.constants import DEFAULT_CHECKOUT_THRESHOLD
from tailor.models.data import NotEnoughData, ShopData
from tailor.models.feature_frames import (
    CHECKOUT_KEYS, DEVICE_TYPES, add_device_columns, cart_snapshots, checkout_features,
)

log = logging.getLogger(__name__)

INCENTIVES: tuple[str, ...] = ("10_off", "free_shipping")
NO_INCENTIVE = "none"
MIN_CARTS = 20


@dataclass(frozen=True)
class CheckoutParams(BoostingParams):
    """XGBoost hyper-parameters, the operating threshold and the incentive economics."""

    threshold: float = DEFAULT_CHECKOUT_THRESHOLD
    margin_rate: float = 0.30
    discount_rate: float = 0.10
    shipping_cost: float = 5.99
    budget: float = 500.0
    uplift_prior: float = 0.10
    uplift_prior_strength: float = 200.0


@dataclass(frozen=True)
class IncentivePolicy:
    """When and which incentive to offer; `uplift` is the relative drop in P(abandon)."""

    threshold: float = DEFAULT_CHECKOUT_THRESHOLD
    margin_rate: float = 0.30
    discount_rate: float = 0.10
    shipping_cost: float = 5.99
    budget: float = 500.0
    uplift: dict[str, float] = field(default_factory=lambda: {name: 0.10 for name in INCENTIVES})


def incentive_gain(cart_value: float, probability: float, policy: IncentivePolicy,
                   incentive: str) -> tuple[float, float]:
    """Expected margin gain and expected cost of one incentive on one cart: `incentive_gains`
    for a single cart in Python floats (the same operations in the same order, so the same
    doubles), without the dozens of array calls that cost more than the sums for one row."""
    value = 0.0 if math.isnan(cart_value) else \
        max(min(cart_value, sys.float_info.max), -sys.float_info.max)  # as np.nan_to_num
    lowered = probability * (1.0 - policy.uplift.get(incentive, 0.0))
    unit_cost = value * policy.discount_rate if incentive == "10_off" else policy.shipping_cost
    cost = (1.0 - lowered) * unit_cost
    return (probability - lowered) * value * policy.margin_rate - cost, cost


def incentive_gains(cart_value: np.ndarray, probability: np.ndarray, policy: IncentivePolicy
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Expected margin gain and expected cost of each incentive (columns in `INCENTIVES` order)."""
    value = np.nan_to_num(np.asarray(cart_value, dtype=float))
    probability = np.asarray(probability, dtype=float)
    gains, costs = [], []
    for incentive in INCENTIVES:
        lowered = probability * (1.0 - policy.uplift.get(incentive, 0.0))
        unit_cost = value * policy.discount_rate if incentive == "10_off" else \
            np.full(len(value), policy.shipping_cost)
        cost = (1.0 - lowered) * unit_cost
        gains.append((probability - lowered) * value * policy.margin_rate - cost)
        costs.append(cost)
    return np.column_stack(gains), np.column_stack(costs)


def choose_incentives(carts: pd.DataFrame, policy: IncentivePolicy) -> pd.DataFrame:
    """The offer for each cart: none, 10% off or free shipping, within the budget.

    Args:
        carts: columns cart_value and abandon_probability.
        policy: threshold, margins, costs, uplifts and the budget.

    Returns:
        `carts` with incentive, expected_gain and expected_cost added.
    """
    gains, costs = incentive_gains(carts["cart_value"].to_numpy(),
                                   carts["abandon_probability"].to_numpy(), policy)
    best = gains.argmax(axis=1)
    best_gain = gains[np.arange(len(carts)), best]
    best_cost = costs[np.arange(len(carts)), best]
    eligible = (carts["abandon_probability"].to_numpy() > policy.threshold) & (best_gain > 0)
    order = np.argsort(-np.where(eligible, best_gain, -np.inf), kind="stable")
    spent, offered = 0.0, np.zeros(len(carts), dtype=bool)
    for row in order:
        if not eligible[row] or spent + best_cost[row] > policy.budget:
            continue
        offered[row], spent = True, spent + best_cost[row]
    result = carts.copy()
    result["incentive"] = np.where(offered, np.asarray(INCENTIVES, dtype=object)[best],
                                   NO_INCENTIVE)
    result["expected_gain"] = np.where(offered, best_gain, 0.0)
    result["expected_cost"] = np.where(offered, best_cost, 0.0)
    return result


def estimate_uplift(snapshots: pd.DataFrame, prior: float, strength: float
                    ) -> tuple[dict[str, float], dict[str, int]]:
    """Relative drop in abandonment per incentive, shrunk towards `prior`.

    uplift_i = 1 - abandon_rate(offered i) / abandon_rate(offered nothing), averaged with
    `prior` weighted by `strength` pseudo-carts (so a handful of offers cannot swing it),
    clipped to [0, 0.9].

    Returns:
        (uplift per incentive, carts offered each incentive).
    """
    plain = snapshots[snapshots["incentive"] == NO_INCENTIVE]["label"]
    base = plain.mean() if len(plain) else np.nan
    uplift, counts = {}, {}
    for incentive in INCENTIVES:
        offered = snapshots[snapshots["incentive"] == incentive]["label"]
        counts[incentive] = int(len(offered))
        observed = 1.0 - offered.mean() / base if len(offered) and base > 0 else prior
        mixed = (len(offered) * observed + strength * prior) / (len(offered) + strength)
        uplift[incentive] = float(np.clip(mixed, 0.0, 0.9))
    return uplift, counts


@dataclass
class CheckoutModel:
    """A fitted checkout model; build with `fit_checkout`."""

    params: CheckoutParams
    classifier: CalibratedClassifier
    policy: IncentivePolicy
    offers_seen: dict[str, int]
    trained_until: pd.Timestamp
    training_rows: int

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated P(abandon) per cart.

        `features` holds the feature columns the model was fitted on (for a model trained
        from the feature store: the `checkout` service's features, as the online reader
        returns them); the `device_<type>` one-hots are derived from session_device_type
        (and device_type) when they are not given.
        """
        if any(f"device_{name}" not in features for name in DEVICE_TYPES):
            features = add_device_columns(features.copy())
        return self.classifier.predict_proba(features)

    def decide(self, features: pd.DataFrame) -> pd.DataFrame:
        """P(abandon) and the incentive for each cart (session_cart_value is the cart value)."""
        carts = pd.DataFrame({"cart_value": features["session_cart_value"].to_numpy(),
                              "abandon_probability": self.predict_proba(features)},
                             index=features.index)
        return choose_incentives(carts, self.policy)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """MLflow pyfunc entry: cart feature rows -> abandon_probability, incentive, gains."""
        decided = self.decide(frame)
        keys = frame[["session_key"]] if "session_key" in frame else frame.iloc[:, :0]
        return pd.concat([keys.reset_index(drop=True), decided.reset_index(drop=True)], axis=1)

    def input_example(self) -> pd.DataFrame:
        row = {name: 0.0 for name in self.classifier.feature_names}
        row.update({"session_cart_value": 42.5, "session_cart_items": 2.0, "hour_of_day": 21.0,
                    "device_mobile": 1.0})
        return pd.DataFrame([{"session_key": "s-example", **row}])


def checkout_frame(data: ShopData) -> pd.DataFrame:
    """Every cart snapshot with its features and label.

    The frame is cached on `data` (tuning, holdout and the final fit all reuse it).

    Raises:
        NotEnoughData: fewer than `MIN_CARTS` sessions added to the cart.
    """
    if "checkout_frame" not in data.cache:
        data.cache["checkout_frame"] = _build_checkout_frame(data)
    return data.cache["checkout_frame"]


def _build_checkout_frame(data: ShopData) -> pd.DataFrame:
    snapshots = cart_snapshots(data)
    if len(snapshots) < MIN_CARTS:
        raise NotEnoughData(f"checkout: {len(snapshots)} session(s) added to the cart; the model "
                            f"needs at least {MIN_CARTS} (data without add_to_cart events, e.g. "
                            "purchases only, cannot train it)")
    return checkout_features(data, snapshots)


def fit_checkout_frame(frame: pd.DataFrame, params: CheckoutParams,
                       report: RoundReporter | None = None) -> CheckoutModel:
    """Fit on a `checkout_frame` (already restricted to the training period)."""
    plain = frame[frame["incentive"] == NO_INCENTIVE]
    names = numeric_feature_names(frame, CHECKOUT_KEYS)
    classifier = fit_classifier(plain, names, "label", "event_timestamp", params.classifier(),
                                report)
    uplift, counts = estimate_uplift(frame, params.uplift_prior, params.uplift_prior_strength)
    policy = IncentivePolicy(params.threshold, params.margin_rate, params.discount_rate,
                             params.shipping_cost, params.budget, uplift)
    log.info("checkout: %d carts (%d with an offer); uplift %s", len(frame),
             len(frame) - len(plain), {k: round(v, 3) for k, v in uplift.items()})
    return CheckoutModel(params, classifier, policy, counts, frame["event_timestamp"].max(),
                         len(plain))


def fit_checkout(data: ShopData, params: CheckoutParams = CheckoutParams(),
                 report: RoundReporter | None = None) -> CheckoutModel:
    """Fit the checkout model on every cart in `data`."""
    return fit_checkout_frame(checkout_frame(data), params, report)
