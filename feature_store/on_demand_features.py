"""On-demand feature views: values that depend on the request time, computed when features
are read (online) or joined (training), by the same functions in
tailor.features.request_time.

The functions are written self-contained (imports inside) because Feast stores their
source text in the registry and runs it from there. Their fields carry no description
(Feast compares them with the fields it infers); docs/features.md describes them.
"""

from feast.on_demand_feature_view import on_demand_feature_view

from data_sources import request_source
from features import customer_activity
from tailor.features.definitions import OWNER, feast_schema, tags


@on_demand_feature_view(
    sources=[
        customer_activity[["last_purchase_at", "last_seen_at", "signup_at",
                           "orders_lifetime", "revenue_lifetime"]],
        request_source,
    ],
    schema=feast_schema("customer_recency", describe=False),
    mode="python",
    description="Days since the last purchase, visit and signup at request time, and the "
                "RFM scores built on them.",
    owner=OWNER,
    tags=tags(entity="customer", layer="request"),
)
def customer_recency(inputs: dict) -> dict:
    """Recency and RFM features of each entity row (lists in, lists out)."""
    from tailor.features.request_time import customer_recency_features

    return customer_recency_features(inputs)


@on_demand_feature_view(
    sources=[request_source],
    schema=feast_schema("request_context", describe=False),
    mode="python",
    description="Hour, weekday and part of day of the request (UTC).",
    owner=OWNER,
    tags=tags(layer="request"),
)
def request_context(inputs: dict) -> dict:
    """Time-of-request features of each entity row (lists in, lists out)."""
    from tailor.features.request_time import request_context_features

    return request_context_features(inputs)
