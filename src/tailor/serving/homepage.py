"""Homepage ranking at request time: the model's candidates, re-ranked by the live session.

Reads nothing (a `HomepageRanker` is built from a loaded `HomepageModel` once per version,
precomputing its lookups so a request costs numpy work, not pandas). Writes nothing.

For each customer the model ranks more candidates than asked for (`CANDIDATE_FACTOR`),
with its business filters (in stock, not already bought unless consumable). When the
visitor is browsing some categories now (the session's viewed categories from the online
store, plus `context["categories"]`), the best eligible products of those categories join
the candidates, and the list is filled slot by slot in the model's order, except that the
first n slots always hold at least floor(`session_share` x n) products of a browsed
category: where the model's order falls short, its best remaining browsed product is
promoted, with the reason "because you are browsing <category>". The model's first
product stays first, and browsed products the model ranks high keep their place. Without
a browsed category the list is exactly the model's own top k, with its own reasons.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tailor.serving.schemas import RecommendedItem

if TYPE_CHECKING:
    from tailor.models.homepage import BlendParts

CANDIDATE_FACTOR = 3
MIN_EXTRA_CANDIDATES = 20
UNKNOWN_ROW = -1


def browsing_reason(category: str) -> str:
    return f"because you are browsing {category}"


def session_order(in_browsed: Sequence[bool], k: int, share: float) -> list[tuple[int, bool]]:
    """Which candidates fill the k slots, and whether each was promoted by the session.

    Args:
        in_browsed: per candidate in the model's order, whether its category is browsed.
        k: slots to fill.
        share: the least share of the first n slots that browsed products hold, for every n.

    Returns:
        (candidate index, promoted) per slot, in display order.
    """
    browsed = [index for index, flag in enumerate(in_browsed) if flag]
    used: set[int] = set()
    slots: list[tuple[int, bool]] = []
    natural, promoted_from, browsed_shown = 0, 0, 0
    while len(slots) < min(k, len(in_browsed)):
        while natural in used:
            natural += 1
        while promoted_from < len(browsed) and browsed[promoted_from] in used:
            promoted_from += 1
        owed = math.floor(share * (len(slots) + 1) + 1e-9) > browsed_shown
        if owed and promoted_from < len(browsed) and not in_browsed[natural]:
            index, promoted = browsed[promoted_from], True
        else:
            index, promoted = natural, False
        used.add(index)
        browsed_shown += in_browsed[index]
        slots.append((index, promoted))
    return slots


class HomepageRanker:
    """Ranks products for customers with one fitted homepage model.

    Args:
        model: a fitted `tailor.models.homepage.HomepageModel`.
        max_k: the largest list requests may ask for (the non-personalised list is cached
            at this length).
        session_share: see the module docstring (0 = no session re-ranking).
    """

    def __init__(self, model: Any, max_k: int, session_share: float) -> None:
        self.model = model
        self.session_share = session_share
        self.positions: dict[str, int] = model.customers.positions
        self.product_ids = model.products.ids
        self.categories = model.categories
        self.category_names = {str(name).casefold(): str(name)
                               for name in set(model.categories.tolist()) if name}
        self.members = self._category_members(model)
        self._stranger = self.rank([""], [max_k], [frozenset()], known=False)[0]

    @staticmethod
    def _category_members(model: Any) -> dict[str, np.ndarray]:
        """Per category: its in-stock product indexes, most popular first."""
        order = np.argsort(-np.asarray(model.popularity, dtype=float), kind="stable")
        order = order[np.asarray(model.in_stock, dtype=bool)[order]]
        members: dict[str, list[int]] = {}
        for item in order:
            members.setdefault(str(model.categories[item]), []).append(int(item))
        return {category: np.asarray(items, dtype=np.int64)
                for category, items in members.items() if category}

    def known_categories(self, names: Sequence[str]) -> frozenset[str]:
        """The catalogue's spelling of the names that are categories (case-insensitive)."""
        found = (self.category_names.get(str(name).casefold()) for name in names)
        return frozenset(name for name in found if name)

    def non_personalised(self, k: int) -> list[RecommendedItem]:
        """The list of a stranger (popular and trending): what opted-out customers see."""
        return self._stranger[:k]

    def rank(self, customer_ids: Sequence[str], ks: Sequence[int],
             browsing: Sequence[frozenset[str]], known: bool = True
             ) -> list[list[RecommendedItem]]:
        """One list per customer, in one model call.

        Unknown customers who browse no category all get the same list, the stranger's
        (computed once per model version): the model is not called for them.

        Args:
            customer_ids: the customers (unknown ones get the cold-start list).
            ks: list length per customer.
            browsing: categories each customer is browsing now (catalogue spelling).
            known: False scores every customer as a stranger (ignores the ids).
        """
        rows = np.fromiter((self.positions.get(customer_id, UNKNOWN_ROW) if known
                            else UNKNOWN_ROW for customer_id in customer_ids),
                           dtype=np.int64, count=len(customer_ids))
        stranger = getattr(self, "_stranger", None)  # None while __init__ computes it
        lists: list[list[RecommendedItem] | None] = [
            stranger[:k] if stranger is not None and row == UNKNOWN_ROW and not categories
            else None for row, k, categories in zip(rows, ks, browsing)]
        scored = [position for position, items in enumerate(lists) if items is None]
        if scored:
            ranked = self._rank_rows(rows[scored], [ks[p] for p in scored],
                                     [browsing[p] for p in scored])
            for position, items in zip(scored, ranked):
                lists[position] = items
        return [items if items is not None else [] for items in lists]

    def _rank_rows(self, rows: np.ndarray, ks: Sequence[int],
                   browsing: Sequence[frozenset[str]]) -> list[list[RecommendedItem]]:
        """`rank` for customer rows, through the model."""
        boosting = self.session_share > 0 and any(browsing)
        wanted = max(ks) if len(ks) else 0
        if boosting:
            wanted = max(CANDIDATE_FACTOR * wanted, wanted + MIN_EXTRA_CANDIDATES)
        tiers, scores, parts, chosen = self.model.top_items(rows, wanted)
        lists = []
        for position, (k, categories) in enumerate(zip(ks, browsing)):
            candidates = chosen[position]
            if boosting and categories:
                candidates = self._with_browsed(candidates, scores[position], categories, k)
                slots = session_order(np.isin(self.categories[candidates],
                                              list(categories)).tolist(), k,
                                      self.session_share)
            else:
                slots = [(index, False) for index in range(min(k, len(candidates)))]
            lists.append(self._items(rows, tiers, scores, parts, position,
                                     [(int(candidates[index]), promoted)
                                      for index, promoted in slots]))
        return lists

    def _items(self, rows: np.ndarray, tiers: np.ndarray, scores: np.ndarray,
               parts: BlendParts, position: int, slots: list[tuple[int, bool]]
               ) -> list[RecommendedItem]:
        """The products of one list with their model scores and the reasons they are shown
        (the model's reasons in one call)."""
        explained = [item for item, promoted in slots if not promoted]
        reasons = dict(zip(explained, self.model.reasons(rows[position], tiers[position],
                                                         explained, parts, position)))
        return [RecommendedItem(
            product_id=str(self.product_ids[item]), score=float(scores[position, item]),
            reason=browsing_reason(str(self.categories[item])) if promoted else reasons[item])
            for item, promoted in slots]

    def _with_browsed(self, candidates: np.ndarray, row_scores: np.ndarray,
                      categories: frozenset[str], k: int) -> np.ndarray:
        """The model's candidates, then the other eligible products of the browsed categories
        (up to k each, best model score first); a product has one category: no duplicates."""
        taken = set(candidates.tolist())
        extra: list[int] = []
        for category in sorted(categories):
            members = self.members.get(category)
            if members is None:
                continue
            eligible = members[np.isfinite(row_scores[members])]
            needed = k + len(taken)  # enough to hold k products that are not candidates
            if len(eligible) > needed:
                eligible = eligible[np.argpartition(-row_scores[eligible], needed)[:needed]]
            best = eligible[np.argsort(-row_scores[eligible], kind="stable")]
            extra.extend([item for item in best.tolist() if item not in taken][:k])
        if not extra:
            return candidates
        extra_array = np.asarray(extra, dtype=np.int64)
        extra_array = extra_array[np.argsort(-row_scores[extra_array], kind="stable")]
        return np.concatenate([candidates, extra_array])
