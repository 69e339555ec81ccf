"""Column names, model names and defaults shared by the models, their metrics and the CLI.

Reads and writes nothing. Metric functions and models take these as keyword defaults, so a
frame with other column names can be passed without renaming it.
"""

from __future__ import annotations

DEFAULT_USER_COL = "customer_id"
DEFAULT_ITEM_COL = "product_id"
DEFAULT_SCORE_COL = "score"
DEFAULT_RANK_COL = "rank"
DEFAULT_REASON_COL = "reason"
DEFAULT_LABEL_COL = "label"
DEFAULT_PROBABILITY_COL = "probability"
DEFAULT_TIME_COL = "timestamp"

DEFAULT_K = 10
DEFAULT_TEST_SHARE = 0.2  # the last 20% of the time range is the test window
DEFAULT_CHURN_HORIZON_DAYS = 90
DEFAULT_CHURN_THRESHOLD = 0.7
DEFAULT_CHECKOUT_THRESHOLD = 0.5

MODEL_NAMES: tuple[str, ...] = ("homepage", "cross_sell", "churn", "checkout")
RANKING_MODELS: frozenset[str] = frozenset({"homepage", "cross_sell"})
CLASSIFIER_MODELS: frozenset[str] = frozenset({"churn", "checkout"})

# Confidence of each interaction kind relative to a product view (the homepage model tunes them).
INTERACTION_EVENTS: tuple[str, ...] = ("product_view", "add_to_cart", "purchase")
