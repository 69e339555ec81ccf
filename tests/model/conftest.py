"""The simulated shop shared by the model tests: 2,000 customers, 300 products, 180 days.

180 days, so that the holdout (the last 36 days) is long enough for a churn label to mean
something; simulated once per session (about 10 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulated_shops import simulated_shop
from tailor.models.data import ShopData

SHOP_SIZE = {"customers": 2_000, "products": 300, "days": 180, "seed": 7}


@pytest.fixture(scope="session")
def shop_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-shop")


@pytest.fixture(scope="session")
def sim_shop(shop_folder: Path) -> ShopData:
    """The simulated shop's history."""
    return simulated_shop(shop_folder, **SHOP_SIZE)
