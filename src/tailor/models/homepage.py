"""The homepage model: "what is this person interested in?", with a reason for every product.

Reads and writes nothing (fits on a `ShopData`; `tailor.training` logs it to MLflow).

Who gets what:
  * no history (new or unknown customer): popular and trending products;
  * views or carts but fewer than `collaborative_after_purchases` purchases: content-based,
    from the categories and price tier the customer looked at;
  * from that purchase on: implicit ALS on confidence-weighted interactions (purchase > cart >
    view, decayed with age), blended with popularity where the customer's own signal is thin.
Business filters (serving): out of stock, and already bought unless the category is
consumable (inferred from repeat-purchase rates). Optional diversity: a category cap or MMR.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tailor.models.constants import DEFAULT_K
from tailor.models.data import ShopData
from tailor.models.interactions import (
    AlsParams, IdIndex, InteractionWeights, best_first, confidence_matrix, fit_als,
    indicator_matrix, normalise_rows, product_events, row_indices, score_batch,
)
from tailor.models.params import LoggedParams
from tailor.models.popularity import (
    consumable_categories, decayed_popularity, price_tiers, trending_scores,
)
from tailor.models.reranker import (
    Reranker, candidate_features, described_candidates, fit_reranker,
)
from tailor.models.targets import homepage_targets

log = logging.getLogger(__name__)

DIVERSITY_MODES: tuple[str, ...] = ("none", "category_cap", "mmr")
TIERS: tuple[str, ...] = ("cold_start", "content", "collaborative")
MIN_PRODUCTS_FOR_ALS = 3
UNKNOWN_CATEGORY = "the shop"
# What float32 rounding of a blended score (values near 1) can reach, with room to spare.
ROUNDING_SLACK = 2.0 ** -18
# Products a content-tier customer's bought ones may take out of a popularity head before its
# candidates are found over the whole catalogue instead (`HomepageModel._content_candidates`).
HEAD_SPARE = 16
# Per-model lookups computed on first use and kept beside the fields (never pickled).
CACHED = frozenset({"_baseline_scores", "_out_of_stock_items", "_codes", "_unit_factors",
                    "_widened", "_largest_factor", "_heads"})


@dataclass(frozen=True)
class BlendParts:
    """What a batch of scores was blended from, kept to explain single products (`reason`).

    Attributes:
        weight: per customer row, the collaborative share of the blend (0 outside tier 2).
        baseline: per product, the popularity-and-trending score.
        cf_position: per customer row, its row in `normalised` (-1 outside tier 2).
        normalised: the collaborative-tier rows' ALS scores scaled to [0, 1] (float32).
    """

    weight: np.ndarray
    baseline: np.ndarray
    cf_position: np.ndarray
    normalised: np.ndarray

    def collaborative(self, position: int, item: int) -> float:
        """The ALS part of row `position`'s score for `item` (0 outside tier 2)."""
        row = self.cf_position[position]
        return float(self.normalised[row, item]) if row >= 0 else 0.0


@dataclass(frozen=True)
class Candidates:
    """Customers' best products by a fast approximate score (`HomepageModel.candidate_block`).

    Attributes:
        items: per customer, product indexes best first (-1 pads a short row).
        low, high: per customer, the lowest and highest ALS score over the catalogue (0
            outside the collaborative tier).
        bound: per customer, a score no product left out of its row reaches, rounding
            included (-inf: every eligible product is in the row).
    """

    items: np.ndarray
    low: np.ndarray
    high: np.ndarray
    bound: np.ndarray


def _dot_error(terms: int) -> float:
    """The relative error bound of a float32 dot product of `terms` terms (gamma_n)."""
    unit = float(np.finfo(np.float32).eps) / 2
    return terms * unit / (1 - terms * unit)


@dataclass(frozen=True)
class HomepageParams(LoggedParams):
    """Hyper-parameters (tuned by Optuna) and serving settings (set by experiments)."""

    factors: int = 24
    regularization: float = 0.1
    alpha: float = 2.0
    iterations: int = 15
    view_weight: float = 1.0
    cart_weight: float = 2.0
    purchase_weight: float = 5.0
    half_life_days: float = 120.0
    blend_shrink: float = 8.0
    trending_weight: float = 0.3
    popularity_half_life_days: float = 14.0
    collaborative_after_purchases: int = 1
    diversity: str = "none"
    category_cap: int = 3
    mmr_lambda: float = 0.7
    rerank: bool = False
    rerank_candidates: int = 50
    seed: int = 7
    threads: int = 0  # 0: decided by the data's size (see interactions.fit_als)

    def __post_init__(self) -> None:
        if self.diversity not in DIVERSITY_MODES:
            raise ValueError(f"diversity: must be one of {DIVERSITY_MODES}, got {self.diversity!r}")
        if self.collaborative_after_purchases < 0:
            raise ValueError("collaborative_after_purchases: must be 0 or more")


