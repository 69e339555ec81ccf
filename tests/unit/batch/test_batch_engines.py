"""The two batch engines behind one interface: the same calls give the same rows, types and
files (the feature build's `drop_forgotten` relies on `keep_rows` with a registered frame)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tailor.batch.duckdb_engine import DuckDBEngine
from tailor.batch.spark_engine import SparkEngine

QUERY = ("SELECT * FROM (SELECT 'c1' AS customer_id, CAST(1 AS BIGINT) AS orders, "
         "CAST(2.5 AS DOUBLE) AS revenue, true AS returning UNION ALL "
         "SELECT 'c2', CAST(3 AS BIGINT), CAST(0.5 AS DOUBLE), false UNION ALL "
         "SELECT 'c3', CAST(0 AS BIGINT), CAST(1.0 AS DOUBLE), false) AS t")


def check_engine(engine, folder: Path) -> None:
    """Tables, types, kept rows and one written file, the same on every engine."""
    engine.create_table("buyers", QUERY)
    assert engine.column_types("buyers") == [("customer_id", "string"), ("orders", "int64"),
                                             ("revenue", "float64"), ("returning", "bool")]
    engine.register_frame("forgotten", pd.DataFrame({"customer_id": ["c2"]}))
    engine.keep_rows("buyers", "customer_id NOT IN (SELECT customer_id FROM forgotten)")
    assert sorted(engine.rows("SELECT customer_id, orders FROM buyers")) == [("c1", 1), ("c3", 0)]
    path = folder / "buyers.parquet"
    engine.write_parquet("buyers", path)
    assert sorted(path.parent.iterdir()) == [path]  # one file, nothing left beside it
    written = pd.read_parquet(path).sort_values("customer_id").reset_index(drop=True)
    assert written["customer_id"].tolist() == ["c1", "c3"]
    assert written.dtypes.astype(str).tolist() == ["object", "int64", "float64", "bool"]
    engine.read_parquet("again", path)
    assert engine.rows("SELECT SUM(revenue) FROM again") == [(3.5,)]


def test_duckdb_engine(tmp_path: Path) -> None:
    engine = DuckDBEngine(duckdb.connect())
    try:
        check_engine(engine, tmp_path)
    finally:
        engine.close()


def test_spark_engine(spark_session, tmp_path: Path) -> None:
    engine = SparkEngine(spark_session)
    try:
        check_engine(engine, tmp_path)
    finally:
        engine.close()
    assert not spark_session.catalog.listTables()  # its views are dropped


def test_lake_urls_as_spark_reads_them() -> None:
    from tailor.batch.spark_engine import spark_path

    assert spark_path("s3://bucket/tailor") == "s3a://bucket/tailor"
    assert spark_path("/srv/lake") == "/srv/lake"
    assert spark_path("hdfs://namenode/lake") == "hdfs://namenode/lake"
    with pytest.raises(RuntimeError, match="memory://"):
        spark_path("memory://lake")


@pytest.mark.usefixtures("spark_session")  # its skip without Java, and the Spark worker
def test_the_jvms_notices_go_to_the_homes_log_not_the_terminal(tmp_path: Path) -> None:
    """A job that starts Spark (a process of its own: one JVM per process) prints only its
    own output; the JVM's banners and warnings land in `<home>/logs/spark.log`."""
    import subprocess
    import sys

    script = ("from tailor.config import load_settings\n"
              "from tailor.batch.spark_session import spark_session\n"
              f"settings = load_settings(home={str(tmp_path / 'home')!r}, env={{}}).replace(\n"
              "    features_spark_master='local[1]', features_spark_driver_memory='512m')\n"
              "session = spark_session(settings)\n"
              "print('rows', session.range(3).count(), flush=True)\n"
              "session.stop()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "rows 3"
    assert "log4j" not in done.stderr and "WARN" not in done.stderr, done.stderr[-3000:]
    assert "log4j" in (tmp_path / "home" / "logs" / "spark.log").read_text(errors="replace")
