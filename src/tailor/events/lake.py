"""Hourly export of new events from the event store to the Parquet data lake.

Reads: events with `seq` above the lake's watermark (`EventStore.events_after`, in
chunks of `lake_export_chunk_rows`), the catalogue and the pseudonymous customers.
Writes, through fsspec (a local folder, `s3://bucket/prefix`, `memory://` in tests):

    <lake>/events/date=YYYY-MM-DD/hour=HH/part-<firstseq>-<lastseq>.parquet   (hive style)
    <lake>/events/_watermark.json      the highest exported seq, written after the files
    <lake>/products/products.parquet   catalogue snapshot, replaced on every run
    <lake>/customers/customers.parquet customer snapshot (never PII), replaced on every run
    <lake>/predictions/...             the prediction log, the same way by its own seq and
                                       served_at hour (`tailor.events.prediction_lake`)

The job is meant to run hourly (the docker-compose scheduler calls `tailor export`);
re-running it adds nothing. Crash safety (`tailor.events.lake_files`, shared with the
prediction log's export): before a chunk's files are written, their paths are journalled in
the watermark file (`pending`); the watermark only moves after every file of the chunk
exists. A run that finds a journal left by a crashed run deletes those files first and
exports the same events again, so no event ever lands in the lake twice, even if the store
has grown in between and the chunk boundaries differ. File names come from the seq range
they hold, so a re-run writes the same names rather than new ones. A lock file in the
Tailor home keeps two exports from running at once.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import pandas as pd
import pyarrow as pa

from tailor.config import Settings
from tailor.events.lake_files import (  # noqa: F401  (names the events export shares, re-exported)
    EVENTS_DIR,
    PARQUET_COMPRESSION,
    UTC_MICROS,
    WATERMARK_FILE,
    ExportInProgress,
    Lake,
    Watermark,
    export_lock,
    partition_file,
    read_watermark,
    recover_crashed_run,
    split_by_hour,
    write_chunk,
    write_watermark,
)
from tailor.events.prediction_lake import export_predictions
from tailor.events.schema import CUSTOMER_COLUMNS, PII_COLUMNS, PRODUCT_COLUMNS
from tailor.events.store import EventStore, open_event_store

log = logging.getLogger(__name__)

EXPORT_LOCK_FILE = "lake-export.lock"  # in the Tailor home
PRODUCTS_FILE = "products/products.parquet"
CUSTOMERS_FILE = "customers/customers.parquet"

# One fixed schema for every events file, so all-null columns keep their type and
# readers (DuckDB, Spark) see identical files.
LAKE_EVENT_SCHEMA = pa.schema([
    ("seq", pa.int64()),
    ("event_id", pa.string()),
    ("customer_id", pa.string()),
    ("event_type", pa.string()),
    ("product_id", pa.string()),
    ("timestamp", UTC_MICROS),
    ("session_id", pa.string()),
    ("price", pa.float64()),
    ("quantity", pa.float64()),
    ("order_id", pa.string()),
    ("device_type", pa.string()),
    ("query", pa.string()),
    ("properties", pa.string()),
    ("received_at", UTC_MICROS),
])
PRODUCT_TYPES: dict[str, pa.DataType] = {
    "product_id": pa.string(), "name": pa.string(), "category": pa.string(),
    "price": pa.float64(), "rating": pa.float64(), "inventory": pa.int64(),
    "seasonal": pa.bool_(),
}
CUSTOMER_TYPES: dict[str, pa.DataType] = {
    "customer_id": pa.string(), "signup_date": UTC_MICROS, "location": pa.string(),
    "device_type": pa.string(),
}


@dataclass
class ExportSummary:
    """What one export run did."""

    lake_root: str
    events: int = 0
    files: int = 0
    chunks: int = 0
    watermark_before: int = 0
    watermark_after: int = 0
    recovered_files: int = 0  # files of a crashed run removed before exporting again
    products: int = 0
    customers: int = 0
    predictions: int = 0  # prediction log rows exported (`tailor.events.prediction_lake`)
    prediction_files: int = 0
    predictions_deleted: int = 0  # exported rows deleted from the store past the retention
    seconds: float = 0.0
    written: list[str] = field(default_factory=list)  # lake-relative paths of new event files

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (without the list of files written)."""
        payload = asdict(self)
        del payload["written"]
        return payload


def events_to_table(events: pd.DataFrame) -> pa.Table:
    """A chunk from `events_after` as an Arrow table with `LAKE_EVENT_SCHEMA`, in seq order.

    Raises:
        ValueError: a stored event has no timestamp (it could not be partitioned).
    """
    # Column by column: a reindexed copy of the frame would cost more than the conversion.
    arrays = [pa.array(events[field.name], type=field.type, from_pandas=True, safe=False)
              if field.name in events.columns else pa.nulls(len(events), field.type)
              for field in LAKE_EVENT_SCHEMA]
    table = pa.Table.from_arrays(arrays, schema=LAKE_EVENT_SCHEMA)
    if table.column("timestamp").null_count:
        raise ValueError("events: a stored event has no timestamp; the lake partitions by it")
    return table


def export_chunk(lake: Lake, watermark: Watermark, events: pd.DataFrame) -> list[str]:
    """Write one chunk of events' partition files and move the watermark past it.

    Returns:
        Lake-relative paths of the files written.
    """
    return write_chunk(lake, watermark, events_to_table(events))


