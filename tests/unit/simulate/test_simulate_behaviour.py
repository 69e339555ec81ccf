"""The shared shopper behaviour model, function by function (hand-made inputs, known answers)."""

from __future__ import annotations

import numpy as np
import pytest

from tailor.simulate import ShopConfig, behaviour, build_shop_state
from tailor.simulate.taxonomy import ABANDON_CAUSES, DEVICES, INCENTIVES

MOBILE, DESKTOP = DEVICES.index("mobile"), DEVICES.index("desktop")
NONE, TEN_OFF, FREE_SHIPPING = (INCENTIVES.index(name)
                                for name in ("none", "10_off", "free_shipping"))


def _hazards(**changes: object) -> np.ndarray:
    """Hazards of one reference cart (desktop, $120, afternoon, 3 past orders), with changes."""
    cart = dict(cart_value=np.array([120.0]), device=np.array([DESKTOP]),
                price_sensitivity=np.array([1.0]), hesitancy=np.array([1.0]),
                past_orders=np.array([3]), hour=np.array([15]), searched=np.array([False]),
                incentive=np.array([NONE]))
    cart.update({key: np.array([value]) for key, value in changes.items()})
    return behaviour.abandonment_hazards(**cart)


def _p_abandon(hazards: np.ndarray) -> float:
    return float(behaviour.draw_abandonment(hazards, np.random.default_rng(0))[3][0])


def test_abandonment_rises_with_mobile_price_night_and_newness() -> None:
    reference = _p_abandon(_hazards())
    assert _p_abandon(_hazards(device=MOBILE)) > reference
    assert _p_abandon(_hazards(price_sensitivity=3.0)) > reference
    assert _p_abandon(_hazards(hour=3)) > reference
    assert _p_abandon(_hazards(past_orders=0)) > reference
    assert _p_abandon(_hazards(searched=True)) < reference


def test_incentives_remove_the_causes_they_address() -> None:
    cause = {name: index for index, name in enumerate(ABANDON_CAUSES)}
    small_cart = _hazards(cart_value=20.0)
    assert small_cart[0, cause["shipping_cost"]] > _hazards()[0, cause["shipping_cost"]]
    assert _hazards(cart_value=20.0, incentive=FREE_SHIPPING)[0, cause["shipping_cost"]] == 0.0
    discounted = _hazards(incentive=TEN_OFF)
    assert discounted[0, cause["price"]] == pytest.approx(0.4 * _hazards()[0, cause["price"]])
    assert _p_abandon(discounted) < _p_abandon(_hazards())


def test_abandonment_causes_follow_the_hazards() -> None:
    hazards = np.tile([[0.0, 0.0, 3.0, 0.0, 1.0]], (20_000, 1))
    abandoned, cause, reached, _ = behaviour.draw_abandonment(hazards, np.random.default_rng(1))
    causes = cause[abandoned]
    assert set(np.unique(causes)) == {2, 4}
    assert np.mean(causes == 2) == pytest.approx(0.75, abs=0.02)
    assert reached[abandoned & (cause == 2)].all()  # payment forms fail at checkout
    assert not reached[abandoned & (cause == 4)].any()
    assert (cause[~abandoned] == -1).all()


def test_slate_clicks_favour_relevant_products_and_top_slots() -> None:
    rng = np.random.default_rng(2)
    relevance = np.where(np.arange(10) < 5, 6.0, -2.0)[None, :].repeat(20_000, axis=0)
    valid = np.ones_like(relevance, bool)
    position, clicked_relevance = behaviour.slate_clicks(relevance, valid, rng)
    counts = np.bincount(position[position >= 0], minlength=10)
    assert counts[:5].sum() > 10 * counts[5:].sum()
    assert counts[0] > counts[4]
    assert np.isneginf(clicked_relevance[position < 0]).all()
    none_valid = behaviour.slate_clicks(relevance, np.zeros_like(relevance, bool), rng)[0]
    assert (none_valid == -1).all()


def test_products_are_viewed_in_proportion_to_their_appeal() -> None:
    state = build_shop_state(ShopConfig(n_customers=5, n_products=200, seed=3))
    subcategory = next(s for s, members in enumerate(state.catalogue.members) if len(members) >= 3)
    members = state.catalogue.members[subcategory]
    customer = np.zeros(60_000, np.int32)
    drawn = behaviour.sample_products(state, customer, np.full(60_000, subcategory, np.int16),
                                      np.random.default_rng(4))
    logits = behaviour.item_logit_matrix(state.catalogue, state.customers, customer[:1], members)[0]
    expected = np.exp(logits) / np.exp(logits).sum()
    observed = np.array([(drawn == product).mean() for product in members])
    assert np.abs(observed - expected).max() < 0.015


def test_activity_ramps_down_before_churn() -> None:
    state = build_shop_state(ShopConfig(n_customers=50, n_products=40, seed=1))
    customers = state.customers
    customers.churn_day[:] = 40.0
    customers.decay_days[:] = 20.0
    ramp = [behaviour.activity_ramp(customers, day)[0] for day in (0, 20, 30, 39, 40, 45)]
    assert ramp[:2] == [1.0, 1.0]
    assert 1.0 > ramp[2] > ramp[3] > 0.0
    assert ramp[4:] == [0.0, 0.0]
