"""Injected faults are exactly what the event contract's validation rejects, kind by kind."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailor.events.schema import DUPLICATE_EVENT_ID, REJECT_REASONS, validate_events
from tailor.simulate import ShopConfig, simulate_shop
from tailor.simulate.faults import FAULT_KINDS

CONFIG = ShopConfig(n_customers=300, n_products=100, n_days=14, seed=9, fault_rate=0.03)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("faulty")
    simulate_shop(CONFIG, out)
    events = pd.read_parquet(out / "events.parquet")
    received = pd.Timestamp(CONFIG.start, tz="UTC") + pd.Timedelta(days=CONFIG.n_days + 2)
    result = validate_events(events, now=received,
                             known_products=set(pd.read_csv(out / "products.csv")["product_id"]))
    return {"events": events, "result": result,
            "faults": json.loads((out / "ground_truth" / "faults.json").read_text())}


def test_fault_counts_use_the_contract_reason_codes(faulty: dict) -> None:
    assert set(faulty["faults"]) == set(FAULT_KINDS)
    assert set(FAULT_KINDS) - {DUPLICATE_EVENT_ID} <= set(REJECT_REASONS)
    assert all(count >= 1 for count in faulty["faults"].values())
    corrupted = sum(faulty["faults"].values())
    assert corrupted == pytest.approx(CONFIG.fault_rate * len(faulty["events"]), rel=0.05)


def test_validation_rejects_exactly_the_injected_rows(faulty: dict) -> None:
    rejected = faulty["result"].rejected["reason"].value_counts().to_dict()
    expected = {kind: count for kind, count in faulty["faults"].items()
                if kind != DUPLICATE_EVENT_ID}
    assert rejected == expected
    n_bad = sum(expected.values())
    assert len(faulty["result"].valid) == len(faulty["events"]) - n_bad  # every good row passes


def test_duplicates_are_exact_copies_counted_once(faulty: dict) -> None:
    events = faulty["events"]
    repeated = events["event_id"].duplicated()
    assert repeated.sum() == faulty["faults"][DUPLICATE_EVENT_ID]
    copies = events[events["event_id"].isin(events.loc[repeated, "event_id"])]
    assert (copies.astype(str).groupby("event_id").nunique() == 1).all().all()


def test_future_timestamps_are_years_ahead(faulty: dict) -> None:
    result = faulty["result"]
    future = result.rejected[result.rejected["reason"] == "future_timestamp"]
    raw = future["raw"].map(lambda text: json.loads(text)["timestamp"])
    timestamps = pd.to_datetime(raw, utc=True)
    assert (timestamps > pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=365 * 5)).all()


def test_a_tiny_rate_still_injects_every_kind_once(tmp_path: Path) -> None:
    config = ShopConfig(n_customers=60, n_products=40, n_days=3, seed=1, fault_rate=1e-6)
    summary = simulate_shop(config, tmp_path)
    assert summary.faults == dict.fromkeys(FAULT_KINDS, 1)
    events = pd.read_parquet(tmp_path / "events.parquet")
    assert events["event_id"].duplicated().sum() == 1
    assert events["customer_id"].isna().sum() == 1