def _typed_snapshot(frame: pd.DataFrame, contract: tuple[str, ...],
                    types: dict[str, pa.DataType]) -> pa.Table:
    """Contract columns first with fixed types, extra columns after (text when ambiguous)."""
    extras = [column for column in frame.columns if column not in contract]
    frame = frame.reindex(columns=[*contract, *extras])
    arrays = []
    for column in frame.columns:
        values = frame[column]
        wanted = types.get(column)
        if wanted is None:
            try:
                array = pa.array(values, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them as text
                array = _coerce_array(values, pa.string())
        else:
            array = _coerce_array(values, wanted)
        arrays.append(array.cast(pa.string()) if pa.types.is_null(array.type) else array)
    return pa.Table.from_arrays(arrays, names=[str(column) for column in frame.columns])


def _coerce_array(values: pd.Series, wanted: pa.DataType) -> pa.Array:
    """Values converted to one Arrow type; what does not convert becomes null."""
    if pa.types.is_timestamp(wanted):
        return pa.array(pd.to_datetime(values, utc=True, errors="coerce"), type=wanted,
                        from_pandas=True)
    if pa.types.is_floating(wanted) or pa.types.is_integer(wanted):
        numbers = pa.array(pd.to_numeric(values, errors="coerce").astype("float64"),
                           from_pandas=True)
        return numbers.cast(wanted, safe=False)  # whole counts stored as REAL become ints
    if pa.types.is_boolean(wanted):
        words = {"true": True, "1": True, "1.0": True, "yes": True,
                 "false": False, "0": False, "0.0": False, "no": False}
        flags = [None if pd.isna(value) else words.get(str(value).strip().lower())
                 for value in values.astype(object).tolist()]
        return pa.array(flags, type=wanted)
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)  # already text or null
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = values.astype(object).map(lambda v: None if pd.isna(v) else str(v))
        return pa.array(text, type=pa.string())


def snapshot_dimensions(lake: Lake, store: EventStore) -> tuple[int, int]:
    """Replace the products and customers snapshots; PII columns are dropped defensively.

    Returns:
        (products written, customers written).
    """
    products = store.products()
    customers = store.customers()
    customers = customers.drop(columns=[c for c in customers.columns if c.lower() in PII_COLUMNS])
    lake.write_table(PRODUCTS_FILE, _typed_snapshot(products, PRODUCT_COLUMNS, PRODUCT_TYPES))
    lake.write_table(CUSTOMERS_FILE, _typed_snapshot(customers, CUSTOMER_COLUMNS, CUSTOMER_TYPES))
    return len(products), len(customers)


def export_lake(settings: Settings, progress: bool = True) -> ExportSummary:
    """Export events and predictions stored since the last run to the lake, and snapshot
    products and customers.

    Meant to run hourly (the docker-compose scheduler calls `tailor export`). Incremental
    and idempotent: a second run right after the first writes no event or prediction file.

    Args:
        settings: uses `event_store_url`, `lake_root`, `lake_export_chunk_rows`, `home`
            (for the lock file), `monitoring_prediction_retention_days`.
        progress: show a rich progress bar on stderr.

    Returns:
        An `ExportSummary` (events and files written, watermark before and after, the
        prediction log's rows and files, rows deleted past its retention).

    Raises:
        ExportInProgress: another export from this home is still running.
    """
    started = time.perf_counter()
    lake = Lake(settings.lake_root)
    with export_lock(settings.home_path / EXPORT_LOCK_FILE):
        store = open_event_store(settings.event_store_url)
        try:
            summary = _export_events(lake, store, settings.lake_export_chunk_rows, progress)
            summary.products, summary.customers = snapshot_dimensions(lake, store)
        finally:
            store.close()
        predictions = export_predictions(lake, settings.event_store_url,
                                         settings.lake_export_chunk_rows,
                                         settings.monitoring_prediction_retention_days)
    summary.predictions, summary.prediction_files = predictions.rows, predictions.files
    summary.predictions_deleted = predictions.deleted_from_store
    summary.seconds = round(time.perf_counter() - started, 3)
    log.info("lake export: %d events in %d files to %s (watermark %d -> %d)", summary.events,
             summary.files, summary.lake_root, summary.watermark_before, summary.watermark_after)
    return summary


def _export_events(lake: Lake, store: EventStore, chunk_rows: int, progress: bool) -> ExportSummary:
    """Loop over chunks above the watermark until the store has none left.

    At most two chunks are in memory at once: the one being written and the next one.
    """
    watermark = read_watermark(lake)
    summary = ExportSummary(lake_root=lake.url, watermark_before=watermark.seq)
    summary.recovered_files = recover_crashed_run(lake, watermark)
    newest = store.max_seq()
    if newest < watermark.seq:
        log.warning("lake export: store's newest seq %d is below the lake watermark %d; if the "
                    "store was recreated, the lake at %s must be reset", newest, watermark.seq,
                    lake.url)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-export-read") as reader, \
            _progress_bar(progress, max(newest - watermark.seq, 0)) as advance:
        next_chunk = reader.submit(store.events_after, watermark.seq, chunk_rows)
        while not (events := next_chunk.result()).empty:
            # Read the next chunk while this one is written: reading rows is Python-bound,
            # writing Parquet mostly is not, so the two overlap on separate cores.
            next_chunk = reader.submit(store.events_after, int(events["seq"].max()), chunk_rows)
            before = watermark.seq
            summary.written += export_chunk(lake, watermark, events)
            summary.events += len(events)
            summary.chunks += 1
            advance(watermark.seq - before)  # progress in seq, which may have gaps
    summary.files = len(summary.written)
    summary.watermark_after = watermark.seq
    return summary


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (or nothing); yields a function that advances it."""
    if not enabled:
        yield lambda _count: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True)) as bar:
        task = bar.add_task("exporting events to the lake", total=total or None)
        yield lambda count: bar.advance(task, count)
