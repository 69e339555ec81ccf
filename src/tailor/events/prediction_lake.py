"""Export of the prediction log to the lake, beside the events, by the same rules.

Reads: the event store's `predictions` rows above the dataset's watermark
(`PredictionStore.predictions_after`, in chunks of `lake_export_chunk_rows`). Writes,
through `tailor.events.lake_files` (the same journal, names and idempotency as the events):

    <lake>/predictions/date=YYYY-MM-DD/hour=HH/part-<firstseq>-<lastseq>.parquet
    <lake>/predictions/_watermark.json

partitioned by the UTC hour of `served_at`, every file with `LAKE_PREDICTION_SCHEMA`:
`items` is a typed list of (product_id, score, reason) structs, so the warehouse can
`UNNEST` it and join the products shown with later events. With
`monitoring.prediction_retention_days` above 0, rows older than that are then deleted
from the store, but only those already in the lake. `tailor.events.lake.export_lake` runs
it after the events, under the same export lock.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from tailor.events.lake_files import (
    UTC_MICROS, Lake, read_watermark, recover_crashed_run, write_chunk,
)
from tailor.events.prediction_store import (
    PREDICTION_COLUMNS, PredictionStore, datetime_to_micros, open_prediction_store,
)

log = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"
ITEM_TYPE = pa.struct([("product_id", pa.string()), ("score", pa.float64()),
                       ("reason", pa.string())])
_TYPES: dict[str, pa.DataType] = {
    "served_at": UTC_MICROS, "items": pa.list_(ITEM_TYPE), "k": pa.int64(),
    "p_abandon": pa.float64(), "fallback": pa.bool_(), "stale": pa.bool_(),
    "personalised": pa.bool_(), "latency_ms": pa.float64(),
}
# One fixed schema for every predictions file (`seq`, then the store's columns).
LAKE_PREDICTION_SCHEMA = pa.schema(
    [("seq", pa.int64())] + [(name, _TYPES.get(name, pa.string())) for name in PREDICTION_COLUMNS])
_FLAGS = ("fallback", "stale", "personalised")  # SQLite hands back 0/1


@dataclass
class PredictionExport:
    """What one export of the prediction log did."""

    rows: int = 0
    files: int = 0
    chunks: int = 0
    watermark_before: int = 0
    watermark_after: int = 0
    recovered_files: int = 0
    deleted_from_store: int = 0  # rows past the retention, deleted once in the lake
    store_behind_lake: bool = False  # the store's newest seq is below the watermark
    written: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, without the list of files."""
        payload = asdict(self)
        del payload["written"]
        return payload


def predictions_to_table(rows: list[tuple]) -> pa.Table:
    """Rows of `predictions_after` (seq, then `PREDICTION_COLUMNS`) as an Arrow table with
    `LAKE_PREDICTION_SCHEMA`, `items` decoded from JSON."""
    columns = list(zip(*rows)) if rows else [()] * len(LAKE_PREDICTION_SCHEMA)
    arrays = []
    for schema_field, stored in zip(LAKE_PREDICTION_SCHEMA, columns):
        name = schema_field.name
        values: list[Any] = list(stored)
        if name == "served_at":
            arrays.append(pa.array(values, pa.int64()).cast(UTC_MICROS))
            continue
        if name == "items":
            values = [json.loads(text) if text else [] for text in values]
        elif name in _FLAGS:
            values = [None if value is None else bool(value) for value in values]
        arrays.append(pa.array(values, type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=LAKE_PREDICTION_SCHEMA)


def export_predictions(lake: Lake, store_url: str, chunk_rows: int, retention_days: int = 0,
                       now: datetime | None = None) -> PredictionExport:
    """Export the prediction log's rows above the lake's watermark, then apply the retention.

    Args:
        lake: the lake (the caller holds the export lock).
        store_url: the event store's URL (`database_url`), holding `predictions`.
        chunk_rows: rows per step (`lake_export_chunk_rows`).
        retention_days: delete exported rows served more than this many days before `now`
            from the store; 0 keeps them.
        now: the current time (tests pass one).

    Returns:
        A `PredictionExport`.
    """
    store = open_prediction_store(store_url)
    try:
        summary = _export(lake, store, chunk_rows)
        if retention_days > 0 and not summary.store_behind_lake:
            cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)
            summary.deleted_from_store = store.delete_exported(summary.watermark_after,
                                                               datetime_to_micros(cutoff))
    finally:
        store.close()
    log.info("lake export: %d predictions in %d files (watermark %d -> %d); %d deleted from "
             "the store past the retention", summary.rows, summary.files,
             summary.watermark_before, summary.watermark_after, summary.deleted_from_store)
    return summary


def _export(lake: Lake, store: PredictionStore, chunk_rows: int) -> PredictionExport:
    watermark = read_watermark(lake, PREDICTIONS_DIR)
    summary = PredictionExport(watermark_before=watermark.seq)
    summary.recovered_files = recover_crashed_run(lake, watermark, PREDICTIONS_DIR)
    newest = store.max_seq()
    summary.store_behind_lake = newest < watermark.seq
    if summary.store_behind_lake:  # nothing is deleted then: those rows are not in the lake
        log.warning("lake export: the store's newest prediction seq %d is below the lake "
                    "watermark %d; if the store was recreated, %s/%s must be reset", newest,
                    watermark.seq, lake.url, PREDICTIONS_DIR)
    while rows := store.predictions_after(watermark.seq, chunk_rows):
        summary.written += write_chunk(lake, watermark, predictions_to_table(rows),
                                       PREDICTIONS_DIR, "served_at")
        summary.rows += len(rows)
        summary.chunks += 1
    summary.files = len(summary.written)
    summary.watermark_after = watermark.seq
    return summary
