"""Shop frames: derived session and order keys, and the protocol's splits."""

import pandas as pd
import pytest

from tailor.models.data import NotEnoughData, build_shop_data, default_cutoff, make_split

from model_shops import events_frame, shop


def test_missing_session_ids_split_after_thirty_minutes() -> None:
    events = events_frame([("c1", "page_view", None, 0.0), ("c1", "page_view", None, 0.01),
                           ("c1", "page_view", None, 0.1)])   # 14 min, then 2h later
    data = build_shop_data(events)
    keys = data.events["session_key"].tolist()
    assert keys[0] == keys[1] != keys[2]
    assert keys[0].startswith("derived:c1:")


def test_purchases_without_order_ids_group_by_session_or_day() -> None:
    data = shop([("c1", "purchase", "a", 0.1, "s1"), ("c1", "purchase", "b", 0.2, "s1"),
                 ("c1", "purchase", "c", 3.0), ("c1", "product_view", "a", 3.1)])
    keys = data.events["order_key"].tolist()
    assert keys[0] == keys[1] == "derived:c1:s1"
    assert keys[2] == "derived:c1:2026-01-08"
    assert keys[3] is None


def test_catalogue_gains_products_seen_only_in_events() -> None:
    data = shop([("c1", "purchase", "unknown-product", 0.0)],
                products=pd.DataFrame({"product_id": ["a"], "category": ["x"]}))
    assert set(data.products["product_id"]) == {"a", "unknown-product"}


def test_time_split_puts_the_last_fifth_in_the_test_window() -> None:
    data = shop([("c1", "page_view", None, day) for day in range(11)])
    split = make_split(data, "time")
    assert split.cutoff == default_cutoff(data) == data.start + pd.Timedelta(days=8)
    assert split.train.events["timestamp"].max() < split.cutoff
    assert len(split.test_events) == 3


def test_user_split_holds_out_each_customers_last_events() -> None:
    rows = [("c1", "page_view", None, day) for day in range(10)] + \
        [("c2", "page_view", None, day + 0.5) for day in range(5)] + [("c3", "page_view", None, 1)]
    split = make_split(shop(rows), "user")
    held_out = split.test_events.groupby("customer_id").size().to_dict()
    assert held_out == {"c1": 2, "c2": 1}          # c3 has one event: it stays in training


@pytest.mark.parametrize("cutoff, message", [("yesterday-ish", "not an ISO 8601 time"),
                                             ("2030-01-01", "outside the history")])
def test_bad_cutoffs_are_named(cutoff: str, message: str) -> None:
    data = shop([("c1", "page_view", None, day) for day in range(5)])
    with pytest.raises(ValueError, match=message):
        make_split(data, "time", cutoff)


def test_unknown_split_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="split: must be 'time' or 'user'"):
        make_split(shop([("c1", "page_view", None, 0), ("c1", "page_view", None, 1)]), "random")


def test_no_events_is_not_enough_data() -> None:
    with pytest.raises(NotEnoughData, match="no events"):
        build_shop_data(pd.DataFrame(columns=["customer_id", "event_type", "timestamp"]))
