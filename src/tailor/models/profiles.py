"""Customer profiles of a time window: the data every drift check compares.

Reads and writes nothing: `customer_profiles` turns a window's events (the `ShopData`
event frame) into one row per active customer, recomputed the same way for a version's
holdout window at training and for the newest window at monitoring, so the two are
comparable column by column. No identifiers are kept: the rows are what the shoppers did,
not who they are.
"""

from __future__ import annotations

import pandas as pd

NUMERIC_COLUMNS = ("events", "views", "cart_adds", "purchases", "sessions", "products",
                   "categories", "spend", "mean_price")
CATEGORICAL_COLUMNS = ("top_category", "device")


def customer_profiles(events: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """One row per customer active in `events`: counts by event type, sessions, distinct
    products and categories, spend, mean price seen, most-viewed category and main device."""
    columns = list(NUMERIC_COLUMNS + CATEGORICAL_COLUMNS)
    if events.empty:
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in NUMERIC_COLUMNS}
                            | {name: pd.Series(dtype="object") for name in CATEGORICAL_COLUMNS}
                            )[columns]
    category = products.set_index("product_id")["category"] \
        if "category" in products else pd.Series(dtype="object")
    frame = events.assign(
        category=events["product_id"].map(category),
        line_value=events["price"].fillna(0.0) * events["quantity"].fillna(1.0),
        is_view=events["event_type"].eq("view"),
        is_cart=events["event_type"].eq("add_to_cart"),
        is_purchase=events["event_type"].eq("purchase"))
    grouped = frame.groupby("customer_id", sort=False)
    profile = pd.DataFrame({
        "events": grouped.size(),
        "views": grouped["is_view"].sum(),
        "cart_adds": grouped["is_cart"].sum(),
        "purchases": grouped["is_purchase"].sum(),
        "sessions": grouped["session_key"].nunique(),
        "products": grouped["product_id"].nunique(),
        "categories": grouped["category"].nunique(),
        "spend": frame[frame["is_purchase"]].groupby("customer_id")["line_value"].sum(),
        "mean_price": grouped["price"].mean(),
        "top_category": _most_common(frame, "category"),
        "device": _most_common(frame, "device_type"),
    })
    profile[list(NUMERIC_COLUMNS)] = profile[list(NUMERIC_COLUMNS)].astype("float64")
    profile["spend"] = profile["spend"].fillna(0.0)
    return profile[columns].reset_index(drop=True)


def _most_common(frame: pd.DataFrame, column: str) -> pd.Series:
    """Each customer's most frequent non-null `column` value (None when they have none)."""
    known = frame.dropna(subset=[column])
    if known.empty:
        return pd.Series(dtype="object")
    counts = known.groupby(["customer_id", column], sort=False).size().reset_index(name="n")
    top = counts.sort_values(["customer_id", "n"], ascending=[True, False], kind="stable")
    return top.drop_duplicates("customer_id").set_index("customer_id")[column].astype(str)
