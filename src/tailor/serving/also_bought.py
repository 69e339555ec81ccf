"""'Customers who bought X also bought' at request time: the cross-sell table as a lookup.

Reads nothing (a `CompanionIndex` is built from a loaded `CrossSellModel` once per
version: the precomputed table's columns as arrays and one (start, end) row range per
anchor, so a request is a dict lookup and a short loop, and a catalogue of 100k products
with 50 companions each costs no extra copy of the table). Writes nothing.

A request gets the anchor's companions in the model's order, minus the anchor itself, the
products in the visitor's cart and products known to be out of stock; when fewer than k
remain, the pipeline fills the list from what is popular in the anchor's category.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tailor.serving.schemas import RecommendedItem


class CompanionIndex:
    """Anchor product id -> its companions, best first.

    Args:
        model: a fitted `tailor.models.cross_sell.CrossSellModel`.
    """

    def __init__(self, model: Any) -> None:
        table = model.table
        if not table["anchor_product_id"].is_monotonic_increasing:
            table = table.sort_values(["anchor_product_id", "rank"], kind="stable")
        anchors = table["anchor_product_id"].astype(str).to_numpy(dtype=object)
        self.product_ids = table["product_id"].astype(str).to_numpy(dtype=object)
        self.scores = table["score"].to_numpy(dtype=float)
        self.confidence = table["confidence"].to_numpy(dtype=float)
        self.lift = table["lift"].to_numpy(dtype=float)
        self.reasons = table["reason"].to_numpy(dtype=object)
        starts = np.flatnonzero(np.r_[True, anchors[1:] != anchors[:-1]]) if len(anchors) \
            else np.zeros(0, dtype=np.int64)
        ends = np.r_[starts[1:], len(anchors)]
        self.ranges = {anchors[start]: (int(start), int(end))
                       for start, end in zip(starts, ends)}

    def __len__(self) -> int:
        return len(self.ranges)

    def items(self, anchor: str, k: int, exclude: set[str],
              in_stock: Callable[[str], bool]) -> list[RecommendedItem]:
        """Up to k companions of `anchor` not in `exclude` and not out of stock."""
        start, end = self.ranges.get(anchor, (0, 0))
        chosen = []
        for row in range(start, end):
            product_id = self.product_ids[row]
            if product_id in exclude or not in_stock(product_id):
                continue
            chosen.append(RecommendedItem(
                product_id=product_id, score=float(self.scores[row]),
                reason=str(self.reasons[row]), confidence=float(self.confidence[row]),
                lift=float(self.lift[row])))
            if len(chosen) == k:
                break
        return chosen
