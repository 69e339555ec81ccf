"""The checkout offer at request time: P(abandon) of this cart and the incentive, if any.

Reads nothing (a `CheckoutScorer` wraps a loaded `CheckoutModel`; the pipeline hands it
the request's cart, the customer's online `checkout` features and the request time).
Writes nothing.

The row a cart is scored on (`model_row`) holds every number of the online `checkout`
service under its own name (a model trained from the feature store reads exactly those),
and then, overriding the store where both have a value:

    session_cart_value, _items, _products,    the request's cart: it is the cart as it is
    session_max_item_price                    now (price x quantity; a line without a price
                                              takes the catalogue's)
    session_cart_removes                      0 (the request carries the net cart)
    device_mobile/_desktop/_tablet            session_device_type (else the customer's
                                              device_type), one-hot
    hour_of_day, day_of_week, is_weekend      the request time, UTC

A model trained on locally computed features (`feature_frames.CHECKOUT_FEATURES`, when
the shop has no feature store) also finds its three names that the store spells
differently: carts_before <- carts_90d (training counts every earlier cart),
cart_abandonment_rate <- cart_abandonment_rate_90d, days_since_first_seen <-
days_since_signup (the nearest served feature).

P(abandon) is the model's calibrated probability of its trees' margin; for the checkout
model's single rows the trees are walked in Python (`tailor.models.tree_walk`: the same
margins as XGBoost's `inplace_predict`, to the bit, at a fraction of its CPU per call), and
XGBoost predicts when the walk cannot reproduce the trees.

The incentive follows the model's policy (`tailor.models.checkout`), cart by cart: the
incentive with the best positive expected gain when P(abandon) is above the threshold and
its expected cost fits the policy's budget. The policy's budget caps one call, i.e. one
cart here; the daily budget over every request is the pipeline's (`tailor.serving.budget`),
which may withdraw the incentive (`without_incentive`).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence, cast

import numpy as np

from tailor.serving.schemas import CartLine, Offer

NO_OFFER: Offer = "none"
OFFER_LABELS = {"10_off": "10% off", "free_shipping": "free shipping"}
DEVICES = ("mobile", "desktop", "tablet")
UNKNOWN_DEVICE = "unknown"
# Names of the locally trained model -> the online feature it is read from.
LOCAL_NAMES: dict[str, str] = {
    "carts_before": "carts_90d",
    "cart_abandonment_rate": "cart_abandonment_rate_90d",
    "days_since_first_seen": "days_since_signup",
}


@dataclass(frozen=True)
class CartFacts:
    """What the request's cart says; `unpriced` counts lines with no known price."""

    value: float
    items: float
    products: int
    max_price: float
    unpriced: int


def cart_facts(cart: Sequence[CartLine], price_of: Callable[[str], float | None]) -> CartFacts:
    """Value, quantity, distinct products and top unit price of a cart.

    Args:
        cart: the request's lines.
        price_of: the catalogue price of a product (None when unknown), for lines
            without a price.
    """
    value, items, top, unpriced = 0.0, 0.0, math.nan, 0
    for line in cart:
        price = line.price if line.price is not None else price_of(line.product_id)
        items += line.quantity
        if price is None:
            unpriced += 1
            continue
        value += price * line.quantity
        top = price if math.isnan(top) else max(top, price)
    return CartFacts(value, items, len({line.product_id for line in cart}), top, unpriced)


def _number(value: Any) -> float | None:
    """A feature value as a float (booleans as 0/1); None for text, lists and missing values."""
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return float(value)
    return None


def model_row(cart: CartFacts, features: Mapping[str, Any], moment: datetime) -> dict[str, float]:
    """The features of one cart (see the module docstring for where each comes from)."""
    row = {name: number for name, value in features.items()
           if (number := _number(value)) is not None}
    for name, source in LOCAL_NAMES.items():
        row.setdefault(name, row.get(source, math.nan))
    device = str(features.get("session_device_type") or UNKNOWN_DEVICE)
    if device == UNKNOWN_DEVICE:
        device = str(features.get("device_type") or UNKNOWN_DEVICE)
    row.update({f"device_{name}": float(device == name) for name in DEVICES})
    row.update(session_cart_value=cart.value, session_cart_items=cart.items,
               session_cart_products=float(cart.products), session_max_item_price=cart.max_price,
               session_cart_removes=0.0, hour_of_day=float(moment.hour),
               day_of_week=float(moment.weekday()), is_weekend=float(moment.weekday() >= 5))
    return row


@dataclass(frozen=True)
class Decision:
    """The answer for one cart."""

    p_abandon: float
    offer: Offer
    expected_gain: float
    reason: str
    expected_cost: float = 0.0


