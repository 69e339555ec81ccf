"""Small hand-made shops for the model unit tests: plain rows in, a `ShopData` out."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from tailor.models.data import ShopData, build_shop_data

START = pd.Timestamp("2026-01-05", tz="UTC")


def events_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    """Events from (customer, event_type, product, day, [session, order, price, quantity]) rows."""
    records = []
    for row in rows:
        customer, kind, product, day, *rest = row
        session, order, price, quantity = (list(rest) + [None, None, None, None])[:4]
        records.append({"customer_id": customer, "event_type": kind, "product_id": product,
                        "timestamp": START + pd.Timedelta(days=day), "session_id": session,
                        "order_id": order, "price": price, "quantity": quantity})
    return pd.DataFrame(records)


def shop(rows: Iterable[tuple], products: pd.DataFrame | None = None) -> ShopData:
    """A `ShopData` from event rows and an optional catalogue."""
    return build_shop_data(events_frame(rows), products)
