"""The popularity lists served when personalisation is unavailable, overall and per category.

Reads, in this order of preference: the loaded homepage model's `popularity`, `in_stock`
and `categories` arrays (no I/O); else the warehouse (`events` and `products` views), the
most purchased in-stock products over the last `WINDOW_DAYS` days of data; else nothing (an
empty list). Writes nothing.

`FallbackLists` keeps the list in use and replaces it only with a list that was computed
successfully: a failed recomputation leaves the last good list serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from tailor.config import Settings
from tailor.serving.schemas import RecommendedItem

log = logging.getLogger(__name__)

WINDOW_DAYS = 30
POPULAR_REASON = "popular right now"

# Per category, the most purchased in-stock products of the newest WINDOW_DAYS days of data.
POPULAR_SQL = """
WITH newest AS (
    SELECT MAX("timestamp") AS at FROM events WHERE event_type = 'purchase'
), bought AS (
    SELECT e.product_id, COUNT(*) AS purchases
    FROM events AS e, newest
    WHERE e.event_type = 'purchase' AND e.product_id IS NOT NULL
      AND e."timestamp" > newest.at - to_days(CAST(? AS INTEGER))
    GROUP BY e.product_id
)
SELECT b.product_id, COALESCE(p.category, '') AS category, b.purchases
FROM bought AS b LEFT JOIN products AS p ON p.product_id = b.product_id
WHERE COALESCE(p.inventory, 1) > 0
QUALIFY ROW_NUMBER() OVER (PARTITION BY COALESCE(p.category, '')
                           ORDER BY b.purchases DESC, b.product_id) <= ?
ORDER BY b.purchases DESC, b.product_id
"""


def popular_reason(category: str | None) -> str:
    """'popular in <category>' for a category list, 'popular right now' overall."""
    return f"popular in {category}" if category else POPULAR_REASON


@dataclass(frozen=True)
class PopularList:
    """Popular products, best first, overall and per category.

    Attributes:
        overall: (product_id, score) pairs, score in 0-1.
        by_category: category -> (product_id, score) pairs.
        source: where the list came from (for /status and logs).
    """

    overall: tuple[tuple[str, float], ...] = ()
    by_category: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    source: str = "empty: no homepage model and no warehouse"

    def __len__(self) -> int:
        return len(self.overall)

    def items(self, k: int, category: str | None = None, exclude: Iterable[str] = ()
              ) -> list[RecommendedItem]:
        """The first `k` products (of `category`, when given) not in `exclude`."""
        pairs = self.by_category.get(category, ()) if category else self.overall
        skip = exclude if isinstance(exclude, (set, frozenset)) else set(exclude)
        reason = popular_reason(category)
        chosen = []
        for product_id, score in pairs:
            if product_id in skip:
                continue
            chosen.append(RecommendedItem(product_id=product_id, score=score, reason=reason))
            if len(chosen) == k:
                break
        return chosen


def _ranked(pairs: list[tuple[str, str, float]], size: int, source: str) -> PopularList:
    """A `PopularList` from (product_id, category, score) rows sorted best first."""
    by_category: dict[str, list[tuple[str, float]]] = {}
    for product_id, category, score in pairs:
        members = by_category.setdefault(category, [])
        if category and len(members) < size:
            members.append((product_id, score))
    overall = tuple((product_id, score) for product_id, _, score in pairs[:size])
    return PopularList(overall, {category: tuple(members)
                                 for category, members in by_category.items() if category},
                       source)


def popular_from_model(model: Any, size: int, version: str | None = None) -> PopularList:
    """The homepage model's most popular in-stock products (decayed popularity)."""
    import numpy as np

    popularity = np.asarray(model.popularity, dtype=float)
    eligible = np.flatnonzero(np.asarray(model.in_stock, dtype=bool) & (popularity > 0))
    order = eligible[np.argsort(-popularity[eligible], kind="stable")]
    top = popularity[order[0]] if len(order) else 1.0
    pairs = [(str(model.products.ids[item]), str(model.categories[item] or ""),
              float(popularity[item] / top)) for item in order]
    label = f"homepage model v{version}" if version else "homepage model"
    return _ranked(pairs, size, f"{label}: decayed popularity of in-stock products")


def popular_from_warehouse(settings: Settings, size: int) -> PopularList:
    """The most purchased in-stock products of the last WINDOW_DAYS days in the warehouse.

    Raises:
        FileNotFoundError: no warehouse yet.
        ValueError: the query failed.
    """
    from tailor.warehouse import query_warehouse

    frame = query_warehouse(settings, POPULAR_SQL, [WINDOW_DAYS, size])
    top = float(frame["purchases"].max()) if len(frame) else 1.0
    pairs = [(str(product_id), str(category), float(purchases) / top)
             for product_id, category, purchases in frame.itertuples(index=False, name=None)]
    return _ranked(pairs, size, f"warehouse: purchases of in-stock products, last "
                                f"{WINDOW_DAYS} days of data")


class FallbackLists:
    """The popularity list in use; replaced only by a successful recomputation."""

    def __init__(self) -> None:
        self.current = PopularList()
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def update(self, compute: Callable[[], PopularList]) -> bool:
        """Replace the list with `compute()`; on failure keep the last good one.

        An empty result does not replace a non-empty list either (a warehouse caught
        between two refreshes says nothing about what is popular).

        Returns:
            True when the list was replaced.
        """
        try:
            computed = compute()
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.warning("fallback list not recomputed (%s); keeping %d products from %s",
                        self.last_error, len(self.current), self.current.source)
            return False
        with self._lock:
            if not len(computed) and len(self.current):
                self.last_error = f"{computed.source}: no products; kept the last list"
                return False
            self.current, self.last_error = computed, None
        return True
