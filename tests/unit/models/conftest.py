"""Fixtures of the model unit tests: a small catalogue."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture
def catalogue() -> pd.DataFrame:
    """Six products in three categories; snacks are bought again and again."""
    return pd.DataFrame({
        "product_id": ["laptop", "mouse", "bag", "snack", "chips", "lamp"],
        "name": ["Laptop", "Mouse", "Laptop Bag", "Snack", "Chips", "Lamp"],
        "category": ["electronics", "electronics", "electronics", "grocery", "grocery", "home"],
        "price": [900.0, 25.0, 45.0, 3.0, 2.0, 40.0],
        "inventory": [5, 10, 0, 100, 100, 7],
    })
