"""Which Feast offline store the home's repo uses: DuckDB, or Spark under `features.engine`.

Reads the settings; writes nothing. The DuckDB engine's repo reads the offline Parquet
files with Feast's DuckDB offline store; the Spark engine's with Feast's Spark offline
store (`feast.infra.offline_stores.contrib.spark_offline_store`), configured with the
session settings Tailor's own Spark jobs use (`tailor.batch.spark_session`), so training
sets (`get_historical_features`) and Feast's materialization reads run on Spark. The data
sources follow the rendered yaml's store (`tailor.features.definitions`): `FileSource`s
for DuckDB, `SparkSource`s over the same files for Spark.

`offline_engine` wraps the Feast calls that read the offline store: it starts Tailor's
session first (so a missing pyspark or Java is reported with what to install, and Feast
finds the session already running), and puts back the one SQL option Feast changes on it.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

from tailor.config import Settings

DUCKDB = "duckdb"
SPARK = "spark"
# Feast turns this on in every session it touches; Tailor's SQL is written without it.
_FEAST_SESSION_OPTION = "spark.sql.parser.quotedRegexColumnNames"


def offline_store_type(settings: Settings) -> str:
    """`spark` under `features.engine = spark`, else `duckdb`."""
    return SPARK if settings.features_engine == SPARK else DUCKDB


def offline_store_config(settings: Settings) -> dict[str, Any]:
    """The feature_store.yaml `offline_store` section for the settings.

    DuckDB (through ibis) joins point in time in SQL; the file store's dask join pickles
    every object column at each step (docs/features.md, "Offline store"). Spark gets the
    configuration of Tailor's Spark session (master, driver memory, shuffle partitions,
    UTC), so `feast` on the rendered repo starts the same session Tailor would.
    """
    if offline_store_type(settings) == DUCKDB:
        return {"type": DUCKDB}
    from tailor.batch.spark_session import spark_configuration

    return {"type": SPARK, "spark_conf": spark_configuration(settings)}


@contextlib.contextmanager
def offline_engine(settings: Settings) -> Iterator[None]:
    """Around Feast calls that read the offline store (training sets, materialization).

    Under the Spark engine: Tailor's session is started (or reused) before Feast looks for
    one, Feast's warnings that its Spark store is experimental are silenced (known, and
    documented in docs/features.md), and the session's regex-column option is restored
    afterwards. Under DuckDB nothing happens.

    Raises:
        RuntimeError: the Spark engine without pyspark or Java (what to install).
    """
    if offline_store_type(settings) == DUCKDB:
        yield
        return
    from tailor.batch.spark_session import spark_session

    session = spark_session(settings)
    before = session.conf.get(_FEAST_SESSION_OPTION, "false")
    try:
        with warnings.catch_warnings():
            for message in ("The spark offline store is an experimental",
                            "The spark data source API is an experimental"):
                warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
            yield
    finally:
        session.conf.set(_FEAST_SESSION_OPTION, before)
