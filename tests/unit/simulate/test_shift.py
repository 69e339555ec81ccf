"""The seasonal shift: tastes turn, preferences rotate, the catalogue turns over, on the
chosen day only, the same for the same seed; a bad day is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.simulate import ShopConfig, simulate_shop
from tailor.simulate.shift import SHIFT_KEPT_TASTE, apply_shift
from tailor.simulate.world import build_shop_state, stream


def test_the_shift_turns_tastes_and_the_catalogue() -> None:
    state = build_shop_state(ShopConfig(n_customers=200, n_products=80, n_days=10, seed=3))
    before = state.copy()
    apply_shift(state, stream(3, 4, 5))
    old, new = before.customers.tastes, state.customers.tastes
    cosine = (old * new).sum(axis=1) / (np.linalg.norm(old, axis=1) * np.linalg.norm(new, axis=1))
    assert np.allclose(cosine, SHIFT_KEPT_TASTE, atol=1e-4)  # mostly a new direction
    assert np.allclose(np.linalg.norm(old, axis=1), np.linalg.norm(new, axis=1), rtol=1e-4)
    assert not np.array_equal(before.customers.category_preference,
                              state.customers.category_preference)
    assert np.allclose(np.sort(before.customers.category_preference, axis=1),
                       np.sort(state.customers.category_preference, axis=1))
    retired = (before.catalogue.inventory > 0) & (state.catalogue.inventory == 0)
    relaunched = (before.catalogue.item_vectors != state.catalogue.item_vectors).any(axis=1)
    assert retired.sum() >= 10 and relaunched.sum() >= 10 and not (retired & relaunched).any()


def test_a_shifted_shop_is_the_same_before_the_shift_and_repeatable(tmp_path) -> None:
    def events(name: str, shift: int | None) -> pd.DataFrame:
        simulate_shop(ShopConfig(n_customers=150, n_products=50, n_days=8, seed=9,
                                 shift_at_day=shift, show_progress=False), tmp_path / name)
        return pd.read_parquet(tmp_path / name / "events.parquet")

    plain, shifted, again = events("plain", None), events("shifted", 5), events("again", 5)
    pd.testing.assert_frame_equal(shifted, again)
    cut = plain["timestamp"].min().normalize() + pd.Timedelta(days=5)
    before = plain["timestamp"] < cut
    # sessions running past midnight into the shift day may differ; whole days before do not
    early = plain["timestamp"] < cut - pd.Timedelta(days=1)
    pd.testing.assert_frame_equal(plain[early].reset_index(drop=True),
                                  shifted[shifted["timestamp"] < cut - pd.Timedelta(days=1)]
                                  .reset_index(drop=True))
    assert not plain[~before].reset_index(drop=True).equals(
        shifted[shifted["timestamp"] >= cut].reset_index(drop=True))


@pytest.mark.parametrize("day", [0, 8, 20])
def test_a_shift_outside_the_window_is_refused(day: int) -> None:
    with pytest.raises(ValueError, match="shift_at_day: must be between 1 and n_days - 1"):
        ShopConfig(n_days=8, shift_at_day=day)
