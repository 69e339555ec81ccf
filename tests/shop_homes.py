"""Tailor homes built from a simulated shop, for the tests that need a warehouse to work on,
and the check that the feature store's online values equal its offline ones.

Writes the simulator's files (events, products, customers) under the shop folder it is
given, and the event store, lake and warehouse under the settings' home; reads nothing
else. Importable from every test folder: pytest puts `tests/` on `sys.path` when it loads
`tests/conftest.py`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tailor.config import Settings, load_settings
from tailor.events.ingest import ingest_files
from tailor.events.lake import export_lake
from tailor.simulate import ShopConfig, simulate_shop
from tailor.warehouse import refresh_warehouse


def redis_settings(home: Path, redis_url: str, **overrides: Any) -> Settings:
    """Settings of `home` on embedded defaults (no environment) with the online store at
    `redis_url` under a Feast project of its own (the suffix of every Redis key it writes),
    and any other `overrides`."""
    return load_settings(home=home, env={}).replace(
        redis_url=redis_url, features_project=f"t_{uuid.uuid4().hex[:10]}", **overrides)


def load_events(settings: Settings, events: Path, *, products: Path | None = None,
                customers: Path | None = None) -> None:
    """Ingest an events file (and the catalogue and customers when given), then export the
    lake and rebuild the warehouse, as the hourly jobs would."""
    ingest_files(settings, events, products_path=products, customers_path=customers,
                 progress=False)
    export_lake(settings)
    refresh_warehouse(settings)


def build_shop_home(settings: Settings, shop: Path, *, customers: int, products: int,
                    days: int, seed: int, start: str) -> Path:
    """Simulate a shop of that size from `start` into `shop` and take it through ingest,
    lake and warehouse into the settings' home; returns `shop`."""
    simulate_shop(ShopConfig(n_customers=customers, n_products=products, n_days=days,
                             seed=seed, start=start, show_progress=False), shop)
    load_events(settings, shop / "events.parquet", products=shop / "products.csv",
                customers=shop / "customers.csv")
    return shop


def feature_mismatches(online: dict, offline: pd.Series) -> list[str]:
    """One line per feature whose online value differs from the offline row's (floats to
    1e-9, lists element by element); empty when they all agree."""
    wrong = []
    for name, value in online.items():
        other = offline[name]
        if isinstance(value, list):
            same = list(other) == value
        elif isinstance(value, float):
            same = other == pytest.approx(value, rel=1e-9, abs=1e-9)
        else:
            same = other == value
        if not same:
            wrong.append(f"{name}: online {value!r} offline {other!r}")
    return wrong
