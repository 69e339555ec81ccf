"""Feature services: one per model, naming exactly the features the model reads.

Raw timestamps and the session id stay out of the services: models read the
request-time features derived from them instead.
"""

from feast import FeatureService

from features import (
    customer_activity,
    customer_categories,
    product_activity,
    product_catalogue,
    session_context,
)
from on_demand_features import customer_recency, request_context
from tailor.features.definitions import OWNER, model_features, tags

homepage = FeatureService(
    name="homepage",
    features=[
        customer_activity[model_features("customer_activity")],
        customer_categories,
        customer_recency,
        request_context,
        session_context[model_features("session_context")],
    ],
    description="Re-ranking the homepage for one customer: history, category affinity, "
                "recency, the live session and the time of the visit.",
    owner=OWNER,
    tags=tags(model="homepage", entity="customer"),
)

cross_sell = FeatureService(
    name="cross_sell",
    features=[product_activity, product_catalogue],
    description="Ranking 'also bought' candidates: each product's popularity, trend, "
                "conversion, price tier and stock.",
    owner=OWNER,
    tags=tags(model="cross_sell", entity="product"),
)

churn = FeatureService(
    name="churn",
    features=[
        customer_activity[model_features("customer_activity")],
        customer_categories,
        customer_recency,
    ],
    description="Weekly churn scoring: RFM, purchase and e-mail trends, engagement.",
    owner=OWNER,
    tags=tags(model="churn", entity="customer"),
)

checkout = FeatureService(
    name="checkout",
    features=[
        session_context[model_features("session_context")],
        customer_activity[["orders_lifetime", "avg_order_value", "cart_abandonment_rate_90d",
                           "carts_90d", "price_sensitivity", "device_type",
                           "is_returning_customer"]],
        customer_recency,
        request_context,
    ],
    description="P(abandon checkout) at cart time: the live cart and session, the "
                "customer's cart history and the time of day.",
    owner=OWNER,
    tags=tags(model="checkout", entity="customer"),
)
