"""Data sources: the Parquet files `tailor features` computes, the session push source and
the request data of on-demand features.

Paths point into the Tailor home (see tailor.features.definitions for how it is found).
The four Parquet sources are `FileSource`s for the DuckDB offline store and `SparkSource`s
over the same files when the repo's feature_store.yaml names the Spark offline store
(features.engine = spark): `context.parquet_source` picks the kind.
No source has a PII column: the warehouse never holds e-mail addresses or names.
"""

from feast import Field, PushSource, RequestSource
from feast.types import UnixTimestamp

from tailor.features.definitions import OWNER, definition_context, tags

context = definition_context(__file__)

customer_features_source = context.parquet_source(
    "customer_features",
    name="customer_features_source",
    timestamp_field="event_timestamp",
    description="Customer feature snapshots from the warehouse; a row stamped t holds only "
                "events before t (customer_features.sql).",
    owner=OWNER,
    tags=tags(layer="batch", sql="customer_features.sql"),
)

product_features_source = context.parquet_source(
    "product_features",
    name="product_features_source",
    timestamp_field="event_timestamp",
    description="Product activity snapshots (views, carts, purchases over 1/7/30 days).",
    owner=OWNER,
    tags=tags(layer="batch", sql="product_features.sql"),
)

product_catalogue_source = context.parquet_source(
    "product_catalogue",
    name="product_catalogue_source",
    timestamp_field="event_timestamp",
    description="Catalogue attributes with the price tier inside each category.",
    owner=OWNER,
    tags=tags(layer="batch", sql="product_catalogue.sql"),
)

session_features_source = context.parquet_source(
    "session_features",
    name="session_features_source",
    timestamp_field="event_timestamp",
    description="Session state after every historical site event (backfill of session_push).",
    owner=OWNER,
    tags=tags(layer="batch", sql="session_features.sql"),
)

session_push = PushSource(
    name="session_push",
    batch_source=session_features_source,
    description="Session state pushed by the event collector as events arrive "
                "(tailor.features.realtime).",
    owner=OWNER,
    tags=tags(layer="stream"),
)

request_source = RequestSource(
    name="request",
    schema=[Field(name="request_time", dtype=UnixTimestamp,
                  description="When the features are wanted: now online, the entity row's "
                              "timestamp in training sets.")],
    description="Data the caller passes with each request.",
    owner=OWNER,
    tags=tags(layer="request"),
)
