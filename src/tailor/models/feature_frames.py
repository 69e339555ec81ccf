"""Training frames for the churn and checkout classifiers: features as of a time, plus labels.

Reads: the Feast feature store (offline store, point in time) when the `ShopData` came from
a warehouse whose feature store has been built (`tailor features`); writes nothing.
`churn_features` and `checkout_features` are the one place that decides where features
come from: the Feast `churn` and `checkout` feature services
(`tailor.features.training.training_frame`) when the store exists, else the same kind of
features computed locally from the events (tests, and shops that never ran
`tailor features`). Local names follow the feature catalogue (`tailor.features.specs`)
wherever the feature is the same. Every value uses only events strictly before (churn) or
up to (checkout: the cart itself) each row's time.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from tailor.models.data import ShopData

log = logging.getLogger(__name__)

DAY = pd.Timedelta(days=1)
NO_HISTORY_DAYS = 3650.0  # the feature catalogue's "never happened" value
SITE_EVENTS = ("page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
               "checkout_start", "purchase", "click")
CART_EVENTS = ("add_to_cart", "remove_from_cart")
KEY_COLUMNS: tuple[str, ...] = ("customer_id", "event_timestamp", "session_key")
FEAST_SERVICES: tuple[str, ...] = ("churn", "checkout")


# -- churn ---------------------------------------------------------------------------------------


def feature_source(data: ShopData, model: str) -> str:
    """Where `model`'s features come from for this history: 'feast:<service>' or 'local'."""
    if model in FEAST_SERVICES and feast_store_built(data):
        return f"feast:{model}"
    return "local"


def feast_store_built(data: ShopData) -> bool:
    """Whether the history came from a warehouse whose Feast store has been built from all
    of it (a store computed before newer events were loaded would give their rows defaults;
    then features are computed locally, and the log says to run `tailor features`)."""
    settings = data.warehouse_settings
    if settings is None:
        return False
    from tailor.features.compute import read_manifest

    manifest = read_manifest(settings.home_path)
    if not manifest:
        return False
    newest = manifest.get("newest_event")
    if newest is None or pd.Timestamp(newest) < data.end:
        log.warning("the feature store was computed before the newest events (%s < %s): "
                    "features are computed locally; run `tailor features`", newest, data.end)
        return False
    return True


def churn_features(data: ShopData, entities: pd.DataFrame) -> pd.DataFrame:
    """Customer features as of each row's `event_timestamp`: the churn feature service.

    Args:
        data: the history (its `warehouse_settings` name the Feast store, when there is one).
        entities: customer_id, event_timestamp (one row per customer and snapshot), plus any
            label columns to carry along.

    Returns:
        `entities` with one column per feature added.
    """
    if feature_source(data, "churn") == "feast:churn":
        from tailor.features.training import training_frame

        return training_frame(data.warehouse_settings, entities, "churn")
    return local_churn_features(data, entities)


def local_churn_features(data: ShopData, entities: pd.DataFrame) -> pd.DataFrame:
    """The churn features computed here from the events (no feature store needed).

    One DuckDB aggregation over (entity row x that customer's earlier events), so every
    snapshot of every customer costs one pass, whatever the number of snapshots.
    """
    rows = entities.reset_index(drop=True)
    aggregates = _churn_aggregates(data, rows)
    features = rows.join(aggregates, how="left")
    counts = [name for name in aggregates.columns if not name.startswith(("first_", "last_"))]
    features[counts] = features[counts].fillna(0.0)
    moment = features["event_timestamp"]
    _add_ratios(features, moment)
    return features.drop(columns=["first_seen", "last_seen", "last_purchase", "orders_prior_30d",
                                  "sessions_prior_7d", "email_opens_prior_30d"])


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

