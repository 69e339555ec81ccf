"""The feature catalogue: every feature's name, entity, view, type, default and meaning.

One list drives everything that names a feature: the checks on the SQL output
(`tailor.features.compute`), the Feast schemas (`feature_store/features.py`), the
defaults served for missing or stale values (`tailor.features.online`), the training
frames and `docs/features.md`. Reads and writes nothing.

The per-category shares are data, not code: `category_specs` makes one spec per
category of the shop's catalogue, named by `category_column`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from tailor.errors import InputError

CUSTOMER = "customer"
PRODUCT = "product"
JOIN_KEYS: dict[str, str] = {CUSTOMER: "customer_id", PRODUCT: "product_id"}

# Feature views (batch and push) and on-demand views, by the name Feast knows them.
CUSTOMER_ACTIVITY = "customer_activity"
CUSTOMER_CATEGORIES = "customer_categories"
CUSTOMER_RECENCY = "customer_recency"
PRODUCT_ACTIVITY = "product_activity"
PRODUCT_CATALOGUE = "product_catalogue"
SESSION_CONTEXT = "session_context"
REQUEST_CONTEXT = "request_context"
BATCH_VIEWS: tuple[str, ...] = (
    CUSTOMER_ACTIVITY, CUSTOMER_CATEGORIES, PRODUCT_ACTIVITY, PRODUCT_CATALOGUE,
)
ON_DEMAND_VIEWS: tuple[str, ...] = (CUSTOMER_RECENCY, REQUEST_CONTEXT)

DTYPES: frozenset[str] = frozenset(
    {"int64", "float64", "string", "bool", "timestamp", "string_list"}
)
# "Days since" for an event that never happened: far beyond any window, finite for models.
NO_HISTORY_DAYS = 3650.0
CATEGORY_PREFIX = "category_share_"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class FeatureSpec:
    """One feature as models, Feast and the docs see it.

    Attributes:
        name: column name, unique over the whole catalogue.
        entity: `customer` or `product` (whose key looks the feature up).
        view: the Feast feature view (or on-demand view) that serves it.
        dtype: one of `DTYPES`.
        default: the value served when the entity is unknown, the row is older than the
            view's TTL, or the store cannot be reached.
        description: what the value means, including its time window.
    """

    name: str
    entity: str
    view: str
    dtype: str
    default: Any
    description: str

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"feature {self.name}: unknown dtype {self.dtype!r}")
        if self.entity not in JOIN_KEYS:
            raise ValueError(f"feature {self.name}: unknown entity {self.entity!r}")


def _specs(entity: str, view: str, rows: Iterable[tuple[str, str, Any, str]]) -> list[FeatureSpec]:
    return [FeatureSpec(name, entity, view, dtype, default, description)
            for name, dtype, default, description in rows]


_CUSTOMER_ACTIVITY = _specs(CUSTOMER, CUSTOMER_ACTIVITY, [
    ("orders_lifetime", "int64", 0, "Orders placed before the snapshot (frequency)."),
    ("orders_30d", "int64", 0, "Orders placed in the 30 days before the snapshot."),
    ("orders_90d", "int64", 0, "Orders placed in the 90 days before the snapshot."),
    ("revenue_lifetime", "float64", 0.0,
     "Money spent before the snapshot: sum of price x quantity of purchases (monetary)."),
    ("revenue_30d", "float64", 0.0, "Money spent in the 30 days before the snapshot."),
    ("revenue_90d", "float64", 0.0, "Money spent in the 90 days before the snapshot."),
    ("avg_order_value", "float64", 0.0, "revenue_lifetime / orders_lifetime; 0 without orders."),
    ("purchase_frequency_trend", "float64", 1.0,
     "(orders in the last 30 days + 1) / (orders in the 30 days before those + 1); "
     "above 1 buys more often than before."),
    ("sessions_30d", "int64", 0, "Sessions started in the 30 days before the snapshot."),
    ("active_days_30d", "int64", 0, "UTC days with at least one event, last 30 days."),
    ("product_page_views_30d", "int64", 0, "Product pages viewed in the last 30 days."),
    ("searches_30d", "int64", 0, "Searches in the last 30 days."),
    ("cart_adds_30d", "int64", 0, "Add-to-cart events in the last 30 days."),
    ("carts_90d", "int64", 0,
     "Carts in the last 90 days; a cart is a session's add-to-cart activity within one "
     "snapshot period (a UTC day by default)."),
    ("cart_abandonment_rate_90d", "float64", 0.0,
     "Share of carts_90d with no purchase in the same session and period; 0 without carts."),
    ("email_opens_90d", "int64", 0, "E-mails opened in the last 90 days."),
    ("email_clicks_90d", "int64", 0, "E-mail links clicked in the last 90 days."),
    ("email_open_rate_90d", "float64", 0.0,
     "email_opens_90d / 13 weekly campaigns, capped at 1 (the event contract has no send "
     "event, so one send a week is assumed)."),
    ("email_click_rate_90d", "float64", 0.0,
     "email_clicks_90d / email_opens_90d (click-to-open rate); 0 without opens."),
    ("email_open_trend", "int64", 0,
     "E-mails opened in the last 30 days minus those opened in the 30 days before."),
    ("price_sensitivity", "float64", 0.0,
     "Mean price tier (0 low, 1 medium, 2 high within the category) of products bought "
     "minus that of products viewed, lifetime; negative buys cheaper than browses; "
     "0 without both."),
    ("avg_viewed_price_90d", "float64", 0.0, "Mean price of product pages viewed, last 90 days."),
    ("avg_purchase_price", "float64", 0.0, "Mean unit price of items bought, lifetime."),
    ("device_type", "string", UNKNOWN,
     "Device of the newest event before the snapshot, else the profile's device."),
    ("region", "string", UNKNOWN, "Region (location) from the customer profile."),
    ("signup_at", "timestamp", None, "Signup time from the customer profile."),
    ("first_seen_at", "timestamp", None, "Time of the customer's first event."),
    ("last_seen_at", "timestamp", None, "Time of the newest event before the snapshot."),
    ("last_purchase_at", "timestamp", None, "Time of the newest purchase before the snapshot."),
    ("is_returning_customer", "bool", False, "Placed at least one order before the snapshot."),
])

_CUSTOMER_CATEGORIES = _specs(CUSTOMER, CUSTOMER_CATEGORIES, [
    ("top_category", "string", UNKNOWN,
     "Category with the largest share of the customer's product views, cart adds and "
     "purchases in the last 90 days (ties: alphabetical); 'unknown' without any."),
])

_CUSTOMER_RECENCY = _specs(CUSTOMER, CUSTOMER_RECENCY, [
    ("days_since_last_purchase", "float64", NO_HISTORY_DAYS,
     f"Days from last_purchase_at to the request time; {NO_HISTORY_DAYS:g} without purchases "
     "(recency)."),
    ("days_since_last_visit", "float64", NO_HISTORY_DAYS,
     f"Days from last_seen_at to the request time; {NO_HISTORY_DAYS:g} when never seen."),
    ("days_since_signup", "float64", 0.0,
     "Days from signup_at to the request time; 0 when unknown (treated as new)."),
    ("recency_score", "int64", 0,
     "5 bought within 7 days, 4 within 30, 3 within 90, 2 within 180, 1 longer ago; 0 never."),
    ("frequency_score", "int64", 0,
     "From orders_lifetime: 0 none, 1 one, 2 two, 3 three or four, 4 five to nine, 5 ten or more."),
    ("monetary_score", "int64", 0,
     "From revenue_lifetime: 0 none, 1 below 50, 2 below 150, 3 below 400, 4 below 1000, "
     "5 from 1000."),
    ("rfm_score", "int64", 0, "recency_score + frequency_score + monetary_score (0 to 15)."),
])

_REQUEST_CONTEXT = _specs(CUSTOMER, REQUEST_CONTEXT, [
    ("hour_of_day", "int64", 0, "Hour of the request time, UTC (0-23)."),
    ("day_of_week", "int64", 0, "Weekday of the request time, UTC (0 Monday - 6 Sunday)."),
    ("is_weekend", "bool", False, "The request falls on a Saturday or Sunday (UTC)."),
    ("time_of_day", "string", "night",
     "night (0-5 h), morning (6-11 h), afternoon (12-17 h) or evening (18-23 h), UTC."),
])

_SESSION_CONTEXT = _specs(CUSTOMER, SESSION_CONTEXT, [
    ("session_id", "string", "", "The customer's newest session (kept for the real-time update)."),
    ("session_started_at", "timestamp", None, "Time of the session's first event."),
    ("session_length_seconds", "float64", 0.0,
     "Seconds from the session's first event (whole second) to its newest event."),
    ("session_events", "int64", 0, "Site events in the session so far (e-mail events excluded)."),
    ("session_page_views", "int64", 0, "Pages viewed in the session (page and product views)."),
    ("session_product_views", "int64", 0, "Product pages viewed in the session."),
    ("session_searches", "int64", 0, "Searches in the session."),
    ("session_cart_items", "float64", 0.0,
     "Quantity added to the cart minus quantity removed, in this session."),
    ("session_cart_value", "float64", 0.0,
     "Value (price x quantity) added to the cart minus value removed, in this session."),
    ("session_categories_viewed", "int64", 0, "Distinct categories of products viewed."),
    ("session_viewed_categories", "string_list", (),
     "The categories of products viewed in the session, sorted."),
    ("session_checkout_started", "bool", False, "The session reached checkout."),
    ("session_device_type", "string", UNKNOWN, "Device of the session's first event with one."),
    ("session_is_returning_visitor", "bool", False,
     "The customer had any event (e-mail included) before this session started."),
])

_PRODUCT_ACTIVITY = _specs(PRODUCT, PRODUCT_ACTIVITY, [
    ("product_views_1d", "int64", 0, "Views of the product page in the day before the snapshot."),
    ("product_views_7d", "int64", 0, "Views in the 7 days before the snapshot."),
    ("product_views_30d", "int64", 0, "Views in the 30 days before the snapshot."),
    ("product_cart_adds_7d", "int64", 0, "Add-to-cart events in the last 7 days."),
    ("product_cart_adds_30d", "int64", 0, "Add-to-cart events in the last 30 days."),
    ("product_purchases_1d", "int64", 0, "Purchase lines in the last day."),
    ("product_purchases_7d", "int64", 0, "Purchase lines in the last 7 days."),
    ("product_purchases_30d", "int64", 0, "Purchase lines in the last 30 days."),
    ("product_revenue_30d", "float64", 0.0, "Revenue (price x quantity) in the last 30 days."),
    ("product_trending_ratio", "float64", 1.0,
     "(views in the last day + 1) / (mean daily views over the last 7 days + 1); "
     "above 1 is trending up."),
    ("product_conversion_rate_30d", "float64", 0.0,
     "Purchase lines per product view, last 30 days; 0 without views."),
    ("product_cart_rate_30d", "float64", 0.0,
     "Add-to-cart events per product view, last 30 days; 0 without views."),
])

_PRODUCT_CATALOGUE = _specs(PRODUCT, PRODUCT_CATALOGUE, [
    ("product_category", "string", UNKNOWN, "Category from the catalogue."),
    ("product_price", "float64", 0.0, "List price from the catalogue."),
    ("product_price_tier", "string", UNKNOWN,
     "low, medium or high: the product's price tercile within its category."),
    ("product_rating", "float64", 0.0, "Average rating from the catalogue; 0 when unrated."),
    ("product_in_stock", "bool", True,
     "Inventory above zero (unknown inventory counts as in stock)."),
    ("product_inventory", "int64", 0, "Units in stock from the catalogue."),
    ("product_is_seasonal", "bool", False, "The catalogue marks the product as seasonal."),
    ("product_season", "string", "none",
     "The season the catalogue names for the product (e.g. winter), 'none' otherwise."),
])

STATIC_SPECS: tuple[FeatureSpec, ...] = tuple(
    _CUSTOMER_ACTIVITY + _CUSTOMER_CATEGORIES + _CUSTOMER_RECENCY + _REQUEST_CONTEXT
    + _SESSION_CONTEXT + _PRODUCT_ACTIVITY + _PRODUCT_CATALOGUE
)


def category_column(category: str) -> str:
    """The feature name of a category's share, e.g. 'Home & Garden' -> category_share_home_garden.

    Raises:
        InputError: the category has no letter or digit to name a column by.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", str(category).lower()).strip("_")
    if not slug:
        raise InputError(f"category {category!r}: cannot be named as a feature column")
    return CATEGORY_PREFIX + slug


