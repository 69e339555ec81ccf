"""Holdout targets for the ranking models (homepage, cross-sell): what a list is scored on.

Reads and writes nothing. Implements ARCHITECTURE.md's protocol on a `Split`: the targets are
products bought after the cut; a customer counts when they have any event before the cut and
a purchase after it; products the customer interacted with before the cut are excluded from
ranking (and from the targets, since they cannot be recommended).

Cross-sell is item-to-item, so its unit is a case: a product the customer bought after the
cut (the anchor) and the other products that customer bought after the cut in the same order
or in an order up to 7 days later (the targets: "bought with it, or next"). Its list is the
anchor's also-bought list.

Below the models: the homepage model's inner re-ranker and the evaluation both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tailor.models.data import Split
from tailor.models.interactions import product_events

# Cross-sell targets: the anchor's own order and orders up to this long after it. Later
# purchases say more about the customer's taste (the homepage's job) than about the anchor.
NEXT_WINDOW = pd.Timedelta(days=7)


@dataclass(frozen=True)
class RankingTargets:
    """What a ranking model is scored on: relevant pairs, pairs to skip, and the units scored.

    `unit` is the column naming one scored list: customer_id (homepage) or case_id (cross-sell).
    """

    unit: str
    truth: pd.DataFrame
    exclude: pd.DataFrame
    units: pd.Series
    anchors: pd.DataFrame | None = None

    @property
    def size(self) -> int:
        return len(self.units)


def _interacted_before(split: Split) -> pd.DataFrame:
    """(customer_id, product_id) pairs with any view, cart or purchase before the cut."""
    return product_events(split.train.events)[["customer_id", "product_id"]].drop_duplicates()


def _new_purchases(split: Split) -> pd.DataFrame:
    """Test purchases by customers known before the cut, of products new to them."""
    known = set(split.train.events["customer_id"])
    test = split.test_events
    bought = test[(test["event_type"] == "purchase") & test["customer_id"].isin(known)
                  & test["product_id"].notna()]
    bought = bought[["customer_id", "product_id", "order_key", "timestamp"]]
    seen = _interacted_before(split).assign(seen=True)
    bought = bought.merge(seen, on=["customer_id", "product_id"], how="left")
    return bought[bought["seen"].isna()].drop(columns="seen")


def homepage_targets(split: Split) -> RankingTargets:
    """Customers with history who bought products new to them after the cut."""
    truth = _new_purchases(split)[["customer_id", "product_id"]].drop_duplicates()
    users = truth["customer_id"].drop_duplicates().reset_index(drop=True)
    seen = _interacted_before(split)
    return RankingTargets("customer_id", truth, seen[seen["customer_id"].isin(set(users))], users)


def cross_sell_targets(split: Split) -> RankingTargets:
    """One case per (customer, anchor purchase) with the same or later orders as targets."""
    bought = _new_purchases(split)
    first = bought.sort_values("timestamp", kind="stable").drop_duplicates(
        ["customer_id", "product_id"])
    order_start = bought.groupby("order_key")["timestamp"].min().rename("order_start")
    first = first.merge(order_start, left_on="order_key", right_index=True)
    pairs = first.merge(first, on="customer_id", suffixes=("_anchor", ""))
    pairs = pairs[(pairs["product_id"] != pairs["product_id_anchor"])
                  & ((pairs["order_key"] == pairs["order_key_anchor"])
                     | ((pairs["order_start"] > pairs["order_start_anchor"])
                        & (pairs["order_start"] - pairs["order_start_anchor"] <= NEXT_WINDOW)))]
    pairs = pairs.assign(case_id=pairs["customer_id"] + "|" + pairs["product_id_anchor"])
    truth = pairs[["case_id", "product_id"]].drop_duplicates()
    anchors = pairs[["case_id", "customer_id", "product_id_anchor"]].drop_duplicates("case_id") \
        .rename(columns={"product_id_anchor": "anchor_product_id"}).reset_index(drop=True)
    seen = _interacted_before(split).merge(anchors[["case_id", "customer_id"]], on="customer_id")
    anchor_rows = anchors[["case_id", "anchor_product_id"]].rename(
        columns={"anchor_product_id": "product_id"})
    exclude = pd.concat([seen[["case_id", "product_id"]], anchor_rows], ignore_index=True)
    return RankingTargets("case_id", truth, exclude, anchors["case_id"], anchors)