_SITE = ", ".join(f"'{kind}'" for kind in SITE_EVENTS)
CHURN_AGGREGATES_SQL = f"""
WITH history AS (
    SELECT entity.row_id, event.event_type, event.order_key, event.session_key,
           event.price * COALESCE(event.quantity, 1) AS amount, event."timestamp" AS moment,
           event.event_type IN ({_SITE}) AS site,
           epoch(entity.event_timestamp - event."timestamp") / 86400.0 AS age
    FROM entities AS entity
    JOIN events AS event
      ON event.customer_id = entity.customer_id AND event."timestamp" < entity.event_timestamp
)
SELECT row_id,
    COUNT(DISTINCT order_key) FILTER (WHERE event_type = 'purchase') AS orders_lifetime,
    COUNT(DISTINCT order_key) FILTER (WHERE event_type = 'purchase' AND age < 30) AS orders_30d,
    COUNT(DISTINCT order_key) FILTER (WHERE event_type = 'purchase' AND age < 90) AS orders_90d,
    COUNT(DISTINCT order_key) FILTER (WHERE event_type = 'purchase' AND age >= 30 AND age < 60)
        AS orders_prior_30d,
    COALESCE(SUM(amount) FILTER (WHERE event_type = 'purchase'), 0) AS revenue_lifetime,
    COALESCE(SUM(amount) FILTER (WHERE event_type = 'purchase' AND age < 90), 0) AS revenue_90d,
    COUNT(DISTINCT session_key) FILTER (WHERE site AND age < 7) AS sessions_7d,
    COUNT(DISTINCT session_key) FILTER (WHERE site AND age < 30) AS sessions_30d,
    COUNT(DISTINCT session_key) FILTER (WHERE site AND age >= 7 AND age < 14) AS sessions_prior_7d,
    COUNT(DISTINCT session_key) FILTER (WHERE site) AS sessions_lifetime,
    COUNT(DISTINCT date_trunc('day', moment)) FILTER (WHERE site AND age < 30) AS active_days_30d,
    COUNT(DISTINCT date_trunc('day', moment)) AS active_days_lifetime,
    COUNT(*) FILTER (WHERE event_type = 'product_view' AND age < 30) AS product_page_views_30d,
    COUNT(*) FILTER (WHERE event_type = 'search' AND age < 30) AS searches_30d,
    COUNT(*) FILTER (WHERE event_type = 'add_to_cart' AND age < 30) AS cart_adds_30d,
    COUNT(*) FILTER (WHERE event_type = 'email_open' AND age < 90) AS email_opens_90d,
    COUNT(*) FILTER (WHERE event_type = 'email_click' AND age < 90) AS email_clicks_90d,
    COUNT(*) FILTER (WHERE event_type = 'email_open' AND age < 30) AS email_opens_30d,
    COUNT(*) FILTER (WHERE event_type = 'email_open' AND age >= 30 AND age < 60)
        AS email_opens_prior_30d,
    MAX(moment) FILTER (WHERE event_type = 'purchase') AS last_purchase,
    MAX(moment) AS last_seen,
    MIN(moment) AS first_seen
FROM history
GROUP BY row_id
"""


def _churn_aggregates(data: ShopData, entities: pd.DataFrame) -> pd.DataFrame:
    """Per entity row, the counts, sums and times the churn features derive from."""
    import duckdb

    events = data.events[data.events["customer_id"].isin(set(entities["customer_id"]))]
    events = events[["customer_id", "event_type", "order_key", "session_key", "price",
                     "quantity", "timestamp"]]
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("events", events)
        connection.register("entities", entities[["customer_id", "event_timestamp"]]
                            .assign(row_id=np.arange(len(entities))))
        aggregates = connection.execute(CHURN_AGGREGATES_SQL).df()
    finally:
        connection.close()
    return aggregates.set_index("row_id").sort_index()


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (pd.to_datetime(later, utc=True) - pd.to_datetime(earlier, utc=True)) / DAY


def _add_ratios(features: pd.DataFrame, moment: pd.Series) -> None:
    """Trends, recency and rhythms from the aggregates (missing history -> catalogue defaults)."""
    orders = features["orders_lifetime"]
    features["email_open_trend"] = features.pop("email_opens_30d") - \
        features["email_opens_prior_30d"]
    features["avg_order_value"] = (features["revenue_lifetime"] / orders.where(orders > 0)) \
        .fillna(0.0)
    features["purchase_frequency_trend"] = (features["orders_30d"] + 1) / \
        (features["orders_prior_30d"] + 1)
    features["session_trend"] = (features["sessions_7d"] + 1) / (features["sessions_prior_7d"] + 1)
    features["days_since_last_purchase"] = _days(moment, features["last_purchase"]).fillna(
        NO_HISTORY_DAYS)
    features["days_since_last_visit"] = _days(moment, features["last_seen"]).fillna(
        NO_HISTORY_DAYS)
    features["days_since_first_seen"] = _days(moment, features["first_seen"]).fillna(0.0)
    features["mean_days_between_orders"] = (features["days_since_first_seen"]
                                            / orders.where(orders > 0)).fillna(NO_HISTORY_DAYS)
    features["purchase_overdue_ratio"] = (features["days_since_last_purchase"]
                                          / features["mean_days_between_orders"].clip(lower=1.0))
    active = features["active_days_lifetime"]
    features["mean_days_between_visits"] = (features["days_since_first_seen"]
                                            / active.where(active > 0)).fillna(NO_HISTORY_DAYS)
    features["visit_overdue_ratio"] = (features["days_since_last_visit"]
                                       / features["mean_days_between_visits"].clip(lower=1.0))
    weeks = (features["days_since_first_seen"] / 7.0).clip(lower=1.0)
    sessions = features["sessions_lifetime"]
    features["orders_per_week"] = orders / weeks
    features["sessions_per_week"] = sessions / weeks
    features["orders_per_session"] = orders / sessions.clip(lower=1.0)


