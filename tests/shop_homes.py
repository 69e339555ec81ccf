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
from tailor.events.ingest.job import ingest_files
from tailor.events.lake import export_lake
from tailor.simulate import ShopConfig, simulate_shop
from tailor.warehouse import refresh_warehouse

REFERENCE_START = "2026-01-05"  # a Monday; every simulated test shop starts here


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


def simulate_recent_shop(shop: Path, *, customers: int, products: int, days: int, seed: int,
                         ends_days_ago: int) -> Path:
    """Simulate a shop into `shop` that ends `ends_days_ago` whole days before today (UTC).

    The simulator runs from the fixed `REFERENCE_START`, then the events and signup dates
    move forward by whole days: the shop is the same on every day the tests run. Starting the
    simulator at a date relative to today gave a different shop each day (its calendar
    shapes the sessions), and on some days too few repeat buyers for a cross-sell backtest.
    The ground-truth files keep the reference dates."""
    simulate_shop(ShopConfig(n_customers=customers, n_products=products, n_days=days,
                             seed=seed, start=REFERENCE_START, show_progress=False), shop)
    simulated_end = pd.Timestamp(REFERENCE_START, tz="UTC") + pd.Timedelta(days=days)
    wanted_end = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=ends_days_ago)
    shift = wanted_end - simulated_end
    events = pd.read_parquet(shop / "events.parquet")
    events["timestamp"] = events["timestamp"] + shift
    events.to_parquet(shop / "events.parquet", index=False)
    people = pd.read_csv(shop / "customers.csv", dtype=str, keep_default_na=False)
    signup = pd.to_datetime(people["signup_date"], errors="coerce") + shift
    people["signup_date"] = signup.dt.strftime("%Y-%m-%d").fillna("")
    people.to_csv(shop / "customers.csv", index=False)
    return shop


def build_shop_home(settings: Settings, shop: Path, *, customers: int, products: int,
                    days: int, seed: int, ends_days_ago: int) -> Path:
    """`simulate_recent_shop` into `shop`, then ingest, lake and warehouse into the settings'
    home; returns `shop`."""
    simulate_recent_shop(shop, customers=customers, products=products, days=days, seed=seed,
                         ends_days_ago=ends_days_ago)
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
