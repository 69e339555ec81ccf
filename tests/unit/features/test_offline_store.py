"""The rendered Feast repo's offline store follows `features.engine`: DuckDB with file
sources by default, Feast's Spark store with Spark sources over the same Parquet files (and
Tailor's Spark session configuration) under `spark`. No Spark session is started here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tailor.batch.spark_session import spark_configuration
from tailor.config import load_settings
from tailor.features.definitions import repo_offline_store
from tailor.features.offline_store import offline_store_config
from tailor.features.repo import load_definitions, render_feature_repo, repo_config_dict

PARQUET_SOURCES = {"customer_features_source", "product_features_source",
                   "product_catalogue_source", "session_features_source"}


def test_duckdb_stays_the_default_offline_store(tmp_path: Path) -> None:
    from feast.infra.offline_stores.file_source import FileSource

    settings = load_settings(home=tmp_path / "home", env={})
    assert offline_store_config(settings) == {"type": "duckdb"}
    repo = render_feature_repo(settings)
    assert yaml.safe_load((repo / "feature_store.yaml").read_text())["offline_store"] == \
        {"type": "duckdb"}
    sources = {source.name: source for source in
               load_definitions(repo, settings.features_project).data_sources}
    assert PARQUET_SOURCES <= set(sources)
    assert all(type(sources[name]) is FileSource for name in PARQUET_SOURCES)


def test_the_spark_engine_renders_feasts_spark_store_with_tailors_session(
        tmp_path: Path) -> None:
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
        SparkSource,
    )

    settings = load_settings(home=tmp_path / "home", env={}).replace(
        features_engine="spark", features_spark_master="spark://cluster:7077",
        features_spark_driver_memory="3g")
    repo = render_feature_repo(settings)
    section = yaml.safe_load((repo / "feature_store.yaml").read_text())["offline_store"]
    assert section == {"type": "spark", "spark_conf": spark_configuration(settings)}
    assert section["spark_conf"]["spark.master"] == "spark://cluster:7077"
    assert section["spark_conf"]["spark.driver.memory"] == "3g"
    # Serving reads only the online store: no pyspark needed there.
    assert repo_config_dict(settings, serving=True)["offline_store"] == {"type": "duckdb"}
    sources = {source.name: source for source in
               load_definitions(repo, settings.features_project).data_sources}
    for name in PARQUET_SOURCES:
        assert isinstance(sources[name], SparkSource), name
        assert sources[name].file_format == "parquet"
        stem = name.removesuffix("_source")
        assert sources[name].path == str(settings.home_path.resolve() / "features"
                                         / f"{stem}.parquet")


def test_an_offline_store_the_definitions_cannot_read_is_named(tmp_path: Path) -> None:
    (tmp_path / "feature_store.yaml").write_text("offline_store:\n  type: bigquery\n")
    with pytest.raises(RuntimeError, match="offline_store.type 'bigquery'"):
        repo_offline_store(tmp_path)
    assert repo_offline_store(tmp_path / "no-repo") == "duckdb"