def category_columns(categories: Sequence[str]) -> dict[str, str]:
    """Column name per category, in the given order.

    Raises:
        InputError: two categories map to the same column name.
    """
    columns: dict[str, str] = {}
    for category in categories:
        column = category_column(category)
        clash = [other for other, name in columns.items() if name == column]
        if clash:
            raise InputError(f"categories {clash[0]!r} and {category!r} both map to {column}")
        columns[category] = column
    return columns


def category_specs(categories: Sequence[str]) -> list[FeatureSpec]:
    """One share feature per catalogue category (view customer_categories)."""
    return [
        FeatureSpec(column, CUSTOMER, CUSTOMER_CATEGORIES, "float64", 0.0,
                    f"Share of the customer's product views, cart adds and purchases in the "
                    f"last 90 days that were in category {category!r}.")
        for category, column in category_columns(categories).items()
    ]


def all_specs(categories: Sequence[str] = ()) -> list[FeatureSpec]:
    """The whole catalogue: the static features plus one share per category."""
    specs = list(STATIC_SPECS) + category_specs(categories)
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"feature names must be unique; repeated: {', '.join(duplicates)}")
    return specs


def specs_for_view(view: str, categories: Sequence[str] = ()) -> list[FeatureSpec]:
    """The specs one view serves, in catalogue order."""
    return [spec for spec in all_specs(categories) if spec.view == view]


