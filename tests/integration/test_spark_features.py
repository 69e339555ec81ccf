"""Spark and DuckDB compute the same features: every table, entity, timestamp and value
(floats within 1e-9 relative), on one simulated shop with the awkward cases added
(events without session ids, purchases without order ids, events sharing a timestamp).

Also: the Spark build reads the DuckDB build's files as its previous build and finds no
newest row changed, and a forgotten customer's rows are dropped on Spark too.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shop_homes import load_events, simulate_recent_shop

from tailor.config import Settings, load_settings
from tailor.features.compute import OUTPUTS, compute_features

pytestmark = pytest.mark.slow

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def awkward_events(events: pd.DataFrame) -> pd.DataFrame:
    """The shop's events with the cases the SQL treats specially: a third of the customers
    send no session ids (sessions derived by the 30-minute gap) and no order ids (orders
    derived per session or day), and some events share their predecessor's timestamp."""
    events = events.copy()
    customers = sorted(events["customer_id"].unique())
    anonymous = events["customer_id"].isin(customers[::3])
    events.loc[anonymous, "session_id"] = None
    events.loc[anonymous, "order_id"] = None
    same_time = events.index[5::37]
    events.loc[same_time, "timestamp"] = events["timestamp"].shift(1).loc[same_time]
    return events.dropna(subset=["timestamp"])


