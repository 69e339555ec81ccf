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

An experiment's variant may ask for a diversity rule (`tailor.serving.diversity`): the list
is then cut from the whole ordered candidate list (3x k) by the rule; candidates short of
the rule are first joined by the best eligible products of the list's first category (one
category) or of every category (mixed).
It may also ask that customers with fewer purchases than a threshold get a list that is
not personalised (`known=False` for them: the stranger's list, re-ranked by the session).

Every active customer's best products are found ahead once per version, many customers per
matrix product (`tailor.serving.precomputed`, `serving.precomputed_customers`): a request of
theirs without a browsed category or a diversity rule scores those candidates alone, in the
model's order and with its reasons, and goes through the model only when its list would
reach below them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from tailor.serving.diversity import SINGLE_CATEGORY, diversified, short_of
from tailor.serving.precomputed import CANDIDATES, PrecomputedLists
from tailor.serving.schemas import RecommendedItem

if TYPE_CHECKING:
    from tailor.models.homepage import BlendParts

CANDIDATE_FACTOR = 3
MIN_EXTRA_CANDIDATES = 20
UNKNOWN_ROW = -1
# Candidates kept beyond a re-ranker's own: its whole candidate list must rank above the row's
# bound (products within rounding of the last one would send the request to the model).
RERANKER_SPARE = 8


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
        precomputed: how many of the most active customers' candidates to find ahead (0:
            none; not with the model's `mmr` diversity, whose list depends on its length).
        background: find them on a daemon thread (False: before the constructor returns).
        progress: see `PrecomputedLists` (the server's pending-candidates gauge).
        listed: how many of the most active of them also keep their finished list.
    """

    def __init__(self, model: Any, max_k: int, session_share: float, precomputed: int = 0,
                 background: bool = True, progress: Callable[[int], None] | None = None,
                 listed: int = 0) -> None:
        self.model = model
        self.session_share = session_share
        self.positions: dict[str, int] = model.customers.positions
        self.product_ids = model.products.ids
        self.categories = model.categories
        self.category_names = {str(name).casefold(): str(name)
                               for name in set(model.categories.tolist()) if name}
        self.members = self._category_members(model)
        # The stranger's list per diversity rule (None: the model's own order).
        self._strangers: dict[str | None, list[RecommendedItem]] = {}
        for mode in (None, "single_category", "mixed"):
            self._strangers[mode] = self.rank([""], [max_k], [frozenset()], known=False,
                                              diversity=[mode])[0]
        self._stranger = self._strangers[None]
        self.precomputed: PrecomputedLists | None = None
        if precomputed > 0 and getattr(model.params, "diversity", "none") != "mmr":
            reranker = getattr(model, "reranker", None)  # it re-orders its own candidates
            length = CANDIDATES if reranker is None else \
                max(CANDIDATES, reranker.candidates + RERANKER_SPARE)
            self.precomputed = PrecomputedLists(model, precomputed, length, progress,
                                                finish=self._from_candidates, listed=listed)
            if background:  # published first: the fill's own lists read its candidates
                self.precomputed.start()
            else:
                self.precomputed.fill()

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

    def purchases(self, customer_id: str) -> int:
        """The customer's purchases the model was trained on (0 for an unknown customer)."""
        row = self.positions.get(customer_id, UNKNOWN_ROW)
        return int(self.model.purchase_counts[row]) if row != UNKNOWN_ROW else 0

    def rank(self, customer_ids: Sequence[str], ks: Sequence[int],
             browsing: Sequence[frozenset[str]], known: bool | Sequence[bool] = True,
             diversity: Sequence[str | None] | None = None) -> list[list[RecommendedItem]]:
        """One list per customer, in one model call.

        Unknown customers who browse no category all get the same list, the stranger's
        (computed once per model version and diversity rule): the model is not called for
        them.

        Args:
            customer_ids: the customers (unknown ones get the cold-start list).
            ks: list length per customer.
            browsing: categories each customer is browsing now (catalogue spelling).
            known: False scores a customer as a stranger (ignores the id); one flag for
                all, or one per customer.
            diversity: per customer, a rule of `tailor.serving.diversity` or None.
        """
        count = len(customer_ids)
        flags = [known] * count if isinstance(known, bool) else list(known)
        modes = list(diversity) if diversity is not None else [None] * count
        rows = np.fromiter((self.positions.get(customer_id, UNKNOWN_ROW) if flag
                            else UNKNOWN_ROW for customer_id, flag in zip(customer_ids, flags)),
                           dtype=np.int64, count=count)
        strangers = getattr(self, "_strangers", {})  # empty while __init__ computes them
        lists: list[list[RecommendedItem] | None] = [
            strangers[mode][:k] if mode in strangers and row == UNKNOWN_ROW and not categories
            else self._ranked_ahead(row, k, categories, mode)
            for row, k, categories, mode in zip(rows, ks, browsing, modes)]
        scored = [position for position, items in enumerate(lists) if items is None]
        if scored:
            ranked = self._rank_rows(rows[scored], [ks[p] for p in scored],
                                     [browsing[p] for p in scored], [modes[p] for p in scored])
            for position, items in zip(scored, ranked):
                lists[position] = items
        return [items if items is not None else [] for items in lists]

    def _ranked_ahead(self, row: int, k: int, categories: frozenset[str], mode: str | None
                      ) -> list[RecommendedItem] | None:
        """The customer's list from its candidates found ahead, when the request asks for
        nothing they lack (a browsed category to boost, a diversity rule, products ranked
        below them), else None."""
        lists = getattr(self, "precomputed", None)
        if lists is None or mode is not None or (categories and self.session_share > 0):
            return None
        finished = lists.listed_items(int(row), k)
        return finished if finished is not None else self._from_candidates(int(row), k)

    def _from_candidates(self, row: int, k: int) -> list[RecommendedItem] | None:
        """The customer's list of k from its candidates (scored, ordered, re-ranked and cut
        by the model's rule here), or None when it has none or the list would reach below
        them."""
        found = self.precomputed.candidates(row)
        if found is None:
            return None
        items, low, high, bound = found
        tier, scores, parts = self.model.candidate_scores(int(row), items, low, high)
        order = np.lexsort((items, -scores))  # best first, ties in product order
        trusted = order[scores[order] > bound]  # no product left out reaches these
        ordered, ordered_scores, complete = items[trusted], scores[trusted], bound == -np.inf
        if getattr(self.model, "reranker", None) is not None:
            found_reranked = self.model.reranked(int(row), ordered, ordered_scores, complete)
            if found_reranked is None:
                return None
            (ordered, ordered_scores), complete = found_reranked, True
        chosen = self.model.select_ranked(ordered, k, complete=complete)
        if chosen is None:
            return None
        chosen_list = chosen.tolist()
        score_of = dict(zip(ordered.tolist(), ordered_scores.tolist()))
        reasons = self.model.reasons(int(row), tier, chosen_list, parts, 0)
        product_ids = self.product_ids
        return [RecommendedItem(product_id=str(product_ids[item]), score=score_of[item],
                                reason=reason)
                for item, reason in zip(chosen_list, reasons)]

    def close(self) -> None:
        """Stop finding candidates ahead (the version was replaced)."""
        if self.precomputed is not None:
            self.precomputed.stop()

    def _rank_rows(self, rows: np.ndarray, ks: Sequence[int],
                   browsing: Sequence[frozenset[str]], modes: Sequence[str | None]
                   ) -> list[list[RecommendedItem]]:
        """`rank` for customer rows, through the model."""
        boosting = self.session_share > 0 and any(browsing)
        wanted = max(ks) if len(ks) else 0
        if boosting or any(modes):
            wanted = max(CANDIDATE_FACTOR * wanted, wanted + MIN_EXTRA_CANDIDATES)
        tiers, scores, parts, chosen = self.model.top_items(rows, wanted)
        lists = []
        for position, (k, categories, mode) in enumerate(zip(ks, browsing, modes)):
            candidates = chosen[position]
            length = len(candidates) if mode else k  # a rule cuts from the whole order
            if boosting and categories:
                candidates = self._with_browsed(candidates, scores[position], categories, k)
                length = len(candidates) if mode else k
                slots = session_order(np.isin(self.categories[candidates],
                                              list(categories)).tolist(), length,
                                      self.session_share)
            else:
                slots = [(index, False) for index in range(min(length, len(candidates)))]
            if mode:
                candidates, slots = self._diversified(candidates, slots, scores[position], k,
                                                      mode)
            lists.append(self._items(rows, tiers, scores, parts, position,
                                     [(int(candidates[index]), promoted)
                                      for index, promoted in slots]))
        return lists

    def _diversified(self, candidates: np.ndarray, slots: list[tuple[int, bool]],
                     row_scores: np.ndarray, k: int, mode: str
                     ) -> tuple[np.ndarray, list[tuple[int, bool]]]:
        """The k slots the diversity rule keeps of the ordered `slots`. When the candidates
        are short of the rule, the best eligible products of the first slot's category
        (`single_category`) or of every category (`mixed`) join them first."""
        if not slots:
            return candidates, slots
        categories = [str(self.categories[candidates[index]]) for index, _ in slots]
        if short_of(categories, k, mode):
            wanted = frozenset(categories[:1]) if mode == SINGLE_CATEGORY \
                else frozenset(self.members)
            extended = self._with_browsed(candidates, row_scores, wanted, k)
            added = range(len(candidates), len(extended))
            slots = slots + [(index, False) for index in added]
            categories += [str(self.categories[extended[index]]) for index in added]
            candidates = extended
        return candidates, [slots[index] for index in diversified(categories, k, mode)]

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
