"""The cross-sell model: "customers who bought X also bought", precomputed per product.

Reads and writes nothing (fits on a `ShopData`). Association rules are mined from baskets
(orders, plus abandoned carts with two or more products when `use_cart_sessions`): for a
pair X -> Y, support = baskets with both / all baskets, confidence = baskets with both /
baskets with X, lift = confidence / (baskets with Y / all baskets). Rules are ranked by
confidence x lift. Where an anchor has fewer rules than its list needs (the rules are too
thin), the list is filled with the products most similar to it in ALS item space. The
result is a table of the top-N pairs per product, each with its confidence and lift, for
millisecond lookups at serving time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tailor.models.constants import DEFAULT_K
from tailor.models.data import ShopData
from tailor.models.interactions import (
    AlsParams, IdIndex, InteractionWeights, best_first, confidence_matrix, fit_als,
    normalise_rows, product_events, score_batch,
)
from tailor.models.params import LoggedParams

log = logging.getLogger(__name__)

TABLE_COLUMNS: tuple[str, ...] = ("anchor_product_id", "product_id", "rank", "score", "support",
                                  "confidence", "lift", "similarity", "source", "reason")
MIN_SIMILARITY_PRODUCTS = 3


@dataclass(frozen=True)
class CrossSellParams(LoggedParams):
    """Rule mining thresholds, the ALS used where rules are thin, and the table's length."""

    min_pair_count: int = 2
    use_cart_sessions: bool = True
    top_n: int = 50
    factors: int = 32
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    view_weight: float = 1.0
    cart_weight: float = 4.0
    purchase_weight: float = 10.0
    half_life_days: float = 60.0
    seed: int = 7
    threads: int = 0  # 0: decided by the data's size


