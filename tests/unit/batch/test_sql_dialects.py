"""One SQL text, two dialects: every batch SQL file renders for DuckDB and for Spark with no
placeholder left and no construct of the other dialect, the constructs render as each engine
spells them, and literals quote safely in both. (The rendered files' rows are compared
across engines in tests/integration/test_spark_features.py.)"""

from __future__ import annotations

import re
from importlib import resources

import duckdb
import pytest

from tailor.sql_dialects import DIALECTS, DUCKDB, SPARK, Macro, render

# Every batch SQL file written for both engines, with values for its placeholders.
VALUES = {"bucket_seconds": 86400, "horizon_bucket": 20500, "first_bucket": 20400, "w1": 1,
          "w7": 7, "w30": 30, "w60": 60, "w90": 90, "w30_plus_1": 31, "session_gap_minutes": 30,
          "season_expression": "NULL", "category_counts": "", "category_windows": "",
          "category_columns": "", "top_category": "'unknown'", "bucket_values": "a.orders",
          "now_micros": 0}
FILES = [("tailor.features", name) for name in (
    "keyed_events", "product_tiers", "customer_buckets", "customer_features", "product_features",
    "product_catalogue", "session_features")] + [
    ("tailor.warehouse", "orders"), ("tailor.quality", "event_totals"),
    ("tailor.quality", "event_days")]
DUCKDB_ONLY = ("EPOCH(", "EPOCH_US(", "TO_TIMESTAMP(", "IGNORE NULLS", "LIST_SORT(", "LEN(",
               "QUALIFY", "EXCLUDE", '"timestamp"', "[]")
SPARK_ONLY = ("UNIX_MICROS(", "TIMESTAMP_SECONDS(", "COLLECT_LIST(", "ARRAY_SIZE(", "ARRAY()")


def sql_text(package: str, name: str) -> str:
    return resources.files(package).joinpath("sql", f"{name}.sql").read_text("utf-8")


def code(text: str) -> str:
    """The SQL without its comments."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize(("package", "name"), FILES)
def test_every_file_renders_for_both_engines_in_their_own_spelling(package: str,
                                                                  name: str) -> None:
    text = sql_text(package, name)
    for dialect, foreign in ((DUCKDB, SPARK_ONLY), (SPARK, DUCKDB_ONLY)):
        rendered = code(render(text, dialect, **VALUES))
        assert not re.search(r"\{[a-z_.]+[:}]", rendered), f"{name}: placeholder left"
        assert "1.0 *" not in rendered and "* 1.0" not in rendered  # a DECIMAL in Spark
        upper = rendered.upper()
        assert [word for word in foreign if word.upper() in upper] == [], (name, dialect.name)


def test_constructs_render_as_each_engine_spells_them() -> None:
    text = "{sql.epoch_seconds:e.timestamp} {sql.last_non_null:device} {sql.empty_string_list}"
    assert render(text, DUCKDB) == "EPOCH(e.timestamp) LAST_VALUE(device IGNORE NULLS) " \
                                   "CAST([] AS VARCHAR[])"
    assert render(text, SPARK) == "(UNIX_MICROS(e.timestamp) / 1e6) LAST_VALUE(device, true) " \
                                  "CAST(ARRAY() AS ARRAY<STRING>)"
    assert render("{sql.timestamp_from_seconds:b * {n}}", SPARK, n=3600) \
        == "TIMESTAMP_SECONDS(b * 3600)"
    with pytest.raises(ValueError, match="needs an argument"):
        format(Macro("F({0})"), "")
    assert set(DIALECTS) == {"duckdb", "spark"}


def test_duckdb_reads_its_literals_and_constructs_back() -> None:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    tricky = "it's a \\ back'slash"
    assert connection.execute(f"SELECT {DUCKDB.literal(tricky)}").fetchone()[0] == tricky
    query = render("SELECT {sql.epoch_seconds:t}, {sql.epoch_micros:t}, "
                   "{sql.timestamp_from_seconds:86400} = TIMESTAMPTZ '1970-01-02 00:00:00+00' "
                   "FROM (SELECT TIMESTAMPTZ '1970-01-01 00:00:01.5+00' AS t) AS x", DUCKDB)
    assert connection.execute(query).fetchone() == (1.5, 1_500_000, True)
    assert connection.execute(f"SELECT {DUCKDB.json_text('x', '$.season')} FROM "
                              "(SELECT '{\"season\": \"winter\"}' AS x) AS j").fetchone()[0] \
        == "winter"


def test_spark_reads_its_literals_and_constructs_back(spark_session) -> None:
    tricky = "it's a \\ back'slash"
    assert spark_session.sql(f"SELECT {SPARK.literal(tricky)}").collect()[0][0] == tricky
    query = render("SELECT {sql.epoch_seconds:t}, {sql.epoch_micros:t}, "
                   "{sql.timestamp_from_seconds:86400} = TIMESTAMP '1970-01-02 00:00:00' "
                   "FROM (SELECT TIMESTAMP '1970-01-01 00:00:01.5' AS t) AS x", SPARK)
    assert tuple(spark_session.sql(query).collect()[0]) == (1.5, 1_500_000, True)
    assert spark_session.sql(f"SELECT {SPARK.json_text('x', '$.season')} FROM "
                             "(SELECT '{\"season\": \"winter\"}' AS x) AS j").collect()[0][0] \
        == "winter"