class CheckoutScorer:
    """P(abandon) and the incentive for carts, with one fitted checkout model.

    Args:
        model: a fitted `tailor.models.checkout.CheckoutModel`.
    """

    def __init__(self, model: Any) -> None:
        from tailor.models.checkout import INCENTIVES, incentive_gain, incentive_gains

        from tailor.models.tree_walk import TreeWalker

        self.model = model
        self.feature_names: list[str] = list(model.classifier.feature_names)
        self.incentives: tuple[str, ...] = INCENTIVES
        self._gains = incentive_gains
        self._gain = incentive_gain
        booster = model.classifier.booster
        # None (XGBoost scores every row) for a constant model or trees it cannot reproduce
        self.walker = TreeWalker.build(booster, len(self.feature_names)) \
            if booster is not None else None

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Rows as the classifier's float matrix (columns in its feature order)."""
        return np.array([[row.get(name, math.nan) for name in self.feature_names]
                         for row in rows], dtype=np.float32)

    def probabilities(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Calibrated P(abandon) per row: the trees walked in Python when the walker could
        be built (the same margins, a tenth of the CPU for one row), else XGBoost's."""
        values = self.matrix(rows)
        classifier = self.model.classifier
        if self.walker is None or not len(values):
            return classifier.predict_proba_values(values)
        return classifier.calibrated(self.walker.margins(values))

    def decide(self, rows: Sequence[Mapping[str, float]]) -> list[Decision]:
        """One decision per row (each cart on its own: a batch shares no budget)."""
        if len(rows) == 1 and self.walker is not None:
            try:
                return [self._decide_one(rows[0])]
            except OverflowError:  # a value beyond float32: the arrays make it inf, as XGBoost
                pass
        probability = self.probabilities(rows)
        values = np.array([row["session_cart_value"] for row in rows], dtype=float)
        gains, costs = self._gains(values, probability, self.model.policy)
        return [self._decision(float(p), float(value), gains[index].tolist(),
                               costs[index].tolist())
                for index, (p, value) in enumerate(zip(probability, values))]

    def _decide_one(self, row: Mapping[str, float]) -> Decision:
        """`decide` for one cart in Python floats: the same probability (the row's values
        rounded to float32 as in `matrix`, the same walk and calibration) and the same gains
        as the array path, at a fraction of its calls."""
        values = array("f", [row.get(name, math.nan) for name in self.feature_names]).tolist()
        margin = self.walker.margin(values)
        p = float(self.model.classifier.calibrated(np.float32(margin)))
        value = float(row["session_cart_value"])
        gains = [self._gain(value, p, self.model.policy, name) for name in self.incentives]
        return self._decision(p, value, [gain for gain, _ in gains], [cost for _, cost in gains])

    def _decision(self, p: float, value: float, gains: list[float], costs: list[float]
                  ) -> Decision:
        policy = self.model.policy
        best = _first_best(gains)
        gain, cost = gains[best], costs[best]
        offer = cast(Offer, self.incentives[best])
        label = OFFER_LABELS.get(offer, offer)
        stated = f"P(abandon) {p:.0%}"
        if p <= policy.threshold:
            return Decision(p, NO_OFFER, 0.0, f"{stated} is not above the {policy.threshold:.0%} "
                                              f"threshold: no incentive (best expected gain, "
                                              f"{label}: {gain:+.2f})")
        if gain <= 0:
            return Decision(p, NO_OFFER, 0.0, f"{stated} is above the {policy.threshold:.0%} "
                                              f"threshold, but no incentive pays off on a cart "
                                              f"of {value:.2f} (best expected gain, {label}: "
                                              f"{gain:+.2f})")
        if cost > policy.budget:
            return Decision(p, NO_OFFER, 0.0, f"{stated}; {label} would gain {gain:+.2f} but "
                                              f"its expected cost {cost:.2f} is over the budget "
                                              f"of {policy.budget:.2f}")
        return Decision(p, offer, gain, f"{stated} is above the {policy.threshold:.0%} "
                                        f"threshold; {label} has the best expected gain: "
                                        f"{gain:+.2f} per cart (expected cost {cost:.2f})", cost)


def _first_best(gains: list[float]) -> int:
    """The index `np.argmax` gives: the first NaN if any, else the first of the largest."""
    best = 0
    for index, gain in enumerate(gains):
        if gain != gain:
            return index
        if gain > gains[best]:
            best = index
    return best


def without_incentive(decision: Decision, why: str) -> Decision:
    """`decision` with its incentive withdrawn; the reason keeps the numbers and says why."""
    label = OFFER_LABELS.get(decision.offer, decision.offer)
    return Decision(decision.p_abandon, NO_OFFER, 0.0,
                    f"P(abandon) {decision.p_abandon:.0%}; {label} would gain "
                    f"{decision.expected_gain:+.2f} (expected cost {decision.expected_cost:.2f}), "
                    f"but {why}: no incentive")
