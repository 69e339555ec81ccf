"""A feature run after `tailor forget` leaves the forgotten customer out of the offline files
(and so out of the online store it materializes), even while the warehouse still has them."""

from __future__ import annotations

import pandas as pd

from shop_homes import build_shop_home
from tailor.config import load_settings
from tailor.events.tombstones import add_tombstone, load_tombstone_key, tombstone_of
from tailor.features.compute import compute_features


def test_a_tombstoned_customer_gets_no_feature_rows(tmp_path) -> None:
    settings = load_settings(home=tmp_path / "home", env={})
    shop = build_shop_home(settings, tmp_path / "shop", customers=40, products=15, days=10,
                           seed=4, ends_days_ago=1)
    customer = str(pd.read_parquet(shop / "events.parquet")["customer_id"].value_counts().index[0])
    before = compute_features(settings)
    assert customer in set(pd.read_parquet(before.files["customer_features"])["customer_id"])
    add_tombstone(settings.home_path, tombstone_of(load_tombstone_key(settings.home_path),
                                                   customer))
    after = compute_features(settings)
    for table in ("customer_features", "session_features"):
        frame = pd.read_parquet(after.files[table])
        assert customer not in set(frame["customer_id"]) and len(frame) > 0
