"""The popularity fallback lists: what their items say, and a failed computation never
replaces the last good list. Computed from a trained home's warehouse and model:
`tests/integration/serving/test_served_fallback.py`."""

from __future__ import annotations

from tailor.serving.fallback import FallbackLists, PopularList


def test_items_skip_excluded_products_and_say_why_they_are_there() -> None:
    popular = PopularList(overall=(("p1", 1.0), ("p2", 0.5), ("p3", 0.2)),
                          by_category={"books": (("p2", 0.5), ("p3", 0.2))}, source="test")
    assert [(item.product_id, item.reason) for item in popular.items(2, exclude={"p1"})] == \
        [("p2", "popular right now"), ("p3", "popular right now")]
    assert [(item.product_id, item.reason) for item in popular.items(5, "books")] == \
        [("p2", "popular in books"), ("p3", "popular in books")]
    assert popular.items(3, "garden") == []


def test_a_failed_or_empty_computation_keeps_the_last_good_list() -> None:
    lists = FallbackLists()
    good = PopularList(overall=(("p1", 1.0),), source="first")
    assert lists.update(lambda: good) and lists.current is good

    def broken() -> PopularList:
        raise FileNotFoundError("warehouse is being rebuilt")

    assert not lists.update(broken)
    assert lists.current is good and "warehouse is being rebuilt" in lists.last_error
    assert not lists.update(lambda: PopularList(source="empty now"))
    assert lists.current is good and "no products" in lists.last_error
    newer = PopularList(overall=(("p9", 1.0),), source="second")
    assert lists.update(lambda: newer) and lists.current is newer and lists.last_error is None
