"""The diversity rules on a ranked list's categories: one category, or mixed under a cap,
both keeping the list's order and topping up only when they must."""

from __future__ import annotations

import pytest

from tailor.serving.diversity import MIXED, SINGLE_CATEGORY, diversified, mixed_cap, short_of


def test_the_mixed_cap_is_thirty_percent_of_the_slots_at_least_one() -> None:
    assert [mixed_cap(k) for k in (1, 3, 4, 10, 20)] == [1, 1, 2, 3, 6]


def test_single_category_keeps_the_first_products_category_in_order() -> None:
    order = ["a", "b", "a", "c", "a", "a"]
    assert diversified(order, 3, SINGLE_CATEGORY) == [0, 2, 4]
    assert diversified(order, 5, SINGLE_CATEGORY) == [0, 2, 4, 5, 1]  # topped up in order
    assert short_of(order, 5, SINGLE_CATEGORY) and not short_of(order, 4, SINGLE_CATEGORY)


def test_mixed_caps_each_category_and_keeps_the_order() -> None:
    order = ["a", "a", "a", "a", "b", "b", "c", "a", "c", "d"]
    chosen = diversified(order, 4, MIXED)  # cap 2
    assert chosen == [0, 1, 4, 5]
    assert diversified(order, 10, MIXED) == [0, 1, 2, 4, 5, 6, 8, 9, 3, 7]  # cap 3, topped up
    assert short_of(order, 10, MIXED) and not short_of(order, 4, MIXED)


def test_a_list_without_enough_categories_is_filled_all_the_same() -> None:
    assert len(diversified(["a"] * 6, 5, MIXED)) == 5
    assert diversified([], 5, SINGLE_CATEGORY) == []


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="diversity"):
        diversified(["a"], 1, "random")
