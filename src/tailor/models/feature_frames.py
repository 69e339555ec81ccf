"""Training frames for the churn and checkout classifiers: features as of a time, plus labels.

Reads: the Feast feature store (offline store, point in time) when the `ShopData` came from
a warehouse whose feature store has been built (`tailor features`); writes nothing.
`churn_features` and `checkout_features` are the one place that decides where features
come from:
  * churn reads the Feast `churn` feature service (`tailor.features.training.training_frame`)
    when the store exists, else computes the same kind of features locally;
  * checkout computes its cart-time features locally: the Feast `checkout` service's
    historical retrieval joins the per-event session source, which took 245 s for the demo
    shop's 5,684 carts (against 2 s here), too slow to train on. The local names follow the
    feature catalogue (`tailor.features.specs`) wherever the feature is the same.
Local features use only events strictly before (churn) or up to (checkout: the cart itself)
each row's time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailor.models.data import ShopData

DAY = pd.Timedelta(days=1)
NO_HISTORY_DAYS = 3650.0  # the feature catalogue's "never happened" value
SITE_EVENTS = ("page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
               "checkout_start", "purchase", "click")
CART_EVENTS = ("add_to_cart", "remove_from_cart")
KEY_COLUMNS: tuple[str, ...] = ("customer_id", "event_timestamp", "session_key")


# -- churn ---------------------------------------------------------------------------------------


def feature_source(data: ShopData, model: str) -> str:
    """Where `model`'s features come from for this history: 'feast:<service>' or 'local'."""
    if model == "churn" and feast_store_built(data):
        return "feast:churn"
    return "local"


def feast_store_built(data: ShopData) -> bool:
    """Whether the history came from a warehouse whose Feast store has been built."""
    settings = data.feature_settings
    if settings is None:
        return False
    from tailor.features.compute import read_manifest

    return bool(read_manifest(settings.home_path))


def churn_features(data: ShopData, entities: pd.DataFrame) -> pd.DataFrame:
    """Customer features as of each row's `event_timestamp`: the churn feature service.

    Args:
        data: the history (its `feature_settings` name the Feast store, when there is one).
        entities: customer_id, event_timestamp (one row per customer and snapshot), plus any
            label columns to carry along.

    Returns:
        `entities` with one column per feature added.
    """
    if feature_source(data, "churn") == "feast:churn":
        from tailor.features.training import training_frame

        return training_frame(data.feature_settings, entities, "churn")
    return local_churn_features(data, entities)


def local_churn_features(data: ShopData, entities: pd.DataFrame) -> pd.DataFrame:
    """The churn features computed here from the events (no feature store needed)."""
    frames = [_customer_snapshot(data, group, moment)
              for moment, group in entities.groupby("event_timestamp", sort=True)]
    if not frames:
        return entities.assign(**{name: pd.Series(dtype=float) for name in CHURN_FEATURES})
    return pd.concat(frames, ignore_index=True)


CHURN_FEATURES: tuple[str, ...] = (
    "orders_lifetime", "orders_30d", "orders_90d", "revenue_lifetime", "revenue_90d",
    "avg_order_value", "purchase_frequency_trend", "sessions_7d", "sessions_30d",
    "session_trend", "active_days_30d", "product_page_views_30d", "searches_30d",
    "cart_adds_30d", "email_opens_90d", "email_clicks_90d", "email_open_trend",
    "days_since_last_purchase", "days_since_last_visit", "days_since_first_seen",
    "mean_days_between_orders", "purchase_overdue_ratio", "active_days_lifetime",
    "mean_days_between_visits", "visit_overdue_ratio", "sessions_lifetime", "orders_per_week",
    "sessions_per_week", "orders_per_session",
)


