"""What the shop shows: homepage slates and checkout offers, as policies the shoppers answer.

`ShopperPolicy` is the hook for the closed loop (a recommender and an offer rule
behind one object). Shipped policies: `PopularityPolicy` (bestsellers, no offers: the
shop before personalization), `RandomPolicy`, and `TrueAffinityPolicy` (an oracle that
reads the hidden tastes: an upper bound for experiments). The bulk simulator uses the
vectorised `bestseller_slates` and `random_promotions` instead of per-session calls.
Reads and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tailor.simulate import behaviour
from tailor.simulate.day import CartLines, CartSummary, OfferSource, Sessions, SlateSource, is_owned
from tailor.simulate.world import ShopState


@runtime_checkable
class ShopperPolicy(Protocol):
    """What a shop shows one customer: a homepage slate and, at checkout, maybe an incentive."""

    def recommend(self, customer_id: str, context: dict[str, Any], k: int) -> list[str]:
        """Up to k product ids for the homepage slate, best first.

        `context` has `timestamp` (ISO), `day`, `hour`, `weekday`, `device_type`, `session_id`.
        """
        ...

    def offer(self, customer_id: str, session: dict[str, Any]) -> str | None:
        """None, "10_off" or "free_shipping" for a cart.

        `session` has `session_id`, `timestamp`, `hour`, `device_type`, `cart_value`,
        `n_items` and `product_ids`.
        """
        ...


def bestseller_ranking(state: ShopState) -> np.ndarray:
    """In-stock product indices by units sold so far, best first.

    Before any sale in the window, ties are broken by the products' pre-window sales
    (stand-in: their popularity), as a shop's bestseller list would be.
    """
    catalogue = state.catalogue
    prior = np.exp(catalogue.log_popularity.astype(np.float64))
    score = state.purchases_per_product + 0.5 * prior / prior.max()
    ranked = np.argsort(-score, kind="stable")
    return ranked[catalogue.in_stock[ranked]].astype(np.int32)


def bestseller_slates(k: int) -> SlateSource:
    """Slate source for the bulk simulator: today's bestsellers, the same for every session."""

    def slates(state: ShopState, sessions: Sessions, day: int) -> tuple[np.ndarray, np.ndarray]:
        top = np.full(k, -1, np.int32)
        ranked = bestseller_ranking(state)[:k]
        top[:len(ranked)] = ranked
        text = json.dumps(state.catalogue.product_ids[ranked].tolist(), separators=(",", ":"))
        return (np.broadcast_to(top, (len(sessions), k)),
                np.broadcast_to(np.array(text, dtype=object), (len(sessions),)))

    return slates


def random_promotions(share: float, rng: np.random.Generator) -> OfferSource:
    """Offer source for the bulk simulator: a random `share` of carts sees a site-wide promotion."""

    def offers(state: ShopState, sessions: Sessions, carts: CartSummary,
               lines: CartLines) -> np.ndarray:
        shown = rng.random(len(carts.session)) < share
        kind = rng.integers(1, 3, len(carts.session))
        return np.where(shown, kind, 0).astype(np.int8)

    return offers


class PopularityPolicy:
    """Bestsellers for everyone and no offers: the shop before personalization."""

    def __init__(self, state: ShopState) -> None:
        self.state = state
        self._ranking_day = -1
        self._ranking: list[str] = []

    def recommend(self, customer_id: str, context: dict[str, Any], k: int) -> list[str]:
        if self._ranking_day != self.state.day:  # sales change daily; refresh once a day
            ranked = bestseller_ranking(self.state)
            self._ranking = self.state.catalogue.product_ids[ranked].tolist()
            self._ranking_day = self.state.day
        return self._ranking[:k]

    def offer(self, customer_id: str, session: dict[str, Any]) -> str | None:
        return None


class RandomPolicy:
    """k in-stock products drawn at random per request, and no offers (a floor for experiments)."""

    def __init__(self, state: ShopState, seed: int = 0) -> None:
        self.state = state
        self.rng = np.random.default_rng(seed)

    def recommend(self, customer_id: str, context: dict[str, Any], k: int) -> list[str]:
        in_stock = np.flatnonzero(self.state.catalogue.in_stock)
        chosen = self.rng.choice(in_stock, size=min(k, len(in_stock)), replace=False)
        return self.state.catalogue.product_ids[chosen].tolist()

    def offer(self, customer_id: str, session: dict[str, Any]) -> str | None:
        return None


def true_affinity_scores(state: ShopState, customer_index: int, day: int, hour: int) -> np.ndarray:
    """The hidden affinity of one customer for every product at a given day and hour."""
    n_products = state.catalogue.n_products
    weekday = (state.config.start_date + dt.timedelta(days=day)).weekday()
    customer = np.full(n_products, customer_index, dtype=np.int32)
    sub_logprob = behaviour.subcategory_logprob(
        state, customer[:1], day, np.array([hour]), weekend=weekday >= 5)
    return behaviour.affinity(state, sub_logprob, np.zeros(n_products, np.int64), customer,
                              np.arange(n_products))


class TrueAffinityPolicy:
    """Oracle: each customer's top in-stock, not-yet-owned products by hidden affinity.

    It reads ground truth, so it is an upper bound for experiments, never a model.
    """

    def __init__(self, state: ShopState) -> None:
        self.state = state
        self._index = {cid: i for i, cid in enumerate(state.customers.customer_ids)}

    def recommend(self, customer_id: str, context: dict[str, Any], k: int) -> list[str]:
        customer = self._index[customer_id]
        scores = true_affinity_scores(self.state, customer, int(context["day"]),
                                      int(context["hour"]))
        products = np.arange(self.state.catalogue.n_products)
        owned = is_owned(self.state, np.full(len(products), customer), products)
        scores[~self.state.catalogue.in_stock | owned] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        return self.state.catalogue.product_ids[top].tolist()

    def offer(self, customer_id: str, session: dict[str, Any]) -> str | None:
        return None
