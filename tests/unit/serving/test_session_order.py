"""The session re-ranking rule on its own: hand-worked slot assignments."""

from __future__ import annotations

from tailor.serving.homepage import session_order

B, O = True, False  # a candidate in a browsed category, or not


def test_nothing_browsed_keeps_the_model_order() -> None:
    assert session_order([O] * 6, 4, 0.3) == [(0, False), (1, False), (2, False), (3, False)]


def test_browsed_products_are_promoted_into_slots_4_7_and_10() -> None:
    candidates = [O] * 12 + [B, B, B, B]
    order = session_order(candidates, 10, 0.3)
    assert [index for index, _ in order] == [0, 1, 2, 12, 3, 4, 13, 5, 6, 14]
    assert [slot for slot, (_, promoted) in enumerate(order) if promoted] == [3, 6, 9]


def test_browsed_products_the_model_ranks_high_count_and_are_not_moved() -> None:
    candidates = [B, O, O, O, B, O, O, O, O, O, B]
    order = session_order(candidates, 10, 0.3)
    # Slot 0 already satisfies the first promotion; slot 4 is browsed by the model itself.
    assert order[:5] == [(0, False), (1, False), (2, False), (3, False), (4, False)]
    # Two browsed in the first 7 meets floor(0.3 x 7); the tenth slot needs a third.
    assert [index for index, _ in order] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]
    assert order[9] == (10, True)


def test_a_share_of_one_shows_browsed_products_while_there_are_any() -> None:
    assert session_order([O, B, O, B], 4, 1.0) == [(1, True), (3, True), (0, False),
                                                  (2, False)]


def test_fewer_candidates_than_slots() -> None:
    assert session_order([O, B], 10, 0.5) == [(0, False), (1, False)]
