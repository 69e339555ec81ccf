"""The diversity rules an experiment's variant may ask for, on a ranked list's categories.

Reads and writes nothing. Two rules (the brief's "all recommendations from same category
vs. mix of categories"), applied to a list already in the order it would be shown:

- `single_category`: the products of the first product's category, in order; other
  categories only when that one has fewer than k;
- `mixed`: in order, at most `mixed_cap(k)` products of any one category (30% of the slots,
  at least one), topped up in order from the products that cap left out when the list
  would otherwise be short.

Callers pass more candidates than slots (the homepage ranks 3x k; also bought adds the
popular products of the anchor's category), and widen them when a rule would be short (the
category's other products for `single_category`, the other categories' best for `mixed`,
`short_of`), so a rule tops up only when the catalogue itself cannot fill it.
"""

from __future__ import annotations

import math
from typing import Sequence

SINGLE_CATEGORY, MIXED = "single_category", "mixed"
MIXED_SHARE = 0.3
CANDIDATE_FACTOR = 3


def mixed_cap(k: int) -> int:
    """Most products of one category in a mixed list of k (k = 10: 3)."""
    return max(1, math.ceil(MIXED_SHARE * k - 1e-9))


def short_of(categories: Sequence[str | None], k: int, mode: str) -> bool:
    """Whether `diversified` would have to top up: fewer than k entries of the first
    category (`single_category`) or that fit under the cap (`mixed`)."""
    if mode == SINGLE_CATEGORY:
        return bool(categories) and categories.count(categories[0]) < k
    cap = mixed_cap(k)
    counts: dict[str | None, int] = {}
    for category in categories:
        counts[category] = counts.get(category, 0) + 1
    return sum(min(count, cap) for count in counts.values()) < k


def diversified(categories: Sequence[str | None], k: int, mode: str) -> list[int]:
    """Which entries of a ranked list fill its k slots under `mode`, in display order.

    Args:
        categories: each entry's category, in the list's order (None: unknown).
        k: slots to fill.
        mode: `single_category` or `mixed`.

    Returns:
        Indexes into `categories`, at most k of them.
    """
    if mode == SINGLE_CATEGORY:
        if not categories:
            return []
        first = categories[0]
        same = [index for index, category in enumerate(categories) if category == first]
        other = [index for index, category in enumerate(categories) if category != first]
        return (same + other)[:k]
    if mode == MIXED:
        cap = mixed_cap(k)
        counts: dict[str | None, int] = {}
        chosen: list[int] = []
        left_out: list[int] = []
        for index, category in enumerate(categories):
            if len(chosen) == k:
                break
            if counts.get(category, 0) < cap:
                counts[category] = counts.get(category, 0) + 1
                chosen.append(index)
            else:
                left_out.append(index)
        return chosen + left_out[:k - len(chosen)]
    raise ValueError(f"diversity: must be {SINGLE_CATEGORY} or {MIXED}, got {mode!r}")
