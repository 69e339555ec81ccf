"""Feature views: the batch views over the computed Parquet files and the session view fed
by the push source. Schemas, descriptions and defaults come from the feature catalogue
(tailor.features.specs); customer_categories has one column per catalogue category.
"""

from feast import FeatureView

from data_sources import (
    customer_features_source,
    product_catalogue_source,
    product_features_source,
    session_push,
)
from entities import customer, product
from tailor.features.definitions import OWNER, definition_context, feast_schema, tags

context = definition_context(__file__)

customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=context.batch_ttl,
    schema=feast_schema("customer_activity"),
    source=customer_features_source,
    online=True,
    description="Purchases, revenue, visits, carts, e-mail engagement and profile per "
                "customer: lifetime, 30- and 90-day windows, point in time.",
    owner=OWNER,
    tags=tags(entity="customer", layer="batch"),
)

customer_categories = FeatureView(
    name="customer_categories",
    entities=[customer],
    ttl=context.batch_ttl,
    schema=feast_schema("customer_categories", context.categories),
    source=customer_features_source,
    online=True,
    description="Share of each catalogue category in the customer's last 90 days of "
                "product interactions, and the top category.",
    owner=OWNER,
    tags=tags(entity="customer", layer="batch", categories=str(len(context.categories))),
)

product_activity = FeatureView(
    name="product_activity",
    entities=[product],
    ttl=context.batch_ttl,
    schema=feast_schema("product_activity"),
    source=product_features_source,
    online=True,
    description="Views, cart adds, purchases and revenue per product over 1, 7 and 30 days, "
                "trending ratio and conversion.",
    owner=OWNER,
    tags=tags(entity="product", layer="batch"),
)

product_catalogue = FeatureView(
    name="product_catalogue",
    entities=[product],
    ttl=context.batch_ttl,
    schema=feast_schema("product_catalogue"),
    source=product_catalogue_source,
    online=True,
    description="Category, price and price tier, rating, stock and seasonality from the "
                "catalogue.",
    owner=OWNER,
    tags=tags(entity="product", layer="batch"),
)

session_context = FeatureView(
    name="session_context",
    entities=[customer],
    ttl=context.session_ttl,
    schema=feast_schema("session_context"),
    source=session_push,
    online=True,
    description="The customer's current session: length, pages, searches, cart, categories "
                "viewed; pushed in real time by the collector.",
    owner=OWNER,
    tags=tags(entity="customer", layer="stream"),
)
