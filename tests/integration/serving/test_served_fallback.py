"""The popularity fallback of a trained home: computed from the warehouse (checked against
pandas on the raw simulator files) or from the homepage model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.serving.fallback import WINDOW_DAYS, popular_from_model, popular_from_warehouse

SIZE = 12


def reference_popularity(served_home) -> pd.DataFrame:
    """Purchases per in-stock product over the newest WINDOW_DAYS days, from the raw files."""
    events, products = served_home.events(), served_home.products()
    bought = events[(events["event_type"] == "purchase") & events["product_id"].notna()]
    recent = bought[bought["timestamp"] > bought["timestamp"].max()
                    - pd.Timedelta(days=WINDOW_DAYS)]
    counts = recent.groupby("product_id").size().rename("purchases").reset_index()
    counts = counts.merge(products[["product_id", "category", "inventory"]], on="product_id",
                          how="left")
    counts = counts[~(counts["inventory"] <= 0)]
    return counts.sort_values(["purchases", "product_id"], ascending=[False, True])


def test_the_warehouse_list_is_the_most_purchased_in_stock_products(served_home) -> None:
    expected = reference_popularity(served_home)
    popular = popular_from_warehouse(served_home.settings, SIZE)
    assert [product for product, _ in popular.overall] == expected["product_id"].head(SIZE).tolist()
    top = expected["purchases"].iloc[0]
    assert [score for _, score in popular.overall] == \
        pytest.approx((expected["purchases"].head(SIZE) / top).tolist())
    for category, rows in expected.groupby("category"):
        assert [product for product, _ in popular.by_category[category]] == \
            rows["product_id"].head(SIZE).tolist()
    assert popular.source.startswith("warehouse")


def test_the_model_list_is_its_decayed_popularity_in_stock(pipeline) -> None:
    loaded = pipeline.slots["homepage"].current
    model = loaded.model
    popular = popular_from_model(model, SIZE, loaded.version)
    eligible = np.flatnonzero(model.in_stock & (model.popularity > 0))
    best = eligible[np.argsort(-model.popularity[eligible], kind="stable")][:SIZE]
    assert [product for product, _ in popular.overall] == model.products.ids[best].tolist()
    assert popular.overall[0][1] == 1.0 and f"v{loaded.version}" in popular.source
    # The pipeline serves this list: it was built from the loaded homepage model.
    assert pipeline.fallback.current.overall[:SIZE] == popular.overall