def churn_snapshot_entities(data: ShopData, moment: pd.Timestamp) -> pd.DataFrame:
    """The churn population at `moment`: customers with at least one purchase before it."""
    purchases = data.purchases()
    buyers = purchases.loc[purchases["timestamp"] < moment, "customer_id"].unique()
    return pd.DataFrame({"customer_id": pd.Series(buyers, dtype=object),
                         "event_timestamp": moment})


def churn_labels(data: ShopData, entities: pd.DataFrame, horizon: pd.Timedelta) -> pd.Series:
    """1 when the customer bought nothing in [event_timestamp, event_timestamp + horizon)."""
    rows = entities[["customer_id", "event_timestamp"]].reset_index(names="row")
    joined = rows.merge(data.purchases()[["customer_id", "timestamp"]], on="customer_id")
    inside = joined[(joined["timestamp"] >= joined["event_timestamp"])
                    & (joined["timestamp"] < joined["event_timestamp"] + horizon)]
    churned = (~rows["row"].isin(set(inside["row"]))).astype(int).to_numpy()
    return pd.Series(churned, index=entities.index, name="label")


# -- checkout ------------------------------------------------------------------------------------


CHECKOUT_KEYS: tuple[str, ...] = ("customer_id", "session_key", "event_timestamp",
                                  "session_start", "label", "incentive")
# The locally computed checkout features (the Feast path has the service's instead).
CHECKOUT_FEATURES: tuple[str, ...] = (
    "session_cart_value", "session_cart_items", "session_cart_products", "session_cart_removes",
    "session_max_item_price", "session_product_views", "session_searches",
    "session_page_views", "session_length_seconds", "hour_of_day", "day_of_week",
    "is_weekend", "device_mobile", "device_desktop", "device_tablet",
    "orders_lifetime", "carts_before", "cart_abandonment_rate", "days_since_last_purchase",
    "days_since_first_seen", "is_returning_customer",
)
DEVICE_TYPES: tuple[str, ...] = ("mobile", "desktop", "tablet")
UNKNOWN_DEVICE = "unknown"
# The session view stamps the state after an event one microsecond after the event.
SESSION_STATE_DELAY = pd.Timedelta(microseconds=1)


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
    """Cart, session and customer features of each snapshot, from the Feast `checkout`
    service when the store is built, else computed locally.

    Args:
        data: the history (its `warehouse_settings` name the Feast store, when there is one).
        snapshots: from `cart_snapshots` (customer_id, session_key, event_timestamp, session_start).

    Returns:
        `snapshots` with one column per feature added, plus the `device_<type>` one-hots
        (`add_device_columns`).
    """
    if feature_source(data, "checkout") == "feast:checkout":
        return feast_checkout_features(data, snapshots)
    return local_checkout_features(data, snapshots)


def feast_checkout_features(data: ShopData, snapshots: pd.DataFrame) -> pd.DataFrame:
    """The `checkout` feature service at each cart, just after its last change.

    Asked one microsecond after the cart time, the session view's newest row is the state
    after the cart event itself (and nothing later); the customer views answer as of the
    snapshot before it, the request-time views at that instant.
    """
    from tailor.features.training import training_frame

    asked = snapshots.assign(event_timestamp=snapshots["event_timestamp"] + SESSION_STATE_DELAY)
    frame = training_frame(data.warehouse_settings, asked, "checkout")
    frame["event_timestamp"] = snapshots["event_timestamp"].to_numpy()
    return add_device_columns(frame)


def add_device_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`device_<type>` one-hots (DEVICE_TYPES) from session_device_type, or the customer's
    device_type when the session's is unknown; `frame` unchanged without session_device_type."""
    if "session_device_type" not in frame:
        return frame
    device = frame["session_device_type"].fillna(UNKNOWN_DEVICE)
    if "device_type" in frame:
        device = device.where(device != UNKNOWN_DEVICE, frame["device_type"].fillna(UNKNOWN_DEVICE))
    for name in DEVICE_TYPES:
        frame[f"device_{name}"] = (device == name).astype(int)
    return frame


def local_checkout_features(data: ShopData, snapshots: pd.DataFrame) -> pd.DataFrame:
    """The checkout features computed here from the events (no feature store needed).

    Returns:
        `snapshots` with the `CHECKOUT_FEATURES` columns and session_device_type added.
    """
    session = _session_features(data, snapshots)
    customer = _customer_history(data, snapshots)
    frame = snapshots.merge(session, on="session_key", how="left")
    frame = frame.merge(customer, on="session_key", how="left")
    moment = frame["event_timestamp"]
    frame["hour_of_day"] = moment.dt.hour
    frame["day_of_week"] = moment.dt.dayofweek
    frame["is_weekend"] = (frame["day_of_week"] >= 5).astype(int)
    frame = add_device_columns(frame)
    return frame[list(snapshots.columns) + list(CHECKOUT_FEATURES) + ["session_device_type"]]


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
    features["session_device_type"] = features.pop("device").fillna(UNKNOWN_DEVICE)
    return features.drop(columns=["first", "last"]).reset_index()


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