def _customer_snapshot(data: ShopData, entities: pd.DataFrame, moment: pd.Timestamp
                       ) -> pd.DataFrame:
    """Churn features of `entities` (all at one `moment`) from the events before it."""
    events = data.events[(data.events["timestamp"] < moment)
                         & data.events["customer_id"].isin(set(entities["customer_id"]))]
    age = (moment - events["timestamp"]) / DAY
    features = pd.DataFrame(index=pd.Index(entities["customer_id"].unique(), name="customer_id"))
    purchases = events["event_type"] == "purchase"
    orders = events[purchases].groupby("customer_id")["order_key"]
    recent_orders = events[purchases & (age < 30)].groupby("customer_id")["order_key"].nunique()
    prior_orders = events[purchases & (age >= 30) & (age < 60)].groupby("customer_id")[
        "order_key"].nunique()
    features["orders_lifetime"] = orders.nunique()
    features["orders_30d"] = recent_orders
    features["orders_90d"] = events[purchases & (age < 90)].groupby("customer_id")[
        "order_key"].nunique()
    revenue = (events["price"] * events["quantity"].fillna(1)).where(purchases)
    features["revenue_lifetime"] = revenue.groupby(events["customer_id"]).sum()
    features["revenue_90d"] = revenue.where(age < 90).groupby(events["customer_id"]).sum()
    features = features.fillna(0.0)
    features["avg_order_value"] = features["revenue_lifetime"] / \
        features["orders_lifetime"].where(features["orders_lifetime"] > 0)
    features["purchase_frequency_trend"] = (recent_orders.reindex(features.index).fillna(0) + 1) / \
        (prior_orders.reindex(features.index).fillna(0) + 1)
    _add_activity(features, events, age)
    _add_recency(features, events, moment)
    result = entities.merge(features.reset_index(), on="customer_id", how="left")
    return result.fillna({name: 0.0 for name in CHURN_FEATURES})


def _count(events: pd.DataFrame, mask: pd.Series, index: pd.Index, column: str = "") -> pd.Series:
    """Events (or distinct values of `column`) per customer under `mask`, 0 where none."""
    grouped = events[mask].groupby("customer_id")
    counts = grouped[column].nunique() if column else grouped.size()
    return counts.reindex(index).fillna(0.0)


def _add_activity(features: pd.DataFrame, events: pd.DataFrame, age: pd.Series) -> None:
    """Session, browsing, cart and e-mail counts over their windows."""
    index, kind = features.index, events["event_type"]
    site = kind.isin(SITE_EVENTS)
    features["sessions_7d"] = _count(events, site & (age < 7), index, "session_key")
    features["sessions_30d"] = _count(events, site & (age < 30), index, "session_key")
    prior_sessions = _count(events, site & (age >= 7) & (age < 14), index, "session_key")
    features["session_trend"] = (features["sessions_7d"] + 1) / (prior_sessions + 1)
    days = events["timestamp"].dt.floor("D")
    features["active_days_30d"] = _count(events.assign(day=days), site & (age < 30), index, "day")
    features["product_page_views_30d"] = _count(events, (kind == "product_view") & (age < 30), index)
    features["searches_30d"] = _count(events, (kind == "search") & (age < 30), index)
    features["cart_adds_30d"] = _count(events, (kind == "add_to_cart") & (age < 30), index)
    features["email_opens_90d"] = _count(events, (kind == "email_open") & (age < 90), index)
    features["email_clicks_90d"] = _count(events, (kind == "email_click") & (age < 90), index)
    features["email_open_trend"] = _count(events, (kind == "email_open") & (age < 30), index) - \
        _count(events, (kind == "email_open") & (age >= 30) & (age < 60), index)


def _add_recency(features: pd.DataFrame, events: pd.DataFrame, moment: pd.Timestamp) -> None:
    """Days since the last purchase, last visit and first event; order rhythm."""
    index = features.index
    by_customer = events.groupby("customer_id")["timestamp"]
    last_purchase = events[events["event_type"] == "purchase"].groupby("customer_id")[
        "timestamp"].max().reindex(index)
    first_seen = by_customer.min().reindex(index)
    features["days_since_last_purchase"] = ((moment - last_purchase) / DAY).fillna(NO_HISTORY_DAYS)
    features["days_since_last_visit"] = ((moment - by_customer.max().reindex(index)) / DAY) \
        .fillna(NO_HISTORY_DAYS)
    features["days_since_first_seen"] = ((moment - first_seen) / DAY).fillna(0.0)
    orders = features["orders_lifetime"].where(features["orders_lifetime"] > 0)
    features["mean_days_between_orders"] = (features["days_since_first_seen"] / orders) \
        .fillna(NO_HISTORY_DAYS)
    features["purchase_overdue_ratio"] = (features["days_since_last_purchase"]
                                          / features["mean_days_between_orders"].clip(lower=1.0))
    active_days = events.assign(day=events["timestamp"].dt.floor("D")).groupby("customer_id")[
        "day"].nunique().reindex(index).fillna(0.0)
    features["active_days_lifetime"] = active_days
    features["mean_days_between_visits"] = (features["days_since_first_seen"]
                                            / active_days.where(active_days > 0)).fillna(
        NO_HISTORY_DAYS)
    features["visit_overdue_ratio"] = (features["days_since_last_visit"]
                                       / features["mean_days_between_visits"].clip(lower=1.0))
    site = events[events["event_type"].isin(SITE_EVENTS)]
    sessions = site.groupby("customer_id")["session_key"].nunique().reindex(index).fillna(0.0)
    weeks = (features["days_since_first_seen"] / 7.0).clip(lower=1.0)
    features["sessions_lifetime"] = sessions
    features["orders_per_week"] = features["orders_lifetime"] / weeks
    features["sessions_per_week"] = sessions / weeks
    features["orders_per_session"] = features["orders_lifetime"] / sessions.clip(lower=1.0)


