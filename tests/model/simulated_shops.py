"""A simulated shop read straight from the simulator's files into a `ShopData` (no warehouse).

The model tests judge the models, not the pipeline in front of them, so they skip ingest,
lake and warehouse (the integration tests cover that path). The one thing the warehouse
would add, the incentive named in checkout and purchase properties, is extracted the way
`tailor.models.data.EVENTS_SQL` does it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tailor.models.data import ShopData, build_shop_data
from tailor.simulate import ShopConfig, simulate_shop


def _incentive(properties: object) -> object:
    if not isinstance(properties, str):
        return None
    return json.loads(properties).get("incentive")


def read_simulated_shop(folder: Path) -> ShopData:
    """The `ShopData` of a folder written by `simulate_shop`."""
    events = pd.read_parquet(folder / "events.parquet")
    offered = events["event_type"].isin(["checkout_start", "purchase"])
    events["incentive"] = events["properties"].where(offered).map(_incentive)
    return build_shop_data(events, pd.read_csv(folder / "products.csv"),
                           pd.read_csv(folder / "customers.csv"))


def simulated_shop(folder: Path, customers: int, products: int, days: int, seed: int
                   ) -> ShopData:
    """Simulate a shop into `folder` and read it back."""
    simulate_shop(ShopConfig(n_customers=customers, n_products=products, n_days=days, seed=seed),
                  folder)
    return read_simulated_shop(folder)
