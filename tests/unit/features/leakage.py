"""The point-in-time leakage checks every offline store's training sets are held to.

Each check draws its rows from a simulated shop, reads their features through
`training_frame` (Feast's `get_historical_features` on the home's offline store: DuckDB,
or Spark under `features.engine = spark`) and compares every value with the independent
pandas reference (`reference.py`) over the raw events. test_feature_store.py runs them on
DuckDB, test_feature_store_spark.py on Spark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from tailor.config import Settings
from tailor.features.training import training_frame

from reference import Shop, churn_features, request_features, sample_times, session_features


@dataclass
class Checked:
    """A training set and the values in it that differ from the reference."""

    frame: pd.DataFrame
    mismatches: list[tuple]


def _same(actual: object, expected: object) -> bool:
    if isinstance(expected, list):
        return list(actual) == expected
    if isinstance(expected, (str, bool, np.bool_)):
        return actual == expected
    return actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


def churn_entity_rows(shop: Shop, seed: int = 5) -> pd.DataFrame:
    """(customer_id, event_timestamp) rows: 25 active customers at random instants and at
    the edges around their purchases, and two customers without events."""
    rng = np.random.default_rng(seed)
    active = sorted(shop.events["customer_id"].unique())
    silent = sorted(set(shop.profiles.index) - set(active))[:2]
    customers = list(rng.choice(active, size=25, replace=False)) + silent
    pairs = sample_times(shop, customers, rng)
    return pd.DataFrame({"customer_id": [customer for customer, _ in pairs],
                         "event_timestamp": [moment for _, moment in pairs]})


def check_churn(settings: Settings, shop: Shop, entity_rows: pd.DataFrame) -> Checked:
    """The churn training set of `entity_rows`, each value against the reference recomputed
    from the raw events strictly before the row's snapshot."""
    frame = training_frame(settings, entity_rows, "churn")
    assert len(frame) == len(entity_rows)
    mismatches = []
    for index, row in entity_rows.iterrows():
        moment = pd.Timestamp(row["event_timestamp"])
        expected = churn_features(shop, row["customer_id"], moment)
        for name, value in expected.items():
            if not _same(frame.at[index, name], value):
                mismatches.append((row["customer_id"], str(moment), name,
                                   frame.at[index, name], value))
    return Checked(frame, mismatches)


def check_checkout(settings: Settings, shop: Shop, seed: int = 11) -> Checked:
    """The checkout model's training rows (from the Feast `checkout` service), sampled
    carts and carts that went on to checkout, against the reference up to the cart's last
    change (session), before its snapshot (customer) and at its time (request)."""
    from tailor.features.repo import open_feature_store
    from tailor.models.checkout import checkout_frame
    from tailor.models.data import load_shop_data
    from tailor.models.feature_frames import feature_source

    data = load_shop_data(settings)
    assert feature_source(data, "checkout") == "feast:checkout"
    frame = checkout_frame(data)
    store = open_feature_store(settings)
    service = {field.name for projection in store.get_feature_service("checkout")
               .feature_view_projections for field in projection.features}
    assert service <= set(frame.columns)
    rng = np.random.default_rng(seed)
    # Carts that went on to checkout: later events of the session must not show.
    checked_out = set(data.events.loc[data.events["event_type"] == "checkout_start",
                                      "session_key"])
    later = frame.index[frame["session_key"].isin(checked_out)]
    rows = sorted(set(rng.choice(frame.index, size=30, replace=False)) | set(later[:15]))
    mismatches = []
    for index in rows:
        row = frame.loc[index]
        cart_time = row["event_timestamp"]
        expected = {**churn_features(shop, row["customer_id"], cart_time),
                    **session_features(shop, row["customer_id"], cart_time),
                    **request_features(cart_time)}
        mismatches += [(row["session_key"], name, row[name], expected[name])
                       for name in sorted(service) if not _same(row[name], expected[name])]
    assert len(later) >= 5 and not frame.loc[later, "session_checkout_started"].any()
    return Checked(frame, mismatches)
