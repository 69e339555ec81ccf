"""Entities: who or what a feature describes. Customers and products, keyed by their ids."""

from feast import Entity, ValueType

from tailor.features.definitions import OWNER, tags

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A shopper, by the pseudonymous customer_id of the event contract (never PII).",
    owner=OWNER,
    tags=tags(domain="customer"),
)

product = Entity(
    name="product",
    join_keys=["product_id"],
    value_type=ValueType.STRING,
    description="A catalogue product, by its product_id.",
    owner=OWNER,
    tags=tags(domain="catalogue"),
)
