"""The prediction log in the lake: exported by `tailor export` beside the events, by the same
rules (incremental, idempotent, a crashed run repaired), past the retention deleted from
the store once in the lake, and read by the warehouse's `predictions` view."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tailor.config import Settings, load_settings
from tailor.events import lake_files as lake_files_module
from tailor.events.lake import export_lake
from tailor.events.lake_files import Lake, read_watermark
from tailor.events.prediction_lake import LAKE_PREDICTION_SCHEMA, PREDICTIONS_DIR
from tailor.events.prediction_store import (
    PREDICTION_COLUMNS, datetime_to_micros, open_prediction_store,
)
from tailor.warehouse import query_warehouse, refresh_warehouse

T0 = dt.datetime(2026, 3, 1, 22, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return load_settings(home=tailor_home, env={})


def answers(settings: Settings, numbers: range, start: dt.datetime = T0) -> None:
    """Homepage answers r<n>, 20 minutes apart from `start` (from T0 they cross hours and a
    day)."""
    rows = []
    for number in numbers:
        values = {
            "served_at": datetime_to_micros(start + dt.timedelta(minutes=20 * number)),
            "request_id": f"r{number}", "customer_id": f"c{number % 3}", "session_id": None,
            "endpoint": "homepage", "model": "homepage", "model_version": "2",
            "variant": "champion",
            "items": json.dumps([{"product_id": f"p{number}", "score": 1.5, "reason": "x"},
                                 {"product_id": "p0", "score": 1.0, "reason": "y"}]),
            "k": 2, "p_abandon": None, "offer": None, "fallback": number % 2 == 1,
            "fallback_reason": "timeout" if number % 2 else None, "stale": False,
            "personalised": number % 2 == 0, "anchor_product_id": None, "experiment": None,
            "experiment_variant": None, "latency_ms": 3.25,
            "fallback_kind": "timeout" if number % 2 else None}
        rows.append(tuple(values[name] for name in PREDICTION_COLUMNS))
    store = open_prediction_store(settings.event_store_url)
    try:
        store.insert_predictions(rows)
    finally:
        store.close()


def lake_predictions(settings: Settings) -> list[str]:
    table = pq.read_table(Path(settings.lake_root) / PREDICTIONS_DIR)
    return sorted(table.column("request_id").to_pylist())


def stored_ids(settings: Settings) -> list[str]:
    store = open_prediction_store(settings.event_store_url)
    try:
        return [row[2] for row in store.predictions_after(0, 1_000)]
    finally:
        store.close()


def test_export_partitions_by_served_hour_and_reruns_add_nothing(settings: Settings) -> None:
    answers(settings, range(6))  # 22:30 .. 00:10: three hours over two days
    first = export_lake(settings, progress=False)
    again = export_lake(settings, progress=False)

    assert (first.predictions, first.prediction_files) == (6, 3)
    assert (again.predictions, again.prediction_files) == (0, 0)
    files = sorted(str(path.relative_to(Path(settings.lake_root)))
                   for path in Path(settings.lake_root).glob("predictions/**/*.parquet"))
    assert files == ["predictions/date=2026-03-01/hour=22/part-000000000001-000000000002.parquet",
                     "predictions/date=2026-03-01/hour=23/part-000000000003-000000000005.parquet",
                     "predictions/date=2026-03-02/hour=00/part-000000000006-000000000006.parquet"]
    assert pq.read_schema(Path(settings.lake_root) / files[0]).remove_metadata() == \
        LAKE_PREDICTION_SCHEMA
    assert read_watermark(Lake(settings.lake_root), PREDICTIONS_DIR).seq == 6
    answers(settings, range(6, 8))
    assert export_lake(settings, progress=False).predictions == 2
    assert lake_predictions(settings) == sorted(f"r{number}" for number in range(8))


def test_a_crashed_export_is_repaired_without_duplicates(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    answers(settings, range(3))
    real_write_watermark = lake_files_module.write_watermark

    def crash_on_commit(lake: Lake, watermark, dataset: str = "events") -> None:
        if dataset == PREDICTIONS_DIR and not watermark.pending and watermark.seq > 0:
            raise KeyboardInterrupt("simulated crash")  # the files are written, not committed
        real_write_watermark(lake, watermark, dataset)

    monkeypatch.setattr(lake_files_module, "write_watermark", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        export_lake(settings, progress=False)
    monkeypatch.undo()
    assert read_watermark(Lake(settings.lake_root), PREDICTIONS_DIR).seq == 0
    answers(settings, range(3, 5))  # more arrive before the re-run
    rerun = export_lake(settings, progress=False)
    assert rerun.predictions == 5
    assert lake_predictions(settings) == [f"r{number}" for number in range(5)]


def test_retention_deletes_only_exported_rows_older_than_the_window(settings: Settings) -> None:
    old_settings = settings.replace(monitoring_prediction_retention_days=1)
    answers(settings, range(3))  # served on 2026-03-01/02, long before today
    export_lake(old_settings, progress=False)  # exported, then deleted past one day
    assert stored_ids(settings) == []
    answers(settings, range(3, 4), start=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    summary = export_lake(old_settings, progress=False)
    assert (summary.predictions, summary.predictions_deleted) == (1, 0)
    assert stored_ids(settings) == ["r3"]  # exported but within the retention: kept
    assert lake_predictions(settings) == ["r0", "r1", "r2", "r3"]


def test_without_retention_the_store_keeps_every_row(settings: Settings) -> None:
    answers(settings, range(2))
    assert export_lake(settings, progress=False).predictions_deleted == 0
    assert stored_ids(settings) == ["r0", "r1"]


def test_the_warehouse_view_unnests_the_items_shown(settings: Settings) -> None:
    assert refresh_warehouse(settings)["predictions"] == 0  # typed and empty before an export
    answers(settings, range(4))
    export_lake(settings, progress=False)
    assert refresh_warehouse(settings)["predictions"] == 4
    shown = query_warehouse(settings, """
        SELECT request_id, served_date, served_hour, fallback, personalised,
               item.product_id, item.score, position
        FROM predictions, UNNEST(items) WITH ORDINALITY AS shown(item, position)
        WHERE request_id = 'r1' ORDER BY position""")
    assert shown["product_id"].tolist() == ["p1", "p0"]
    assert shown["score"].tolist() == [1.5, 1.0] and shown["position"].tolist() == [1, 2]
    assert pd.Timestamp(shown["served_date"][0]).date() == dt.date(2026, 3, 1)
    assert (shown["served_hour"][0], shown["fallback"][0], shown["personalised"][0]) == \
        (22, True, False)
