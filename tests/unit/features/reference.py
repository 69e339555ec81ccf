"""An independent pandas re-implementation of the customer features, for the leakage test.

Written from the feature catalogue's descriptions, straight over the raw events of a
simulated shop, one (customer, time) at a time: no SQL, no snapshots table, no shared
code with tailor.features except the catalogue's documented constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
NEVER = 3650.0
SITE_VIEW_TYPES = ("product_view", "add_to_cart", "purchase")


@dataclass
class Shop:
    """The raw tables of a simulated shop, prepared once."""

    events: pd.DataFrame          # with category and tier columns joined from the catalogue
    profiles: pd.DataFrame        # indexed by customer_id
    categories: list[str]
    first_snapshot: pd.Timestamp  # the day after the oldest event


def tiers_by_hand(products: pd.DataFrame) -> pd.Series:
    """Price terciles per category: position i of n (by price, then id) -> floor(3 i / n)."""
    tiers = {}
    for _, group in products.dropna(subset=["price"]).groupby("category"):
        ordered = group.sort_values(["price", "product_id"])
        n = len(ordered)
        for position, product_id in enumerate(ordered["product_id"]):
            tiers[product_id] = math.floor(3 * position / n)
    return pd.Series(tiers, name="tier")


def load_shop(folder) -> Shop:
    """Read events.parquet, products.csv and customers.csv written by the simulator."""
    events = pd.read_parquet(folder / "events.parquet")
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    products = pd.read_csv(folder / "products.csv", dtype={"product_id": str})
    products["category"] = products["category"].fillna("unknown")
    catalogue = products.set_index("product_id")
    events["category"] = events["product_id"].map(catalogue["category"])
    events["tier"] = events["product_id"].map(tiers_by_hand(products))
    profiles = pd.read_csv(folder / "customers.csv", dtype={"customer_id": str})
    profiles["signup_date"] = pd.to_datetime(profiles["signup_date"], utc=True)
    oldest = events["timestamp"].min().floor("D")
    return Shop(events.sort_values("timestamp", kind="stable"),
                profiles.set_index("customer_id"), sorted(products["category"].unique()),
                oldest + DAY)


def _between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end)]


def _count(frame: pd.DataFrame, kind: str) -> int:
    return int((frame["event_type"] == kind).sum())


def _orders(mine: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> int:
    purchases = mine[mine["event_type"] == "purchase"]
    placed = purchases.groupby("order_id")["timestamp"].min()
    return int(((placed >= start) & (placed < end)).sum())


def _revenue(frame: pd.DataFrame) -> float:
    purchases = frame[frame["event_type"] == "purchase"]
    return float((purchases["price"] * purchases["quantity"].fillna(1)).sum())


def _carts(frame: pd.DataFrame) -> tuple[int, int]:
    """(carts, abandoned): session-days with an add to cart, and those without a purchase."""
    site = frame[frame["session_id"].notna()]
    units = site.groupby([site["session_id"], site["timestamp"].dt.date])["event_type"]
    kinds = units.agg(set)
    carts = [kinds_ for kinds_ in kinds if "add_to_cart" in kinds_]
    return len(carts), sum(1 for kinds_ in carts if "purchase" not in kinds_)


def _mean_or_zero(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else 0.0


def _recency_score(days: float | None) -> int:
    if days is None:
        return 0
    return 5 if days <= 7 else 4 if days <= 30 else 3 if days <= 90 else 2 if days <= 180 else 1


def _frequency_score(orders: int) -> int:
    return 0 if orders == 0 else 1 if orders == 1 else 2 if orders == 2 else \
        3 if orders <= 4 else 4 if orders <= 9 else 5


def _monetary_score(revenue: float) -> int:
    if revenue <= 0:
        return 0
    return 1 if revenue < 50 else 2 if revenue < 150 else 3 if revenue < 400 else \
        4 if revenue < 1000 else 5


def _days(later: pd.Timestamp, earlier: pd.Timestamp | None, default: float) -> float:
    if earlier is None or pd.isna(earlier):
        return default
    return max(0.0, (later - earlier.floor("s")).total_seconds() / 86_400)


def churn_features(shop: Shop, customer_id: str, when: pd.Timestamp) -> dict:
    """Every feature of the churn service for one customer at time `when`."""
    snapshot = when.floor("D")  # daily snapshots: the newest one at or before `when`
    profile = shop.profiles.loc[customer_id] if customer_id in shop.profiles.index else None
    signup = profile["signup_date"] if profile is not None else pd.NaT
    profile_day = max(shop.first_snapshot, signup.ceil("D")) if pd.notna(signup) \
        else shop.first_snapshot
    mine = shop.events[shop.events["customer_id"] == customer_id]
    before = mine[mine["timestamp"] < snapshot]
    known = len(before) > 0 or (profile is not None and snapshot >= profile_day)
    if not known:
        return defaults_like(shop)
    last_30, prior_30 = _between(before, snapshot - 30 * DAY, snapshot), \
        _between(before, snapshot - 60 * DAY, snapshot - 30 * DAY)
    last_90 = _between(before, snapshot - 90 * DAY, snapshot)
    orders = _orders(mine, pd.Timestamp.min.tz_localize("UTC"), snapshot)
    orders_30 = _orders(mine, snapshot - 30 * DAY, snapshot)
    orders_prior = _orders(mine, snapshot - 60 * DAY, snapshot - 30 * DAY)
    revenue = _revenue(before)
    sessions = mine[mine["session_id"].notna()].groupby("session_id")["timestamp"].min()
    carts, abandoned = _carts(last_90)
    opens_90, clicks_90 = _count(last_90, "email_open"), _count(last_90, "email_click")
    bought = before.loc[before["event_type"] == "purchase", "tier"].dropna()
    viewed = before.loc[before["event_type"] == "product_view", "tier"].dropna()
    with_device = before[before["device_type"].notna()]
    device = with_device["device_type"].iloc[-1] if len(with_device) else (
        profile["device_type"] if profile is not None and pd.notna(profile["device_type"])
        else "unknown")
    interactions = last_90[last_90["event_type"].isin(SITE_VIEW_TYPES)]
    counts = interactions["category"].value_counts()
    total = int(counts.sum())
    last_purchase = before.loc[before["event_type"] == "purchase", "timestamp"].max()
    last_seen = before["timestamp"].max() if len(before) else None
    request = when.floor("s")
    days_purchase = _days(request, last_purchase if pd.notna(last_purchase) else None, NEVER)
    recency = _recency_score(days_purchase if pd.notna(last_purchase) else None)
    frequency, monetary = _frequency_score(orders), _monetary_score(revenue)
    values = {
        "orders_lifetime": orders, "orders_30d": orders_30,
        "orders_90d": _orders(mine, snapshot - 90 * DAY, snapshot),
        "revenue_lifetime": revenue, "revenue_30d": _revenue(last_30),
        "revenue_90d": _revenue(last_90),
        "avg_order_value": revenue / orders if orders else 0.0,
        "purchase_frequency_trend": (orders_30 + 1) / (orders_prior + 1),
        "sessions_30d": int(((sessions >= snapshot - 30 * DAY) & (sessions < snapshot)).sum()),
        "active_days_30d": int(last_30["timestamp"].dt.date.nunique()),
        "product_page_views_30d": _count(last_30, "product_view"),
        "searches_30d": _count(last_30, "search"),
        "cart_adds_30d": _count(last_30, "add_to_cart"),
        "carts_90d": carts,
        "cart_abandonment_rate_90d": abandoned / carts if carts else 0.0,
        "email_opens_90d": opens_90, "email_clicks_90d": clicks_90,
        "email_open_rate_90d": min(1.0, opens_90 / 13),
        "email_click_rate_90d": clicks_90 / opens_90 if opens_90 else 0.0,
        "email_open_trend": _count(last_30, "email_open") - _count(prior_30, "email_open"),
        "price_sensitivity": float(bought.mean() - viewed.mean())
        if len(bought) and len(viewed) else 0.0,
        "avg_viewed_price_90d": _mean_or_zero(
            last_90.loc[last_90["event_type"] == "product_view", "price"]),
        "avg_purchase_price": _mean_or_zero(
            before.loc[before["event_type"] == "purchase", "price"]),
        "device_type": device,
        "region": profile["location"] if profile is not None else "unknown",
        "is_returning_customer": orders > 0,
        "top_category": (sorted(counts.index[counts == counts.max()])[0] if total else "unknown"),
        "days_since_last_purchase": days_purchase,
        "days_since_last_visit": _days(request, last_seen, NEVER),
        "days_since_signup": _days(request, signup if pd.notna(signup) else None, 0.0),
        "recency_score": recency, "frequency_score": frequency, "monetary_score": monetary,
        "rfm_score": recency + frequency + monetary,
    }
    for category in shop.categories:
        values[share_column(category)] = counts.get(category, 0) / total if total else 0.0
    return values


def share_column(category: str) -> str:
    """category_share_<category> (the simulator's categories are plain lower-case words)."""
    return "category_share_" + "".join(c if c.isalnum() else "_" for c in category.lower())


def defaults_like(shop: Shop) -> dict:
    """What the churn service serves for a customer it has no row for."""
    values = {name: 0 for name in (
        "orders_lifetime", "orders_30d", "orders_90d", "sessions_30d", "active_days_30d",
        "product_page_views_30d", "searches_30d", "cart_adds_30d", "carts_90d",
        "email_opens_90d", "email_clicks_90d", "email_open_trend", "recency_score",
        "frequency_score", "monetary_score", "rfm_score")}
    values.update({name: 0.0 for name in (
        "revenue_lifetime", "revenue_30d", "revenue_90d", "avg_order_value",
        "cart_abandonment_rate_90d", "email_open_rate_90d", "email_click_rate_90d",
        "price_sensitivity", "avg_viewed_price_90d", "avg_purchase_price", "days_since_signup")})
    values.update({"purchase_frequency_trend": 1.0, "device_type": "unknown", "region": "unknown",
                   "is_returning_customer": False, "top_category": "unknown",
                   "days_since_last_purchase": NEVER, "days_since_last_visit": NEVER})
    for category in shop.categories:
        values[share_column(category)] = 0.0
    return values


def sample_times(shop: Shop, customer_ids: list[str], rng: np.random.Generator,
                 per_customer: int = 2) -> list[tuple[str, pd.Timestamp]]:
    """(customer, time) pairs: random instants, plus the edges around each one's purchases."""
    start = shop.first_snapshot - 2 * DAY
    end = shop.events["timestamp"].max().ceil("D") + DAY
    span = (end - start).total_seconds()
    pairs = [(customer, start + timedelta(seconds=float(rng.uniform(0, span))))
             for customer in customer_ids for _ in range(per_customer)]
    purchases = shop.events[(shop.events["event_type"] == "purchase")
                            & shop.events["customer_id"].isin(customer_ids)]
    for row in purchases.head(15).itertuples():
        moment = row.timestamp
        # At the purchase itself, at the midnight before and after it, and a second later.
        pairs += [(row.customer_id, moment), (row.customer_id, moment.floor("D")),
                  (row.customer_id, moment.ceil("D")),
                  (row.customer_id, moment.ceil("D") + pd.Timedelta(seconds=1))]
    return pairs


EMAIL_TYPES = ("email_open", "email_click")


def session_features(shop: Shop, customer_id: str, until: pd.Timestamp) -> dict:
    """The session_context features of one customer just after `until`: the session of the
    newest site event at or before `until`, counted over that session's events up to
    `until` (the simulator gives every site event a session_id)."""
    mine = shop.events[shop.events["customer_id"] == customer_id]
    site = mine[~mine["event_type"].isin(EMAIL_TYPES) & (mine["timestamp"] <= until)]
    newest = site.iloc[-1]
    session = site[site["session_id"] == newest["session_id"]]
    kinds = session["event_type"]
    started = session["timestamp"].min()
    sign = kinds.map({"add_to_cart": 1.0, "remove_from_cart": -1.0}).fillna(0.0)
    quantity = session["quantity"].fillna(1.0)
    viewed = sorted(session.loc[kinds == "product_view", "category"].dropna().unique())
    devices = session["device_type"].dropna()
    return {
        "session_length_seconds": (newest["timestamp"] - started.floor("s")).total_seconds(),
        "session_events": len(session),
        "session_page_views": int(kinds.isin(["page_view", "product_view"]).sum()),
        "session_product_views": _count(session, "product_view"),
        "session_searches": _count(session, "search"),
        "session_cart_items": float((sign * quantity).sum()),
        "session_cart_value": float((sign * quantity * session["price"].fillna(0.0)).sum()),
        "session_categories_viewed": len(viewed),
        "session_viewed_categories": viewed,
        "session_checkout_started": bool((kinds == "checkout_start").any()),
        "session_device_type": devices.iloc[0] if len(devices) else "unknown",
        "session_is_returning_visitor": bool(mine["timestamp"].min() < started),
    }


def request_features(when: pd.Timestamp) -> dict:
    """Hour, weekday and part of day of a request at `when` (UTC)."""
    return {"hour_of_day": when.hour, "day_of_week": when.dayofweek,
            "is_weekend": when.dayofweek >= 5,
            "time_of_day": ("night", "morning", "afternoon", "evening")[when.hour // 6]}
