"""The closed loop: shoppers answer a policy's slates and offers with the shared behaviour model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tailor.events.schema import EVENT_COLUMNS, validate_events
from tailor.simulate import (
    PopularityPolicy,
    RandomPolicy,
    ShopConfig,
    ShopperPolicy,
    TrueAffinityPolicy,
    build_shop_state,
    load_shop_state,
    run_closed_loop,
    simulate_shop,
)

CONFIG = ShopConfig(n_customers=400, n_products=120, n_days=14, seed=4)


@pytest.fixture(scope="module")
def written_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loop")
    simulate_shop(CONFIG, out)
    return out


class SplitPolicy:
    """Even-numbered customers get `even`, odd ones `odd` (an A/B split by customer)."""

    def __init__(self, even: ShopperPolicy, odd: ShopperPolicy) -> None:
        self.even, self.odd = even, odd

    def _pick(self, customer_id: str) -> ShopperPolicy:
        return self.even if int(customer_id[1:]) % 2 == 0 else self.odd

    def recommend(self, customer_id: str, context: dict[str, Any], k: int) -> list[str]:
        return self._pick(customer_id).recommend(customer_id, context, k)

    def offer(self, customer_id: str, session: dict[str, Any]) -> str | None:
        return self._pick(customer_id).offer(customer_id, session)


class Offering(PopularityPolicy):
    """Bestsellers, and the same offer for every cart."""

    def __init__(self, state: Any, incentive: str | None) -> None:
        super().__init__(state)
        self.incentive = incentive
        self.sessions_seen: list[dict[str, Any]] = []

    def offer(self, customer_id: str, session: dict[str, Any]) -> str | None:
        self.sessions_seen.append(session)
        return self.incentive


def _click_through(events: pd.DataFrame, even: bool) -> float:
    parity = events["customer_id"].str[1:].astype(int) % 2 == (0 if even else 1)
    group = events[parity]
    return (group["event_type"] == "click").sum() / group["session_id"].nunique()


def test_true_affinity_recommendations_get_more_clicks_than_random(written_shop: Path) -> None:
    state = load_shop_state(written_shop)
    policy = SplitPolicy(TrueAffinityPolicy(state), RandomPolicy(state, seed=1))
    events = run_closed_loop(state, policy, days=5, seed=1)
    oracle, random = _click_through(events, even=True), _click_through(events, even=False)
    assert oracle > 2 * random
    assert isinstance(TrueAffinityPolicy(state), ShopperPolicy)


def test_closed_loop_events_follow_the_contract(written_shop: Path) -> None:
    state = load_shop_state(written_shop)
    events = run_closed_loop(state, PopularityPolicy(state), days=3, seed=2)
    assert tuple(events.columns) == EVENT_COLUMNS
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"
    assert events["timestamp"].is_monotonic_increasing
    assert events["timestamp"].min() >= pd.Timestamp(CONFIG.start, tz="UTC") + pd.Timedelta(
        days=CONFIG.n_days)
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=400)
    assert validate_events(events, now=later).rejected.empty
    clicks = events[events["event_type"] == "click"]
    assert len(clicks) > 0
    for row in clicks.itertuples():
        shown = json.loads(row.properties)
        assert shown["slate"][shown["position"]] == row.product_id
    bulk = pd.read_parquet(written_shop / "events.parquet", columns=["event_id", "session_id"])
    assert not set(events["event_id"]) & set(bulk["event_id"])
    assert not set(events["session_id"].dropna()) & set(bulk["session_id"].dropna())


def test_incentives_lower_abandonment(written_shop: Path) -> None:
    start = load_shop_state(written_shop)
    rates = {}
    for incentive in (None, "10_off"):
        state = start.copy()
        policy = Offering(state, incentive)
        run_closed_loop(state, policy, days=4, seed=3)
        log = pd.concat(state.session_log)
        rates[incentive] = log.loc[log["carted"], "abandoned"].mean()
        seen = set(policy.sessions_seen[0])
        assert {"cart_value", "n_items", "product_ids", "device_type"} <= seen
    assert rates["10_off"] < rates[None] - 0.05


def test_same_state_policy_and_seed_give_the_same_events(written_shop: Path) -> None:
    start = load_shop_state(written_shop)
    first = start.copy()
    runs = [run_closed_loop(state, PopularityPolicy(state), days=2, seed=7)
            for state in (first, start.copy())]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert first.day == CONFIG.n_days + 2 and start.day == CONFIG.n_days


def test_bad_policy_answers_are_named() -> None:
    state = build_shop_state(CONFIG)

    class Unknown(PopularityPolicy):
        def recommend(self, customer_id: str, context: dict[str, Any], k: int) -> list[str]:
            return ["p99999"]

    with pytest.raises(ValueError, match="product_id 'p99999'"):
        run_closed_loop(state, Unknown(state), days=1, seed=0)
    with pytest.raises(ValueError, match="offer: '50_off'"):
        run_closed_loop(state, Offering(state, "50_off"), days=3, seed=0)


def test_loading_a_missing_shop_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_shop_state(tmp_path)


def test_loaded_state_continues_the_written_history(written_shop: Path) -> None:
    state = load_shop_state(written_shop)
    events = pd.read_parquet(written_shop / "events.parquet", columns=["event_type", "product_id"])
    sold = events[events["event_type"] == "purchase"].groupby("product_id").size()
    assert state.day == CONFIG.n_days
    assert sold.sum() == state.purchases_per_product.sum()
    assert np.array_equal(
        state.purchases_per_product[np.flatnonzero(state.purchases_per_product)],
        sold.reindex(state.catalogue.product_ids[state.purchases_per_product > 0]).to_numpy())
