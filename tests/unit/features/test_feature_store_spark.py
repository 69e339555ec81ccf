"""Training sets through Feast's Spark offline store (`features.engine = spark`): the
point-in-time leakage checks the DuckDB store is held to (leakage.py), the same training
sets as DuckDB's on one simulated shop (rows, columns, types; floats within 1e-9
relative), and an online store materialized through Spark equal to DuckDB's.

One shop: `tailor features` on DuckDB, the home copied, and the copy's Feast repo applied
and materialized with the Spark offline store on the shared Spark session (that Spark
computes the same feature files is test_spark_features.py's part).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pandas as pd
import pytest

from tailor.config import Settings, load_settings
from tailor.features.build import run_features
from tailor.features.online import OnlineFeatureReader
from tailor.features.repo import apply_definitions, materialize, open_feature_store
from tailor.features.training import training_frame

from leakage import check_checkout, check_churn, churn_entity_rows
from reference import Shop, load_shop
from shop_homes import build_shop_home

pytestmark = pytest.mark.slow

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SERVICES = ("homepage", "churn", "checkout", "cross_sell")
REGEX_OPTION = "spark.sql.parser.quotedRegexColumnNames"


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory,
          spark_session) -> tuple[Settings, Settings, Shop]:
    """(DuckDB home, Spark home, shop): the features computed once on DuckDB; the Spark
    home a copy whose repo reads the same files through the Spark offline store."""
    folder = tmp_path_factory.mktemp("feast_spark")
    duck = load_settings(home=folder / "duck_home", env={})
    shop = build_shop_home(duck, folder / "shop", customers=120, products=40, days=30,
                           seed=3, ends_days_ago=10)
    run_features(duck, now=NOW, show_progress=False)
    shutil.copytree(duck.home_path, folder / "spark_home", symlinks=True)
    spark = load_settings(home=folder / "spark_home", env={}).replace(
        features_engine="spark", features_spark_master="local[2]",
        features_spark_shuffle_partitions=2, features_spark_driver_memory="1g")
    apply_definitions(spark)
    materialize(spark, end=NOW)
    return duck, spark, load_shop(shop)


def assert_same_training_set(spark: pd.DataFrame, duck: pd.DataFrame) -> None:
    """Same rows in the same order, same columns and types; floats within 1e-9 relative."""
    assert len(spark) == len(duck) > 0
    pd.testing.assert_frame_equal(spark, duck, check_exact=False, rtol=1e-9, atol=0)


def test_the_spark_engines_repo_reads_the_files_through_feasts_spark_store(homes) -> None:
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
        SparkSource,
    )
    from feast.infra.offline_stores.file_source import FileSource

    from tailor.batch.spark_session import spark_configuration

    duck, spark, _ = homes
    on_spark, on_duck = open_feature_store(spark), open_feature_store(duck)
    assert on_spark.config.offline_store.type == "spark"
    assert on_spark.config.offline_store.spark_conf == spark_configuration(spark)
    assert on_duck.config.offline_store.type == "duckdb"
    for name in ("customer_activity", "product_activity", "product_catalogue"):
        source, duck_source = on_spark.get_feature_view(name).batch_source, \
            on_duck.get_feature_view(name).batch_source
        assert isinstance(source, SparkSource) and source.file_format == "parquet"
        assert isinstance(duck_source, FileSource)
        assert source.path.startswith(str(spark.home_path.resolve()))
        assert source.path.replace(str(spark.home_path.resolve()), "") == \
            duck_source.path.replace(str(duck.home_path.resolve()), "")


def test_spark_churn_training_set_uses_only_events_before_their_time(homes,
                                                                     spark_session) -> None:
    """Leakage on Spark, and the same training set as DuckDB's for the same rows."""
    duck, spark, shop = homes
    rows = churn_entity_rows(shop)
    checked = check_churn(spark, shop, rows)
    assert not checked.mismatches, \
        f"{len(checked.mismatches)} mismatches, e.g. {checked.mismatches[:5]}"
    assert_same_training_set(checked.frame, training_frame(duck, rows, "churn"))
    # Feast turns on regex column names in the session it uses; Tailor's SQL runs without.
    assert spark_session.conf.get(REGEX_OPTION) == "false"


def test_spark_checkout_training_set_uses_only_events_up_to_the_cart(homes) -> None:
    """Leakage on Spark for the checkout model's rows, equal to DuckDB's rows."""
    from tailor.models.checkout import checkout_frame
    from tailor.models.data import load_shop_data

    duck, spark, shop = homes
    checked = check_checkout(spark, shop)
    assert not checked.mismatches, \
        f"{len(checked.mismatches)} mismatches, e.g. {checked.mismatches[:5]}"
    assert_same_training_set(checked.frame, checkout_frame(load_shop_data(duck)))


@pytest.mark.parametrize("service", SERVICES)
def test_the_online_store_materialized_through_spark_equals_duckdbs(homes, service) -> None:
    duck, spark, shop = homes
    column = "product_id" if service == "cross_sell" else "customer_id"
    ids = sorted(shop.events[column].dropna().unique())[:40] + ["never-seen"]
    on_duck = OnlineFeatureReader(duck, service).read_many(ids, request_time=NOW)
    on_spark = OnlineFeatureReader(spark, service).read_many(ids, request_time=NOW)
    assert on_spark == on_duck
    # Fresh batch rows (the shop's sessions ended days ago: no session view row online).
    fresh = [vector for vector in on_spark
             if set(vector.missing_views) | set(vector.stale_views) <= {"session_context"}]
    assert len(fresh) >= 20 and on_spark[-1].missing