def churn_snapshot_entities(data: ShopData, moment: pd.Timestamp) -> pd.DataFrame:
    """The churn population at `moment`: customers with at least one purchase before it."""
    purchases = data.purchases()
    buyers = purchases.loc[purchases["timestamp"] < moment, "customer_id"].unique()
    return pd.DataFrame({"customer_id": pd.Series(buyers, dtype=object),
                         "event_timestamp": moment})


def churn_labels(data: ShopData, entities: pd.DataFrame, horizon: pd.Timedelta) -> pd.Series:
    """1 when the customer bought nothing in [event_timestamp, event_timestamp + horizon), else 0."""
    rows = entities[["customer_id", "event_timestamp"]].reset_index(names="row")
    joined = rows.merge(data.purchases()[["customer_id", "timestamp"]], on="customer_id")
    inside = joined[(joined["timestamp"] >= joined["event_timestamp"])
                    & (joined["timestamp"] < joined["event_timestamp"] + horizon)]
    churned = (~rows["row"].isin(set(inside["row"]))).astype(int).to_numpy()
    return pd.Series(churned, index=entities.index, name="label")


# -- checkout ------------------------------------------------------------------------------------


CHECKOUT_FEATURES: tuple[str, ...] = (
    "session_cart_value", "session_cart_items", "session_cart_products", "session_cart_removes",
    "session_max_item_price", "session_product_views", "session_searches",
    "session_page_views", "session_length_seconds", "hour_of_day", "day_of_week",
    "is_weekend", "device_mobile", "device_desktop", "device_tablet",
    "orders_lifetime", "carts_before", "cart_abandonment_rate", "days_since_last_purchase",
    "days_since_first_seen", "is_returning_customer",
)


def cart_snapshots(data: ShopData) -> pd.DataFrame:
    """One row per session that added to the cart: the cart as the customer heads to checkout.

    The snapshot is the session's last cart change before its first checkout_start or
    purchase (the moment an incentive can still be shown); later events never feed features.

    Returns:
        Columns customer_id, session_key, event_timestamp (snapshot), session_start,
        label (1 = abandoned: no purchase in the session), incentive (offered in the
        session, or "none").
    """
    events = data.events
    by_session = events.groupby("session_key", sort=False)
    stop = events[events["event_type"].isin(["checkout_start", "purchase"])] \
        .groupby("session_key")["timestamp"].min()
    carts = events[events["event_type"].isin(CART_EVENTS)]
    carts = carts[carts["timestamp"] <= carts["session_key"].map(stop).fillna(pd.Timestamp.max
                                                                              .tz_localize("UTC"))]
    snapshot = carts.groupby("session_key").agg(customer_id=("customer_id", "first"),
                                                event_timestamp=("timestamp", "max"))
    purchased = set(events.loc[events["event_type"] == "purchase", "session_key"])
    offered = events.dropna(subset=["incentive"]).groupby("session_key")["incentive"].first()
    snapshot["session_start"] = by_session["timestamp"].min().reindex(snapshot.index)
    snapshot["label"] = (~snapshot.index.isin(purchased)).astype(int)
    snapshot["incentive"] = offered.reindex(snapshot.index).fillna("none")
    return snapshot.reset_index().sort_values("event_timestamp", kind="stable") \
        .reset_index(drop=True)