@pytest.fixture(scope="module")
def shop_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A 60-customer, 30-day shop ingested into a home (lake and warehouse built)."""
    folder = tmp_path_factory.mktemp("spark_shop")
    shop = simulate_recent_shop(folder / "shop", customers=60, products=20, days=30, seed=11,
                                ends_days_ago=1)
    events = awkward_events(pd.read_parquet(shop / "events.parquet"))
    events.to_parquet(shop / "events.parquet", index=False)
    settings = load_settings(home=folder / "home", env={})
    load_events(settings, shop / "events.parquet", products=shop / "products.csv",
                customers=shop / "customers.csv")
    return settings


@pytest.fixture(scope="module")
def both_builds(shop_settings: Settings, spark_session, tmp_path_factory):
    """(DuckDB files folder, DuckDB build, Spark build): DuckDB first, its files copied
    aside, then Spark over the same lake into the same home."""
    duck = compute_features(shop_settings, now=NOW, progress=lambda message: None)
    copies = tmp_path_factory.mktemp("duckdb_features")
    for path in Path(duck.feature_dir).glob("*.parquet"):
        shutil.copy(path, copies / path.name)
    spark = compute_features(shop_settings.replace(features_engine="spark"), now=NOW,
                             progress=lambda message: None)
    return copies, duck, spark


def sorted_rows(path: Path, key: str) -> pd.DataFrame:
    """The rows in one order whatever order an engine wrote them in: by entity, time and,
    where one entity has several rows at one time (a customer's sessions), the session."""
    frame = pd.read_parquet(path)
    order = [key, "event_timestamp"] + (["session_id"] if "session_id" in frame.columns
                                        and key != "session_id" else [])
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def assert_same_values(table: str, duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert list(spark.columns) == list(duck.columns), table
    assert spark.dtypes.astype(str).tolist() == duck.dtypes.astype(str).tolist(), table
    assert len(spark) == len(duck), table
    for column in duck.columns:
        if duck[column].dtype == np.float64:
            np.testing.assert_allclose(spark[column], duck[column], rtol=1e-9, atol=0,
                                       err_msg=f"{table}.{column}")
        else:
            as_text = [str(list(value)) if isinstance(value, np.ndarray) else str(value)
                       for value in spark[column]]
            expected = [str(list(value)) if isinstance(value, np.ndarray) else str(value)
                        for value in duck[column]]
            assert as_text == expected, f"{table}.{column}"


@pytest.mark.parametrize("table", list(OUTPUTS))
def test_spark_computes_every_feature_duckdb_does(both_builds, table: str) -> None:
    copies, duck_build, spark_build = both_builds
    key = OUTPUTS[table][0]
    duck = sorted_rows(copies / f"{table}.parquet", key)
    spark = sorted_rows(Path(spark_build.files[table]), key)
    assert len(duck) > 20, f"{table}: too few rows to compare"
    assert_same_values(table, duck, spark)
    assert spark_build.rows[table] == duck_build.rows[table]


def test_the_shop_holds_the_cases_the_sql_treats_specially(both_builds) -> None:
    copies, _, _ = both_builds
    sessions = pd.read_parquet(copies / "session_features.parquet")
    assert sessions["session_id"].str.startswith("derived:").any()
    assert (~sessions["session_id"].str.startswith("derived:")).any()


def test_spark_reads_the_duckdb_build_as_its_previous_one(both_builds) -> None:
    """Materialization redoes rows from `changed_since`: after an identical rebuild on the
    other engine, nothing."""
    _, duck_build, spark_build = both_builds
    assert all(stamp is not None for stamp in duck_build.changed_since.values())
    assert spark_build.changed_since == {table: None for table in OUTPUTS}
    assert spark_build.categories == duck_build.categories
    assert spark_build.newest_event == duck_build.newest_event


def test_quality_aggregates_are_the_same_on_the_store_duckdb_and_spark(
        shop_settings: Settings, spark_session) -> None:
    """The gate's scans of stored events: the event store's, DuckDB's over the warehouse and
    Spark's over the lake agree; a reference time before the newest events makes the
    future-timestamp count non-zero."""
    from tailor.batch.duckdb_engine import DuckDBEngine
    from tailor.batch.spark_engine import SparkEngine
    from tailor.events.store import open_event_store
    from tailor.quality.engine_facts import engine_aggregates
    from tailor.quality.gate import run_quality_gate
    from tailor.quality.rules import store_aggregates

    store = open_event_store(shop_settings.event_store_url)
    try:
        newest = store.latest_event_time()
        now = newest - pd.Timedelta(days=2)
        expected = store_aggregates(store, now)
    finally:
        store.close()
    assert expected.violations["future_timestamp"] > 0 and expected.stored > 1000
    for engine in (DuckDBEngine.over_warehouse(shop_settings),
                   SparkEngine.over_lake(shop_settings.replace(features_engine="spark"))):
        try:
            found = engine_aggregates(engine, now)
        finally:
            engine.close()
        assert (found.stored, found.violations, found.latest_event_time) == \
            (expected.stored, expected.violations, expected.latest_event_time), engine.dialect
        pd.testing.assert_frame_equal(found.daily, expected.daily)
    on_store = run_quality_gate(shop_settings, now=now, write=False, alert=False)
    on_spark = run_quality_gate(shop_settings.replace(features_engine="spark"), now=now,
                                write=False, alert=False)
    assert on_spark.to_dict()["rules"] == on_store.to_dict()["rules"]
    assert on_store.rule("future_timestamp").count > 0


def test_the_gate_reads_the_store_when_the_lake_lags(shop_settings: Settings,
                                                     spark_session, tmp_path: Path) -> None:
    """An event stored after the last export is in the store's counts, not the lake's: the gate
    on Spark then takes the store's aggregates rather than miss it. (Last in this module: it
    adds an event to the shared shop.)"""
    from tailor.events.ingest.job import ingest_files
    from tailor.quality.gate import run_quality_gate

    events = pd.read_parquet(Path(shop_settings.lake_root) / "events")
    late = events.sort_values("timestamp").tail(1)[["customer_id", "event_type", "timestamp"]]
    late = late.assign(event_type="page_view", timestamp=late["timestamp"] + pd.Timedelta(
        minutes=1), event_id="late-1")
    late.to_csv(tmp_path / "late.csv", index=False)
    assert ingest_files(shop_settings, tmp_path / "late.csv", progress=False).accepted == 1
    report = run_quality_gate(shop_settings.replace(features_engine="spark"), write=False,
                              alert=False)
    assert report.stored == len(events) + 1
