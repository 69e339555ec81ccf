"""The foundation through its commands, as a user runs them: simulate with faults, ingest,
validate, export, warehouse. Every injected fault is reported with the simulator's exact
count, and every good row is stored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

TAILOR = str(Path(sys.executable).with_name("tailor"))


def tailor(*args: str, home: Path, expect: int = 0) -> dict:
    completed = subprocess.run([TAILOR, *args, "--home", str(home), "--json"],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == expect, completed.stderr[-2000:]
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def faulty_shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, dict]:
    """A simulated shop with 1% injected faults, ingested: (home, shop, injected, report).

    The ingest happens here, not in a test, so that every test can run alone."""
    root = tmp_path_factory.mktemp("foundation")
    home, shop = root / "home", root / "shop"
    tailor("simulate", "--customers", "300", "--products", "80", "--days", "21", "--seed", "11",
           "--faults", "0.01", "--out", str(shop), home=home)
    injected = json.loads((shop / "ground_truth" / "faults.json").read_text())
    report = tailor("ingest", str(shop / "events.parquet"), "--products", str(shop / "products.csv"),
                    "--customers", str(shop / "customers.csv"), home=home)
    return home, shop, injected, report


def test_ingest_reports_each_injected_fault_exactly(faulty_shop: tuple[Path, Path, dict, dict]
                                                    ) -> None:
    _, shop, injected, report = faulty_shop
    expected_rejected = {reason: count for reason, count in injected.items()
                         if reason != "duplicate_event_id" and count}
    assert report["rejected"] == expected_rejected
    assert report["duplicates"] == injected["duplicate_event_id"]
    rows = len(pd.read_parquet(shop / "events.parquet", columns=["event_id"]))
    assert report["accepted"] == rows - sum(expected_rejected.values()) - injected["duplicate_event_id"]


def test_every_good_row_is_stored_once(faulty_shop: tuple[Path, Path, dict, dict]) -> None:
    home, shop, _, _ = faulty_shop
    events = pd.read_parquet(shop / "events.parquet")
    result = tailor("warehouse", home=home)  # nothing exported yet: the store is the truth
    assert result["tables"]["events"] == 0
    tailor("export", home=home)
    stored = tailor("warehouse", "SELECT event_id FROM events", home=home)["rows"]
    stored_ids = {row["event_id"] for row in stored}
    assert len(stored_ids) == len(stored)
    from tailor.events.schema import validate_events

    products = set(pd.read_csv(shop / "products.csv", dtype=str)["product_id"])
    good = validate_events(events, now=pd.Timestamp.now(tz="UTC"), known_products=products).valid
    assert stored_ids == set(good["event_id"])


def test_validate_fails_with_the_exact_counts_and_writes_reports(
        faulty_shop: tuple[Path, Path, dict, dict]) -> None:
    home, _, injected, _ = faulty_shop
    report = tailor("validate", home=home, expect=1)
    assert report["passed"] is False
    rules = {rule["name"]: rule for rule in report["rules"]}
    for reason in ("missing_customer_id", "nonpositive_price", "future_timestamp", "unknown_product",
                   "malformed_row"):
        assert rules[reason]["count"] == injected[reason], reason
        assert rules[reason]["status"] == "fail"
    assert rules["duplicate_event_id"]["count"] == injected["duplicate_event_id"]
    for path in report["report_paths"].values():
        assert Path(path).is_file()


def test_a_clean_shop_passes_the_gate(tmp_path: Path) -> None:
    home, shop = tmp_path / "home", tmp_path / "shop"
    tailor("simulate", "--customers", "150", "--products", "50", "--days", "14", "--out", str(shop), home=home)
    report = tailor("ingest", str(shop / "events.parquet"), "--products", str(shop / "products.csv"), home=home)
    assert report["rejected"] == {} and report["duplicates"] == 0
    assert tailor("validate", home=home)["passed"] is True