def defaults(specs: Iterable[FeatureSpec]) -> dict[str, Any]:
    """Feature name -> default value (a fresh list for list features)."""
    return {spec.name: (list(spec.default) if spec.dtype == "string_list" else spec.default)
            for spec in specs}


def catalogue_markdown(categories: Sequence[str] = ("<category>",)) -> str:
    """The catalogue as a Markdown table (docs/features.md holds it; a test keeps them equal).

    Args:
        categories: shown for the per-category share; the placeholder documents the rule.
    """
    lines = ["| feature | entity | view | type | default | description |",
             "|---|---|---|---|---|---|"]
    for spec in STATIC_SPECS + tuple(category_specs_documented(categories)):
        default = "[]" if spec.dtype == "string_list" else repr(spec.default)
        description = spec.description.replace("|", "\\|")
        lines.append(f"| `{spec.name}` | {spec.entity} | {spec.view} | {spec.dtype} | "
                     f"{default} | {description} |")
    return "\n".join(lines) + "\n"


def category_specs_documented(categories: Sequence[str]) -> list[FeatureSpec]:
    """Category share specs for the docs, where the placeholder needs no valid column name."""
    return [FeatureSpec(f"{CATEGORY_PREFIX}{category}", CUSTOMER, CUSTOMER_CATEGORIES, "float64",
                        0.0, "Share of the customer's product views, cart adds and purchases "
                        "in the last 90 days that were in this category (one column per "
                        "catalogue category, named from the category).")
            for category in categories]
