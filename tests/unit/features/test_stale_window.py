"""A shop whose events end long before today: `tailor features` with a TTL
shorter than that gap materializes nothing fresh, and says so instead of exiting quietly."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailor.cli import app as cli_app
from tailor.config import load_settings
from tailor.features.freshness import WindowRows, stale_warnings
from tailor.features.online import OnlineFeatureReader

from shop_homes import build_shop_home


def run_cli(home: Path, *options: str, **env: str):
    with pytest.MonkeyPatch.context() as patch:  # the caller's TAILOR_* must not leak in
        for key in [key for key in os.environ if key.startswith("TAILOR_")]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        result = CliRunner().invoke(cli_app, ["features", "--home", str(home), *options])
    assert result.exit_code == 0, result.output
    return result


def test_an_empty_window_is_reported_not_served_as_fresh(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", env={})
    shop = build_shop_home(settings, tmp_path / "shop", customers=80, products=30, days=14,
                           seed=11, ends_days_ago=120)
    report = json.loads(run_cli(settings.home_path, "--json",
                                TAILOR_FEATURES_BATCH_TTL_DAYS="30").stdout)
    assert report["materialized_rows"] == 0
    assert report["window_rows"]["customer_activity"] == 0
    warned = " ".join(report["warnings"])
    for view in ("customer_activity", "customer_categories", "product_activity",
                 "product_catalogue"):
        assert f"{view}: no offline rows within its TTL" in warned
    assert "session_context" not in warned  # pushed by the collector: an empty half hour is normal
    printed = run_cli(settings.home_path, TAILOR_FEATURES_BATCH_TTL_DAYS="30").output
    assert "warning: customer_activity: no offline rows within its TTL" in printed
    events = pd.read_parquet(shop / "events.parquet")
    buyer = events.loc[events["event_type"] == "purchase", "customer_id"].iloc[0]
    vector = OnlineFeatureReader(settings.replace(features_batch_ttl_days=30), "churn").read(
        buyer, request_time=datetime.now(timezone.utc))
    # Nothing fresh was materialized: the buyer's history is stale, not a new customer's.
    assert vector.stale and not vector.missing and vector.error is None
    assert set(vector.stale_views) == {"customer_activity", "customer_categories"}
    assert vector.values["orders_lifetime"] == 0  # the default, flagged


def test_a_window_with_rows_warns_of_nothing() -> None:
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    counts = [WindowRows("customer_activity", 10, 10, now, True),
              WindowRows("session_context", 0, 0, None, False)]
    assert stale_warnings(counts, now) == []
    assert stale_warnings([WindowRows("customer_activity", 0, 0, None, True)], now) == [
        "customer_activity: no offline rows within its TTL before 2026-06-01 00:00 (no rows); "
        "every online read of it is stale defaults. Load recent events, or raise "
        "features.batch_ttl_days"]