@dataclass
class CrossSellModel:
    """The precomputed also-bought table and its per-anchor lookup; build with `fit_cross_sell`."""

    params: CrossSellParams
    table: pd.DataFrame
    n_baskets: int
    note: str = ""

    def __post_init__(self) -> None:
        # One table sorted by anchor (stable: each anchor keeps its order) and each anchor's
        # row range: a dict of per-anchor frames would cost a frame per product (100k
        # products: gigabytes, pickled with the model too).
        anchors = self.table["anchor_product_id"]
        if not anchors.is_monotonic_increasing:
            self.table = self.table.sort_values("anchor_product_id", kind="stable")
            anchors = self.table["anchor_product_id"]
        names, starts = np.unique(anchors.to_numpy(dtype=str), return_index=True)
        ends = np.append(starts[1:], len(anchors))
        self._rows = dict(zip(names.tolist(), zip(starts.tolist(), ends.tolist())))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle; a model pickled with per-anchor frames gets its row ranges instead."""
        self.__dict__.update(state)
        if "_rows" not in state:
            self.__dict__.pop("_by_anchor", None)
            self.__post_init__()

    def also_bought(self, product_id: str, k: int = DEFAULT_K,
                    exclude: Iterable[str] = ()) -> pd.DataFrame:
        """The top-k companions of `product_id` (fewer if the table has fewer), best first.

        Args:
            product_id: the anchor (the product being viewed or carted).
            k: list length.
            exclude: products to leave out (already in the cart, already bought).

        Returns:
            Rows of the precomputed table (`TABLE_COLUMNS`), re-ranked from 1.
        """
        span = self._rows.get(str(product_id))
        if span is None:
            return pd.DataFrame(columns=list(TABLE_COLUMNS))
        rows = self.table.iloc[span[0]:span[1]]
        skip = set(exclude)
        if skip:
            rows = rows[~rows["product_id"].isin(skip)]
        rows = rows.head(k).copy()
        rows["rank"] = np.arange(1, len(rows) + 1)
        return rows

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """MLflow pyfunc entry: rows of product_id (and optional k) -> companions with reasons."""
        k = int(frame["k"].iloc[0]) if "k" in frame and len(frame) else DEFAULT_K
        parts = [self.also_bought(str(product_id), k) for product_id in frame["product_id"]]
        parts = [part for part in parts if not part.empty]
        return pd.concat(parts, ignore_index=True) if parts else \
            pd.DataFrame(columns=list(TABLE_COLUMNS))

    def input_example(self) -> pd.DataFrame:
        anchor = self.table["anchor_product_id"].iloc[0] if len(self.table) else "p-unknown"
        return pd.DataFrame({"product_id": [str(anchor)], "k": [DEFAULT_K]})


# -- baskets and rules ---------------------------------------------------------------------------


def basket_lists(data: ShopData, use_cart_sessions: bool) -> pd.DataFrame:
    """(basket_id, product_id) pairs: one basket per order, plus abandoned multi-product carts.

    A session counts as an abandoned cart when it added products to the cart and bought
    nothing; it joins only when it carted two or more products (one product says nothing
    about what goes together).
    """
    events = data.events[data.events["product_id"].notna()]
    orders = events[events["event_type"] == "purchase"][["order_key", "product_id"]]
    baskets = orders.rename(columns={"order_key": "basket_id"}).drop_duplicates()
    if not use_cart_sessions:
        return baskets
    purchased_sessions = set(events.loc[events["event_type"] == "purchase", "session_key"])
    carts = events[(events["event_type"] == "add_to_cart")
                   & ~events["session_key"].isin(purchased_sessions)]
    carts = carts[["session_key", "product_id"]].drop_duplicates()
    sizes = carts.groupby("session_key")["product_id"].transform("size")
    carts = carts[sizes >= 2].rename(columns={"session_key": "basket_id"})
    carts = carts.assign(basket_id="cart:" + carts["basket_id"].astype(str))
    return pd.concat([baskets, carts], ignore_index=True)


def pair_statistics(baskets: pd.DataFrame, products: IdIndex
                    ) -> tuple[sp.csr_matrix, np.ndarray, int]:
    """Co-occurrence counts (products x products), per-product basket counts and basket total."""
    basket_index = IdIndex.from_values(baskets["basket_id"])
    rows, cols = basket_index.lookup(baskets["basket_id"]), products.lookup(baskets["product_id"])
    keep = cols >= 0
    matrix = sp.csr_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])),
                           shape=(len(basket_index), len(products)))
    matrix.data[:] = 1.0
    return (matrix.T @ matrix).tocsr(), np.asarray(matrix.sum(axis=0)).ravel(), len(basket_index)


def mine_rules(co_counts: sp.csr_matrix, item_counts: np.ndarray, n_baskets: int,
               min_pair_count: int) -> pd.DataFrame:
    """Every rule X -> Y whose products share at least `min_pair_count` baskets.

    Args:
        co_counts, item_counts, n_baskets: from `pair_statistics`.
        min_pair_count: fewer shared baskets than this is chance, not a rule.

    Returns:
        Columns anchor, item (product indexes), pair_count, support, confidence, lift and
        score (confidence x lift); empty when no two products share enough baskets.
    """
    pairs = co_counts.tocoo()
    mask = (pairs.row != pairs.col) & (pairs.data >= max(min_pair_count, 1))
    anchor, item, count = pairs.row[mask], pairs.col[mask], pairs.data[mask]
    baskets = max(n_baskets, 1)
    confidence = count / item_counts[anchor]
    lift = confidence / (item_counts[item] / baskets)
    return pd.DataFrame({"anchor": anchor, "item": item, "pair_count": count,
                         "support": count / baskets, "confidence": confidence, "lift": lift,
                         "score": confidence * lift})


# -- fitting -------------------------------------------------------------------------------------


def fit_cross_sell(data: ShopData, params: CrossSellParams = CrossSellParams()) -> CrossSellModel:
    """Mine the rules, fill thin anchors from ALS similarity, and precompute the top-N table.

    Returns:
        The fitted model; `note` says when there is nothing to pair (a single product, or no
        basket with two products and too little data for ALS).
    """
    interactions = product_events(data.events)
    products = IdIndex.from_values(pd.concat([interactions["product_id"],
                                              data.products["product_id"]], ignore_index=True))
    baskets = basket_lists(data, params.use_cart_sessions)
    co_counts, item_counts, n_baskets = pair_statistics(baskets, products)
    rules = mine_rules(co_counts, item_counts, n_baskets, params.min_pair_count)
    similar, note = _similar_items(interactions, products, params, data.end)
    names = _names(data.products, products)
    table = _build_table(rules, similar, co_counts, item_counts, n_baskets, products, names,
                         params.top_n)
    if table.empty and not note:
        note = "no pair of products was bought (or carted) together and no similarity was learnt"
    log.info("cross-sell: %d baskets, %d rules, %d pairs in the table", n_baskets, len(rules),
             len(table))
    return CrossSellModel(params, table, n_baskets, note)


def _names(catalogue: pd.DataFrame, products: IdIndex) -> np.ndarray:
    names = catalogue.set_index("product_id")["name"].reindex(products.ids)
    return names.where(names.notna(), pd.Series(products.ids, index=names.index)).astype(str) \
        .to_numpy(dtype=object)


def _similar_items(interactions: pd.DataFrame, products: IdIndex, params: CrossSellParams,
                   as_of: pd.Timestamp) -> tuple[np.ndarray | None, str]:
    """ALS product factors, or (None, why) when ALS cannot be fitted."""
    if len(products) < MIN_SIMILARITY_PRODUCTS:
        return None, f"{len(products)} product(s): there is nothing to cross-sell"
    customers = IdIndex.from_values(interactions["customer_id"])
    weights = InteractionWeights(params.view_weight, params.cart_weight, params.purchase_weight,
                                 params.half_life_days)
    confidence = confidence_matrix(interactions, customers, products, weights, as_of)
    if not (np.diff(confidence.indptr) >= 2).any():
        return None, "no customer interacted with two products: no similarity to learn"
    als = AlsParams(params.factors, params.regularization, params.alpha, params.iterations,
                    params.seed, params.threads)
    _, item_factors = fit_als(confidence, als)
    return item_factors, ""


def _build_table(rules: pd.DataFrame, similar: np.ndarray | None, co_counts: sp.csr_matrix,
                 item_counts: np.ndarray, n_baskets: int, products: IdIndex, names: np.ndarray,
                 top_n: int) -> pd.DataFrame:
    """Per anchor: its rules by confidence x lift, then ALS neighbours up to `top_n` pairs."""
    ranked_rules = rules.sort_values(["anchor", "score", "pair_count"],
                                     ascending=[True, False, False], kind="stable")
    ranked_rules = ranked_rules.groupby("anchor").head(top_n)
    rule_pairs = ranked_rules[["anchor", "item"]].assign(source="rules")
    frames = [rule_pairs]
    if similar is not None:
        frames.append(_similarity_fill(similar, ranked_rules, top_n))
    pairs = pd.concat(frames, ignore_index=True)
    if pairs.empty:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    return _describe_pairs(pairs, similar, co_counts, item_counts, n_baskets, products, names)


def _similarity_fill(factors: np.ndarray, ranked_rules: pd.DataFrame, top_n: int
                     ) -> pd.DataFrame:
    """For each anchor, its best ALS neighbours that its rules did not already list.

    Neighbours are ranked by the anchor's direction times the product's factor vector (not
    plain cosine): among equally similar products, the ones more customers engage with
    (longer vectors) come first.
    """
    n_rules = ranked_rules.groupby("anchor").size().reindex(range(len(factors)), fill_value=0)
    taken = ranked_rules.groupby("anchor")["item"].agg(set).to_dict()
    anchors, items = [], []
    batch = score_batch(len(factors))  # a block of anchors x all products at a time
    for start in range(0, len(factors), batch):
        block = normalise_rows(factors[start:start + batch]) @ factors.T
        for offset, row in enumerate(block):
            anchor = start + offset
            needed = top_n - int(n_rules.iloc[anchor])
            if needed <= 0:
                continue
            row[anchor] = -np.inf
            skip = taken.get(anchor, set())
            chosen = [item for item in best_first(row, needed + len(skip))
                      if item not in skip][:needed]
            anchors.append(np.full(len(chosen), anchor, dtype=np.int64))
            items.append(np.asarray(chosen, dtype=np.int64))
    if not anchors:
        return pd.DataFrame({"anchor": [], "item": [], "source": []})
    return pd.DataFrame({"anchor": np.concatenate(anchors), "item": np.concatenate(items),
                         "source": "similar"})


def _describe_pairs(pairs: pd.DataFrame, similar: np.ndarray | None, co_counts: sp.csr_matrix,
                    item_counts: np.ndarray, n_baskets: int, products: IdIndex,
                    names: np.ndarray) -> pd.DataFrame:
    """Attach support, confidence, lift, similarity, a score order and a reason to each pair."""
    anchor, item = pairs["anchor"].to_numpy(int), pairs["item"].to_numpy(int)
    together = np.asarray(co_counts[anchor, item]).ravel()
    baskets = max(n_baskets, 1)
    confidence = np.where(item_counts[anchor] > 0, together / np.maximum(item_counts[anchor], 1), 0)
    lift = np.where(item_counts[item] > 0, confidence / np.maximum(item_counts[item] / baskets,
                                                                   1e-12), 0)
    unit = normalise_rows(similar) if similar is not None else None
    similarity = np.einsum("ij,ij->i", unit[anchor], unit[item]) if unit is not None \
        else np.zeros(len(pairs))
    is_rule = (pairs["source"] == "rules").to_numpy()
    # Rules first (by confidence x lift), then neighbours in the order the fill chose them.
    fill_order = pairs.groupby("anchor").cumcount().to_numpy()
    score = np.where(is_rule, 1.0 + confidence * lift, 1.0 / (2.0 + fill_order))
    table = pd.DataFrame({
        "anchor_product_id": products.ids[anchor], "product_id": products.ids[item],
        "score": score, "support": together / baskets, "confidence": confidence, "lift": lift,
        "similarity": similarity, "source": pairs["source"].to_numpy()})
    table["reason"] = [
        f"{conf:.0%} of baskets with {names[a]} also had this (lift {lft:.1f})" if rule else
        f"customers who liked {names[a]} also liked this (similarity {sim:.2f})"
        for rule, conf, lft, sim, a in zip(is_rule, confidence, lift, similarity, anchor)]
    table = table.sort_values(["anchor_product_id", "score"], ascending=[True, False],
                              kind="stable")
    table["rank"] = table.groupby("anchor_product_id").cumcount() + 1
    return table[list(TABLE_COLUMNS)].reset_index(drop=True)