@dataclass
class HomepageModel:
    """A fitted homepage model; build it with `fit_homepage`."""

    params: HomepageParams
    customers: IdIndex
    products: IdIndex
    categories: np.ndarray
    names: np.ndarray
    tiers: np.ndarray
    in_stock: np.ndarray
    consumable: np.ndarray
    seen: sp.csr_matrix
    bought: sp.csr_matrix
    purchase_counts: np.ndarray
    interaction_counts: np.ndarray
    category_affinity: np.ndarray
    preferred_tier: np.ndarray
    popularity: np.ndarray
    trending: np.ndarray
    user_factors: np.ndarray | None
    item_factors: np.ndarray | None
    trained_until: pd.Timestamp
    note: str = ""
    reranker: Reranker | None = None

    def __getstate__(self) -> dict[str, Any]:
        """The fields only: lookups computed on first use (`_baseline`, `_out_of_stock`,
        `category_codes`, `_unit_item_factors`) are rebuilt after loading, not stored."""
        return {name: value for name, value in self.__dict__.items() if name not in CACHED}

    # -- scoring ---------------------------------------------------------------------------------

    def recommend(self, customer_ids: Sequence[str], k: int = DEFAULT_K,
                  exclude_interacted: bool = False, business_filters: bool = True,
                  with_reasons: bool = True) -> pd.DataFrame:
        """The top-k products of each customer, best first, each with a reason.

        Args:
            customer_ids: customers to score; unknown ids get the cold-start list.
            k: products per customer.
            exclude_interacted: leave out everything the customer viewed, carted or bought
                (the evaluation protocol's rule).
            business_filters: leave out out-of-stock products and already-bought products
                of non-consumable categories (serving's rule).
            with_reasons: write the reason column (backtests skip it: it costs time).

        Returns:
            Columns customer_id, product_id, rank (1 = first), score, tier, reason.
        """
        ids = pd.Series(list(customer_ids), dtype=object).astype(str)
        batch = score_batch(len(self.products))
        frames = [self._recommend_batch(ids.iloc[start:start + batch], k,
                                        exclude_interacted, business_filters, with_reasons)
                  for start in range(0, len(ids), batch)]
        if not frames:
            return pd.DataFrame(columns=["customer_id", "product_id", "rank", "score", "tier",
                                         "reason"])
        return pd.concat(frames, ignore_index=True)

    def _recommend_batch(self, ids: pd.Series, k: int, exclude_interacted: bool,
                         business_filters: bool, with_reasons: bool) -> pd.DataFrame:
        rows = self.customers.lookup(ids)
        tiers, scores, parts, chosen = self.top_items(rows, k, exclude_interacted,
                                                      business_filters)
        lengths = np.array([len(items) for items in chosen])
        positions = np.repeat(np.arange(len(rows)), lengths)
        items = np.concatenate(chosen) if len(chosen) else np.zeros(0, dtype=np.int64)
        reasons = [reason for position, row_items in enumerate(chosen)
                   for reason in self.reasons(rows[position], tiers[position],
                                              row_items.tolist(), parts, position)
                   ] if with_reasons else ""
        return pd.DataFrame({
            "customer_id": ids.to_numpy()[positions], "product_id": self.products.ids[items],
            "rank": np.concatenate([np.arange(1, n + 1) for n in lengths]) if len(lengths)
            else np.zeros(0, dtype=np.int64),
            "score": scores[positions, items],
            "tier": np.asarray(TIERS, dtype=object)[tiers[positions]], "reason": reasons})

    def top_items(self, rows: np.ndarray, k: int, exclude_interacted: bool = False,
                  business_filters: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, BlendParts, list[np.ndarray]]:
        """The ranking behind `recommend`, on customer rows, without building a frame.

        Args:
            rows: customer rows (`customers.positions`); -1 for unknown customers.
            k, exclude_interacted, business_filters: as in `recommend`.

        Returns:
            (tiers, filtered scores (customers x products; -inf = filtered out), the parts
            the scores were blended from (for `reason`), the chosen product indexes per row).
        """
        tiers = self.customer_tiers(rows)
        scores, parts = self.score_matrix(rows, tiers)
        scores = self.apply_filters(scores, rows, exclude_interacted, business_filters)
        among: list[np.ndarray | None] = [None] * len(rows)
        if self.reranker is not None:
            scores, among = self._rerank(rows, scores)
        return tiers, scores, parts, [self._select(scores[position], k, among[position])
                                      for position in range(len(rows))]

    def _rerank(self, rows: np.ndarray, scores: np.ndarray
                ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Scores where only the top candidates remain, ordered by the re-ranker, and per
        row the candidates (the only finite scores left), in product order."""
        order, features = candidate_features(self, rows, scores, self.reranker.candidates)
        reranked = np.full(scores.shape, -np.inf)
        row_index = np.nonzero(order >= 0)[0]
        reranked[row_index, order[order >= 0]] = self.reranker.rescore(features)
        return reranked, [np.sort(items[items >= 0]) for items in order]

    def customer_tiers(self, rows: np.ndarray) -> np.ndarray:
        """0 cold start, 1 content-based, 2 collaborative, per customer row (-1 = unknown)."""
        known = rows >= 0
        interactions = np.where(known, self.interaction_counts[np.maximum(rows, 0)], 0)
        purchases = np.where(known, self.purchase_counts[np.maximum(rows, 0)], 0)
        tiers = np.where(interactions > 0, 1, 0)
        threshold = max(self.params.collaborative_after_purchases, 0)
        collaborative = (interactions > 0) & (purchases >= threshold)
        return np.where(collaborative, 2, tiers).astype(np.int8)

    def customer_tier(self, row: int) -> int:
        """`customer_tiers` of one known customer row, without arrays."""
        if self.interaction_counts[row] <= 0:
            return 0
        threshold = max(self.params.collaborative_after_purchases, 0)
        return 2 if self.purchase_counts[row] >= threshold else 1

    def score_matrix(self, rows: np.ndarray, tiers: np.ndarray) -> tuple[np.ndarray, BlendParts]:
        """Scores (customers x products, float64) and the parts they were blended from.

        Serving calls this once per request on a single row over the whole catalogue, so it
        builds each row once, in place, without full-size scratch matrices."""
        baseline = self._baseline()
        cf_rows = np.flatnonzero(tiers == 2) if self.user_factors is not None \
            else np.zeros(0, dtype=np.int64)
        weight = np.zeros(len(rows))
        cf_position = np.full(len(rows), -1, dtype=np.int64)
        cf_position[cf_rows] = np.arange(len(cf_rows))
        normalised = np.zeros((0, len(self.products)), dtype=np.float32)
        blended = None
        if len(cf_rows):
            raw = self.user_factors[rows[cf_rows]] @ self.item_factors.T
            low, high = raw.min(axis=1, keepdims=True), raw.max(axis=1, keepdims=True)
            normalised = (raw - low) / np.where(high > low, high - low, 1.0)
            counts = self.interaction_counts[rows[cf_rows]]
            weight[cf_rows] = counts / (counts + self.params.blend_shrink)
            blended = normalised.astype(np.float64)
            blended *= weight[cf_rows, None]
            blended += (1.0 - weight[cf_rows, None]) * baseline[None, :]
        if blended is not None and len(cf_rows) == len(rows):
            scores = blended
        else:
            scores = np.tile(baseline, (len(rows), 1))
            content_rows = np.flatnonzero(tiers == 1)
            if len(content_rows):
                scores[content_rows] = self._content_scores(rows[content_rows])
            if blended is not None:
                scores[cf_rows] = blended
        return scores, BlendParts(weight, baseline, cf_position, normalised)

    def candidate_block(self, rows: np.ndarray, length: int,
                        work: np.ndarray | None = None) -> Candidates:
        """Each customer's best `length` products, found for many customers at once.

        The scores are `score_matrix`'s after the business filters, computed the fast way,
        so they may differ from a request's by rounding; `bound` says how far that can reach.
        Serving keeps the candidates per model version (`tailor.serving.precomputed`) and
        scores them at request time (`candidate_scores`).

        Args:
            rows: known customer rows.
            length: products per customer.
            work: a float32 array of at least len(rows) x products to compute in (a caller
                filling many blocks passes the same one: fresh pages cost more than the sums).
        """
        content = self.customer_tiers(rows) == 1
        found = Candidates(np.full((len(rows), length), -1, dtype=np.int32),
                           np.zeros(len(rows), dtype=np.float32),
                           np.zeros(len(rows), dtype=np.float32), np.full(len(rows), -np.inf))
        dense = ~content
        if content.any():
            positions = np.flatnonzero(content)
            done = self._content_candidates(rows[positions], length, found, positions)
            dense[positions[~done]] = True
        if dense.any():
            positions = np.flatnonzero(dense)
            part = self._dense_candidates(rows[positions], length, work)
            found.items[positions], found.bound[positions] = part.items, part.bound
            found.low[positions], found.high[positions] = part.low, part.high
        return found

    def _content_candidates(self, rows: np.ndarray, length: int, found: Candidates,
                            positions: np.ndarray) -> np.ndarray:
        """`candidate_block` for content-tier customers, without scoring the catalogue.

        Their score of a product is affinity(category) x match(price tier) x (0.5 + 0.5 x
        popularity) + 0.05 x popularity, which within one (category, price tier) group only
        grows with popularity: a group's first products by popularity (ties in product
        order) outrank the rest of it. So the best `length` + 1 of the pool of every group's
        head are the best of the catalogue, as long as each group keeps `length` + 1 eligible
        products in its head (or all it has). Scores are the model's own (float64, per
        product). Writes into `found` at `positions`; returns, per row, whether it was done
        (False: a head short of eligible products, or too many groups for a pool to pay).
        """
        done = np.zeros(len(rows), dtype=bool)
        heads = self._popular_heads(length + 1 + HEAD_SPARE)
        if heads is None:
            return done
        pool, group, head_full = heads
        scores = self._content_scores(rows, pool)
        for index, row in enumerate(rows.tolist()):
            bought = row_indices(self.bought, row)
            bought = bought[~self.consumable[bought]]
            excluded = np.isin(pool, bought)
            if excluded.any():
                short = np.bincount(group[excluded], minlength=len(head_full))
                if np.any(head_full & (short > HEAD_SPARE)):
                    continue  # a head short of eligible products: the dense path
                scores[index, excluded] = -np.inf
            best = best_first(scores[index], length + 1)
            position = positions[index]
            found.items[position, :min(length, len(best))] = pool[best[:length]]
            if len(best) > length:
                found.bound[position] = float(scores[index, best[length]]) + ROUNDING_SLACK
            done[index] = True
        return done

    def _popular_heads(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The first `size` in-stock products by popularity (ties in product order) of every
        (category, price tier) group: (the pool of them in product order, each one's group,
        per group whether its head is cut short of the group); None when the pool would be
        a quarter of the catalogue or more. Computed once per size (see `category_codes`)."""
        cached = self.__dict__.setdefault("_heads", {})
        if size not in cached:
            in_stock = np.flatnonzero(np.asarray(self.in_stock, dtype=bool))
            tiers = np.asarray(self.tiers, dtype=np.int64)[in_stock]
            keys = self.category_codes()[in_stock].astype(np.int64) * (int(tiers.max(initial=0))
                                                                        + 1) + tiers
            groups, group = np.unique(keys, return_inverse=True)
            order = np.lexsort((in_stock, -np.asarray(self.popularity)[in_stock], group))
            starts = np.searchsorted(group[order], np.arange(len(groups)))
            rank = np.arange(len(order)) - starts[group[order]]
            chosen = order[rank < size]
            sizes = np.bincount(group, minlength=len(groups))
            pool_order = np.argsort(in_stock[chosen], kind="stable")
            pool = in_stock[chosen][pool_order]
            cached[size] = None if len(pool) * 4 >= len(self.products) else \
                (pool, group[chosen][pool_order], sizes > size)
        return cached[size]

    def _dense_candidates(self, rows: np.ndarray, length: int,
                          work: np.ndarray | None) -> Candidates:
        """`candidate_block` over the whole catalogue: `score_matrix`'s scores after the
        business filters, computed the fast way (a float32 matrix product for the whole
        block, the blend folded into it)."""
        size = (len(rows), len(self.products))
        if work is None or work.shape[0] < size[0] or work.shape[1] != size[1]:
            work = np.empty(size, dtype=np.float32)
        tiers = self.customer_tiers(rows)
        cf_rows = np.flatnonzero(tiers == 2) if self.user_factors is not None \
            else np.zeros(0, dtype=np.int64)
        # The block's rows in work: the collaborative ones first (one product writes them).
        order = np.concatenate([cf_rows, np.setdiff1d(np.arange(len(rows)), cf_rows)])
        scores = work[:len(rows)]
        low = np.zeros(len(rows), dtype=np.float32)
        high = np.zeros(len(rows), dtype=np.float32)
        shift = np.zeros(len(rows))  # what a row's scores lack of the blend (a constant)
        slack = np.full(len(rows), ROUNDING_SLACK)
        cf = len(cf_rows)
        scores[cf:] = self._baseline().astype(np.float32)
        if cf:
            users = self.user_factors[rows[cf_rows]]
            raw = np.matmul(users, self.item_factors.T, out=scores[:cf])
            low[cf_rows], high[cf_rows] = raw.min(axis=1), raw.max(axis=1)
            span = np.where(high[cf_rows] > low[cf_rows], high[cf_rows] - low[cf_rows], 1.0)
            counts = self.interaction_counts[rows[cf_rows]]
            weight = counts / (counts + self.params.blend_shrink)
            scale = weight / span
            # w x (raw - low) / span + (1 - w) x baseline, less its constant w x low / span:
            # one product of factors widened by the baseline, no pass over the block.
            widened = np.hstack([users * scale[:, None], (1.0 - weight)[:, None]])
            np.matmul(widened.astype(np.float32), self._widened_items().T, out=scores[:cf])
            shift[cf_rows] = scale * low[cf_rows]
            # A float32 sum of n products is off by at most gamma_n x the sum of their sizes,
            # here and in a request's own product of the ALS factors.
            slack[cf_rows] += _dot_error(widened.shape[1]) * (
                3 * scale * np.linalg.norm(users, axis=1) * self._largest_item_factor() + 1.0)
        content = np.flatnonzero(tiers[order] == 1)
        if len(content):  # per product: the same values as a request's
            scores[content] = self._content_scores(rows[order[content]])
        self.apply_filters(scores, rows[order], exclude_interacted=False, business_filters=True)
        items = np.full((len(rows), length), -1, dtype=np.int32)
        bound = np.full(len(rows), -np.inf)
        for position, row in enumerate(order.tolist()):
            best = best_first(scores[position], length + 1)
            items[row, :min(length, len(best))] = best[:length]
            if len(best) > length:
                bound[row] = float(scores[position, best[length]]) - shift[row] + slack[row]
        return Candidates(items, low, high, bound)

    def candidate_scores(self, row: int, items: np.ndarray, low: float, high: float
                         ) -> tuple[int, np.ndarray, BlendParts]:
        """One customer's tier, its scores of a few products as `score_matrix` gives them in
        the whole catalogue's row, and the parts they were blended from (for `reasons`).

        Args:
            row: a known customer row.
            items: product indexes.
            low, high: the customer's lowest and highest ALS score over the catalogue (from
                `candidate_block`; unused outside the collaborative tier).
        """
        rows = np.asarray([row], dtype=np.int64)
        tier = self.customer_tier(row)
        baseline = self._baseline()
        weight = np.zeros(1)
        cf_position = np.full(1, -1, dtype=np.int64)
        normalised = np.zeros((1, len(self.products)), dtype=np.float32)  # read at `items`
        if tier == 2 and self.user_factors is not None:
            raw = self.user_factors[rows] @ self.item_factors[items].T
            extremes = np.asarray([[low, high]], dtype=np.float32)
            low_, high_ = extremes[:, :1], extremes[:, 1:]
            part = (raw - low_) / np.where(high_ > low_, high_ - low_, 1.0)
            counts = self.interaction_counts[rows]
            weight[:] = counts / (counts + self.params.blend_shrink)
            scores = part.astype(np.float64)
            scores *= weight[:, None]
            scores += (1.0 - weight[:, None]) * baseline[None, items]
            normalised[0, items] = part[0]
            cf_position[0] = 0
        elif tier == 1:
            scores = self._content_scores(rows, items)
        else:
            scores = baseline[None, items].copy()
        return tier, scores[0], BlendParts(weight, baseline, cf_position, normalised)

    def _widened_items(self) -> np.ndarray:
        """The item factors with the baseline as one more column (float32; see
        `candidate_block`); computed once (see `category_codes`)."""
        widened = self.__dict__.get("_widened")
        if widened is None:
            widened = np.hstack([self.item_factors, self._baseline()[:, None]]
                                ).astype(np.float32)
            self.__dict__["_widened"] = widened
        return widened

    def _largest_item_factor(self) -> float:
        """The largest length of an item's factor vector; computed once (see
        `category_codes`)."""
        largest = self.__dict__.get("_largest_factor")
        if largest is None:
            largest = float(np.linalg.norm(self.item_factors, axis=1).max())
            self.__dict__["_largest_factor"] = largest
        return largest

    def _baseline(self) -> np.ndarray:
        """Popularity blended with trending, per product; computed once (see `category_codes`)."""
        baseline = self.__dict__.get("_baseline_scores")
        if baseline is None:
            baseline = np.asarray((self.popularity + self.params.trending_weight * self.trending)
                                  / (1.0 + self.params.trending_weight), dtype=np.float64)
            self.__dict__["_baseline_scores"] = baseline
        return baseline

    def _out_of_stock(self) -> np.ndarray:
        """Indexes of the products out of stock; computed once (see `category_codes`)."""
        items = self.__dict__.get("_out_of_stock_items")
        if items is None:
            items = np.flatnonzero(~np.asarray(self.in_stock, dtype=bool))
            self.__dict__["_out_of_stock_items"] = items
        return items

    def _content_scores(self, rows: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Category affinity x price-tier match, tie-broken by popularity (per product, so a
        few `items` score exactly as they do in the whole catalogue's row)."""
        columns = slice(None) if items is None else items
        popularity = self.popularity[columns]
        affinity = self.category_affinity[rows][:, self.category_codes()[columns]]
        tier_gap = np.abs(self.preferred_tier[rows][:, None] - self.tiers[columns][None, :])
        tier_match = 1.0 - 0.25 * tier_gap
        return affinity * tier_match * (0.5 + 0.5 * popularity[None, :]) + \
            0.05 * popularity[None, :]

    def category_codes(self) -> np.ndarray:
        """Each product's column in `category_affinity`; computed once (serving calls it per
        request), kept outside the dataclass fields."""
        codes = self.__dict__.get("_codes")
        if codes is None:
            codes = pd.Categorical(self.categories, categories=self._category_list()).codes
            self.__dict__["_codes"] = codes
        return codes

    def _category_list(self) -> list[str]:
        return sorted(set(self.categories.tolist()))

    def apply_filters(self, scores: np.ndarray, rows: np.ndarray, exclude_interacted: bool,
                       business_filters: bool) -> np.ndarray:
        """`scores` (changed in place) with filtered products at -inf."""
        known = rows >= 0
        if business_filters:
            scores[:, self._out_of_stock()] = -np.inf
        for position in np.flatnonzero(known):
            row = rows[position]
            if exclude_interacted:
                scores[position, row_indices(self.seen, row)] = -np.inf
            elif business_filters:
                bought = row_indices(self.bought, row)
                scores[position, bought[~self.consumable[bought]]] = -np.inf
        return scores

    def _select(self, scores: np.ndarray, k: int, among: np.ndarray | None = None
                ) -> np.ndarray:
        """Top-k indices, with the configured diversity rule.

        Args:
            scores: one row's filtered scores.
            k: how many.
            among: when only these product indexes (ascending) can have finite scores,
                they alone are ranked (the re-ranker's candidates): same result, less work.
        """
        def ranked(n: int) -> np.ndarray:  # the n best, best first, ties in product order
            if among is None:
                return best_first(scores, n)
            return among[best_first(scores[among], n)]

        if self.params.diversity == "category_cap":
            return self._capped(ranked, scores, k, among)
        if self.params.diversity == "mmr" and self.item_factors is not None:
            return _mmr(ranked(max(k * 10, 50)), scores, self._unit_item_factors(), k,
                        self.params.mmr_lambda)
        return ranked(k)

    def select_ranked(self, order: np.ndarray, k: int, complete: bool) -> np.ndarray | None:
        """`_select` over products already in best-first order, or None when the diversity
        rule might need a product ranked below them.

        Args:
            order: product indexes, best first (the top of a customer's eligible products).
            k: how many.
            complete: `order` holds every eligible product (nothing ranks below it).
        """
        if self.params.diversity == "category_cap":
            cap = self.params.category_cap
            if complete or _fills_under_cap(order, self.categories, k, cap):
                return _category_capped(order, self.categories, k, cap)
            return None
        if self.params.diversity == "mmr" and self.item_factors is not None:
            return None
        return order[:k] if complete or len(order) >= k else None

    def reranked(self, row: int, order: np.ndarray, blend: np.ndarray, complete: bool
                 ) -> tuple[np.ndarray, np.ndarray] | None:
        """`_rerank` for one customer whose best products are known in order: the re-ranker's
        candidates in its order with its scores, or None when `order` holds fewer than its
        candidates and is not `complete` (see `select_ranked`).

        Args:
            row: a known customer row.
            order: product indexes, best first by the model's score.
            blend: their model scores (same order).
        """
        width = min(self.reranker.candidates, len(self.products))
        if len(order) < width and not complete:
            return None
        top, top_blend = order[:width], blend[:width]
        features = described_candidates(self, np.asarray([row]), top[None, :],
                                        top_blend[None, :])
        rescored = np.asarray(self.reranker.rescore(features), dtype=np.float64)
        in_product_order = np.argsort(top, kind="stable")  # ties: product order, as `_select`
        ranked = in_product_order[best_first(rescored[in_product_order], len(top))]
        return top[ranked], rescored[ranked]

    def _capped(self, ranked: Callable[[int], np.ndarray], scores: np.ndarray, k: int,
                among: np.ndarray | None) -> np.ndarray:
        """`_category_capped` over the best-first order, read only as far down as the cap
        needs: a prefix that fills k slots gives the same list as the whole order."""
        available = len(among) if among is not None else int(np.isfinite(scores).sum())
        depth = max(4 * k, 64)
        while True:
            order = ranked(min(depth, available))
            chosen = _category_capped(order, self.categories, k, self.params.category_cap)
            if depth >= available or _fills_under_cap(order, self.categories, k,
                                                      self.params.category_cap):
                return chosen
            depth *= 4

    def _unit_item_factors(self) -> np.ndarray:
        """Item factors scaled to unit length; computed once (see `category_codes`)."""
        unit = self.__dict__.get("_unit_factors")
        if unit is None:
            unit = normalise_rows(self.item_factors)
            self.__dict__["_unit_factors"] = unit
        return unit

    # -- reasons ---------------------------------------------------------------------------------

    def reason(self, row: int, tier: int, item: int, parts: BlendParts, position: int) -> str:
        """A sentence a shopper understands for why `item` is shown to customer `row`."""
        return self.reasons(row, tier, [item], parts, position)[0]

    def reasons(self, row: int, tier: int, items: Sequence[int], parts: BlendParts,
                position: int) -> list[str]:
        """`reason` for several products shown to one customer: the products whose score is
        mostly collaborative are explained by one similarity product against the history."""
        mostly = self._mostly_collaborative(tier, items, parts, position)
        collaborative = [item for item, flag in zip(items, mostly) if flag]
        because = self._because(row, collaborative) if collaborative else {}
        return [because[item] if item in because else self._popularity_reason(tier, item)
                for item in items]

    def _mostly_collaborative(self, tier: int, items: Sequence[int], parts: BlendParts,
                              position: int) -> list[bool]:
        """Per item, whether the ALS part of its blended score outweighs the popularity part."""
        if tier != 2 or self.user_factors is None or not len(items):
            return [False] * len(items)
        wanted = np.asarray(items, dtype=np.int64)
        weight = float(parts.weight[position])
        row = parts.cf_position[position]
        share = parts.normalised[row, wanted].astype(np.float64) if row >= 0 \
            else np.zeros(len(wanted))
        return (weight * share >= (1.0 - weight) * parts.baseline[wanted]).tolist()

    def _popularity_reason(self, tier: int, item: int) -> str:
        category = self.categories[item] or UNKNOWN_CATEGORY
        if tier == 1:
            return f"popular in {category}, which you have been looking at"
        trend_part = self.params.trending_weight * self.trending[item]
        if trend_part > self.popularity[item] and self.trending[item] > 0:
            return "trending this week"
        return f"popular in {category}"

    def _because(self, row: int, items: Sequence[int]) -> dict[int, str]:
        """Per item, 'because you bought X' (or viewed X): the history product most like it
        (the item itself left out); 'popular in <category>' when nothing else is there."""
        history, verb = row_indices(self.bought, row), "bought"
        if len(history) == 0:
            history, verb = row_indices(self.seen, row), "viewed"
        wanted = np.asarray(items, dtype=np.int64)
        explained = {item: f"popular in {self.categories[item] or UNKNOWN_CATEGORY}"
                     for item in wanted.tolist()}
        if not len(history):
            return explained
        unit = self._unit_item_factors()  # per row: the same values as scaling these rows
        similarity = unit[history] @ unit[wanted].T
        similarity[history[:, None] == wanted[None, :]] = -np.inf
        best = np.argmax(similarity, axis=0)
        found = np.isfinite(similarity[best, np.arange(len(wanted))])
        for item, similar, ok in zip(wanted.tolist(), history[best].tolist(), found.tolist()):
            if ok:
                explained[item] = f"because you {verb} {self.names[similar]}"
        return explained

    # -- serving glue ----------------------------------------------------------------------------

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """MLflow pyfunc entry: rows of customer_id (and optional k) -> recommendations."""
        k = int(frame["k"].iloc[0]) if "k" in frame and len(frame) else DEFAULT_K
        return self.recommend(frame["customer_id"].astype(str).tolist(), k=k)

    def input_example(self) -> pd.DataFrame:
        """A request as the serving layer sends it."""
        customer = self.customers.ids[0] if len(self.customers) else "c-new"
        return pd.DataFrame({"customer_id": [str(customer), "c-new-visitor"], "k": [DEFAULT_K] * 2})


def _category_capped(order: np.ndarray, categories: np.ndarray, k: int, cap: int) -> np.ndarray:
    """The first k of `order` with at most `cap` per category (topped up if the cap starves it)."""
    counts: dict[str, int] = {}
    chosen = []
    for item in order:
        category = categories[item]
        if counts.get(category, 0) < cap:
            chosen.append(item)
            counts[category] = counts.get(category, 0) + 1
        if len(chosen) == k:
            return np.asarray(chosen)
    rest = [item for item in order if item not in set(chosen)]
    return np.asarray(chosen + rest[: k - len(chosen)], dtype=np.int64)


def _fills_under_cap(order: np.ndarray, categories: np.ndarray, k: int, cap: int) -> bool:
    """Whether `order` holds k products with at most `cap` per category (then
    `_category_capped` never needs to look past it)."""
    counts: dict[str, int] = {}
    taken = 0
    for item in order:
        category = categories[item]
        if counts.get(category, 0) < cap:
            counts[category] = counts.get(category, 0) + 1
            taken += 1
            if taken == k:
                return True
    return False


def _mmr(candidates: np.ndarray, scores: np.ndarray, unit_factors: np.ndarray, k: int,
         relevance_weight: float) -> np.ndarray:
    """Maximal marginal relevance: trade score against similarity to the items already chosen."""
    chosen: list[int] = []
    remaining = list(candidates)
    while remaining and len(chosen) < k:
        if chosen:
            similarity = (unit_factors[remaining] @ unit_factors[chosen].T).max(axis=1)
        else:
            similarity = np.zeros(len(remaining))
        value = relevance_weight * scores[remaining] - (1.0 - relevance_weight) * similarity
        chosen.append(remaining.pop(int(np.argmax(value))))
    return np.asarray(chosen, dtype=np.int64)


# -- fitting -------------------------------------------------------------------------------------


ModelHook = Callable[[int, "HomepageModel"], None]


def fit_homepage(data: ShopData, params: HomepageParams = HomepageParams(), stages: int = 1,
                 on_stage: ModelHook | None = None) -> HomepageModel:
    """Fit the homepage model on everything in `data`.

    Args:
        data: the history known at training time.
        params: hyper-parameters and serving settings.
        stages: fit ALS in this many stages, calling `on_stage(stage, partial model)` between
            them (Optuna prunes a hopeless trial there by raising).
        on_stage: see `stages`.

    Returns:
        The fitted model (popularity-only, with a note saying why, when collaborative filtering
        cannot work: fewer than 3 products, or no customer with two products).
    """
    interactions = product_events(data.events)
    customers = IdIndex.from_values(interactions["customer_id"])
    products = _product_index(interactions, data.products)
    weights = InteractionWeights(params.view_weight, params.cart_weight, params.purchase_weight,
                                 params.half_life_days)
    confidence = confidence_matrix(interactions, customers, products, weights, data.end)
    model = _base_model(data, params, interactions, customers, products, confidence)
    model.note = _collaborative_gap(confidence, model.seen)
    if model.note:
        log.warning("homepage: %s", model.note)
        return model

    def stage_hook(stage: int, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        on_stage(stage, replace(model, user_factors=user_factors, item_factors=item_factors))

    als = AlsParams(params.factors, params.regularization, params.alpha, params.iterations,
                    params.seed, params.threads)
    model.user_factors, model.item_factors = fit_als(
        confidence, als, stages, stage_hook if on_stage is not None else None)
    if params.rerank:
        model.reranker = _inner_reranker(data, params)
        if model.reranker is None:
            model.note = "re-ranker asked for, but too few purchases to train it: plain ALS"
    return model


def _inner_reranker(data: ShopData, params: HomepageParams) -> Reranker | None:
    """A re-ranker trained on the last 20% of `data` with a model fitted on the rest."""
    from tailor.models.data import NotEnoughData, make_split

    try:
        inner = make_split(data, "time")
    except NotEnoughData:
        return None
    inner_model = fit_homepage(inner.train, replace(params, rerank=False))
    if inner_model.user_factors is None:
        return None
    truth = homepage_targets(inner).truth
    return fit_reranker(inner_model, truth, params.rerank_candidates) if len(truth) else None


def _base_model(data: ShopData, params: HomepageParams, interactions: pd.DataFrame,
                customers: IdIndex, products: IdIndex, confidence: sp.csr_matrix) -> HomepageModel:
    """Everything but the ALS factors: catalogue facts, histories, popularity, trending."""
    catalogue = data.products.set_index("product_id").reindex(products.ids)
    seen = indicator_matrix(interactions, customers, products)
    bought = indicator_matrix(interactions[interactions["event_type"] == "purchase"],
                              customers, products)
    categories = catalogue["category"].fillna("").astype(str).to_numpy(dtype=object)
    tiers = price_tiers(catalogue["price"], catalogue["category"])
    names = catalogue["name"].where(catalogue["name"].notna(), catalogue.index.to_series())
    consumables = consumable_categories(data.purchases(), data.products)
    return HomepageModel(
        params=params, customers=customers, products=products, categories=categories,
        names=names.astype(str).to_numpy(dtype=object), tiers=tiers,
        in_stock=~(catalogue["inventory"].fillna(1).to_numpy(float) <= 0),
        consumable=np.isin(categories, list(consumables)), seen=seen, bought=bought,
        purchase_counts=_order_counts(data, customers),
        interaction_counts=np.asarray(seen.sum(axis=1)).ravel(),
        category_affinity=_category_affinity(confidence, categories),
        preferred_tier=_preferred_tier(confidence, tiers),
        popularity=decayed_popularity(interactions, products, data.end,
                                      params.popularity_half_life_days),
        trending=_scaled(trending_scores(interactions, products, data.end)),
        user_factors=None, item_factors=None, trained_until=data.end)


def _product_index(interactions: pd.DataFrame, catalogue: pd.DataFrame) -> IdIndex:
    """Products with interactions (first-appearance order), then catalogue-only products."""
    seen = pd.Series(pd.unique(interactions["product_id"].astype(str)), dtype=object)
    rest = catalogue["product_id"].astype(str)
    return IdIndex.from_values(pd.concat([seen, rest[~rest.isin(seen)]], ignore_index=True))


def _collaborative_gap(confidence: sp.csr_matrix, seen: sp.csr_matrix) -> str:
    """Why collaborative filtering cannot work on this data ('' when it can)."""
    if confidence.shape[1] < MIN_PRODUCTS_FOR_ALS:
        return (f"{confidence.shape[1]} product(s) in the catalogue: popularity is all there is; "
                "collaborative filtering needs at least 3")
    if not (np.diff(seen.indptr) >= 2).any():
        return "no customer interacted with two products: popularity only"
    return ""


def _order_counts(data: ShopData, customers: IdIndex) -> np.ndarray:
    """Orders (not products) each customer placed: the 'Nth purchase' of the tier rule."""
    orders = data.purchases().groupby("customer_id")["order_key"].nunique()
    counts = np.zeros(len(customers))
    positions = customers.lookup(orders.index.to_series())
    counts[positions[positions >= 0]] = orders.to_numpy()[positions >= 0]
    return counts


def _category_affinity(confidence: sp.csr_matrix, categories: np.ndarray) -> np.ndarray:
    """Customers x categories (sorted names): share of each customer's confidence per category."""
    names = sorted(set(categories.tolist()))
    codes = pd.Categorical(categories, categories=names).codes
    one_hot = sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)),
                            shape=(len(codes), max(len(names), 1)))
    totals = np.asarray((confidence @ one_hot).todense())
    sums = totals.sum(axis=1, keepdims=True)
    return totals / np.where(sums > 0, sums, 1.0)


def _preferred_tier(confidence: sp.csr_matrix, tiers: np.ndarray) -> np.ndarray:
    """Confidence-weighted mean price tier of each customer's interactions (1 without any)."""
    weighted = np.asarray(confidence @ tiers.astype(float)).ravel()
    totals = np.asarray(confidence.sum(axis=1)).ravel()
    return np.where(totals > 0, weighted / np.where(totals > 0, totals, 1.0), 1.0)


def _scaled(values: np.ndarray) -> np.ndarray:
    return values / values.max() if len(values) and values.max() > 0 else values


def with_settings(params: HomepageParams, **serving: Any) -> HomepageParams:
    """A copy with serving settings (diversity, collaborative_after_purchases, ...) replaced."""
    return replace(params, **{key: value for key, value in serving.items() if value is not None})