def checkout_features(data: ShopData, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Cart, session and customer features of each snapshot (local; see the module docstring).

    Args:
        data: the history.
        snapshots: from `cart_snapshots` (customer_id, session_key, event_timestamp, session_start).

    Returns:
        `snapshots` with one column per feature in `CHECKOUT_FEATURES` added.
    """
    session = _session_features(data, snapshots)
    customer = _customer_history(data, snapshots)
    frame = snapshots.merge(session, on="session_key", how="left")
    frame = frame.merge(customer, on="session_key", how="left")
    moment = frame["event_timestamp"]
    frame["hour_of_day"] = moment.dt.hour
    frame["day_of_week"] = moment.dt.dayofweek
    frame["is_weekend"] = (frame["day_of_week"] >= 5).astype(int)
    return frame


def _session_features(data: ShopData, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Cart and browsing counts of each session up to its snapshot."""
    cut = snapshots.set_index("session_key")["event_timestamp"]
    events = data.events[data.events["session_key"].isin(cut.index)]
    events = events[events["timestamp"] <= events["session_key"].map(cut)]
    kind = events["event_type"]
    sign = np.where(kind == "add_to_cart", 1.0, np.where(kind == "remove_from_cart", -1.0, 0.0))
    quantity = events["quantity"].fillna(1.0)
    grouped = events.assign(value=sign * quantity * events["price"], items=sign * quantity,
                            is_add=(kind == "add_to_cart"), is_remove=(kind == "remove_from_cart"),
                            is_view=(kind == "product_view"), is_search=(kind == "search"),
                            is_page=kind.isin(["page_view", "product_view"]),
                            cart_price=events["price"].where(kind == "add_to_cart"),
                            cart_product=events["product_id"].where(kind == "add_to_cart"))
    features = grouped.groupby("session_key").agg(
        session_cart_value=("value", lambda v: v.sum(min_count=1)),
        session_cart_items=("items", "sum"), session_cart_products=("cart_product", "nunique"),
        session_cart_removes=("is_remove", "sum"), session_max_item_price=("cart_price", "max"),
        session_product_views=("is_view", "sum"), session_searches=("is_search", "sum"),
        session_page_views=("is_page", "sum"), first=("timestamp", "min"),
        last=("timestamp", "max"), device=("device_type", "first"))
    features["session_length_seconds"] = (features["last"] - features["first"]).dt.total_seconds()
    for device in ("mobile", "desktop", "tablet"):
        features[f"device_{device}"] = (features["device"] == device).astype(int)
    return features.drop(columns=["first", "last", "device"]).reset_index()


def _customer_history(data: ShopData, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Each snapshot's customer as of the session start: orders, past carts, recency, tenure."""
    frame = snapshots[["session_key", "customer_id", "session_start", "label"]].sort_values(
        "session_start", kind="stable")
    grouped = frame.groupby("customer_id", sort=False)
    frame["carts_before"] = grouped.cumcount()
    abandoned_before = grouped["label"].cumsum() - frame["label"]
    frame["cart_abandonment_rate"] = (abandoned_before / frame["carts_before"]).where(
        frame["carts_before"] > 0, 0.0)
    purchases = data.purchases().sort_values("timestamp", kind="stable")
    orders = purchases.drop_duplicates("order_key")[["customer_id", "timestamp"]]
    orders = orders.assign(orders_lifetime=orders.groupby("customer_id").cumcount() + 1)
    frame = pd.merge_asof(frame, orders.rename(columns={"timestamp": "last_purchase"}),
                          left_on="session_start", right_on="last_purchase", by="customer_id",
                          allow_exact_matches=False)
    first_seen = data.events.groupby("customer_id")["timestamp"].min()
    frame["orders_lifetime"] = frame["orders_lifetime"].fillna(0)
    frame["is_returning_customer"] = (frame["orders_lifetime"] > 0).astype(int)
    frame["days_since_last_purchase"] = ((frame["session_start"] - frame["last_purchase"]) / DAY) \
        .fillna(NO_HISTORY_DAYS)
    frame["days_since_first_seen"] = ((frame["session_start"] - frame["customer_id"]
                                       .map(first_seen)) / DAY).clip(lower=0).fillna(0.0)
    return frame[["session_key", "orders_lifetime", "carts_before", "cart_abandonment_rate",
                  "days_since_last_purchase", "days_since_first_seen", "is_returning_customer"]]
