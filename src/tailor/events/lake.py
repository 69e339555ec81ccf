"""Hourly export of new events from the event store to the Parquet data lake.

Reads: events with `seq` above the lake's watermark (`EventStore.events_after`, in
chunks of `lake_export_chunk_rows`), the catalogue and the pseudonymous customers.
Writes, through fsspec (a local folder, `s3://bucket/prefix`, `memory://` in tests):

    <lake>/events/date=YYYY-MM-DD/hour=HH/part-<firstseq>-<lastseq>.parquet   (hive style)
    <lake>/events/_watermark.json      the highest exported seq, written after the files
    <lake>/products/products.parquet   catalogue snapshot, replaced on every run
    <lake>/customers/customers.parquet customer snapshot (never PII), replaced on every run

The job is meant to run hourly (the docker-compose scheduler calls `tailor export`);
re-running it adds nothing. Crash safety: before a chunk's files are written, their
paths are journalled in the watermark file (`pending`); the watermark only moves
after every file of the chunk exists. A run that finds a journal left by a crashed
run deletes those files first and exports the same events again, so no event ever
lands in the lake twice, even if the store has grown in between and the chunk
boundaries differ. File names come from the seq range they hold, so a re-run writes
the same names rather than new ones. A lock file in the Tailor home keeps two
exports from running at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tailor.config import Settings
from tailor.errors import InputError
from tailor.events.schema import CUSTOMER_COLUMNS, PII_COLUMNS, PRODUCT_COLUMNS
from tailor.events.store import EventStore, open_event_store

log = logging.getLogger(__name__)

EVENTS_DIR = "events"
EXPORT_LOCK_FILE = "lake-export.lock"  # in the Tailor home
WATERMARK_FILE = "_watermark.json"
PRODUCTS_FILE = "products/products.parquet"
CUSTOMERS_FILE = "customers/customers.parquet"
PARQUET_COMPRESSION = "snappy"  # the Parquet default: fast to write, read by every engine
_MICROSECONDS_PER_HOUR = 3_600_000_000

_UTC_MICROS = pa.timestamp("us", tz="UTC")
# One fixed schema for every events file, so all-null columns keep their type and
# readers (DuckDB, Spark) see identical files.
LAKE_EVENT_SCHEMA = pa.schema([
    ("seq", pa.int64()),
    ("event_id", pa.string()),
    ("customer_id", pa.string()),
    ("event_type", pa.string()),
    ("product_id", pa.string()),
    ("timestamp", _UTC_MICROS),
    ("session_id", pa.string()),
    ("price", pa.float64()),
    ("quantity", pa.float64()),
    ("order_id", pa.string()),
    ("device_type", pa.string()),
    ("query", pa.string()),
    ("properties", pa.string()),
    ("received_at", _UTC_MICROS),
])
PRODUCT_TYPES: dict[str, pa.DataType] = {
    "product_id": pa.string(), "name": pa.string(), "category": pa.string(),
    "price": pa.float64(), "rating": pa.float64(), "inventory": pa.int64(),
    "seasonal": pa.bool_(),
}
CUSTOMER_TYPES: dict[str, pa.DataType] = {
    "customer_id": pa.string(), "signup_date": _UTC_MICROS, "location": pa.string(),
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
    seconds: float = 0.0
    written: list[str] = field(default_factory=list)  # lake-relative paths of new files

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (without the list of files written)."""
        payload = asdict(self)
        del payload["written"]
        return payload


@dataclass
class Watermark:
    """Export state kept in the lake: the highest exported seq and any unfinished chunk."""

    seq: int = 0
    events_exported: int = 0
    pending: list[str] = field(default_factory=list)  # lake-relative paths being written
    updated_at: str | None = None


class Lake:
    """The lake's filesystem and root, with the few file operations the export needs."""

    def __init__(self, lake_url: str) -> None:
        self.url = lake_url
        self.fs, self.root = fsspec.core.url_to_fs(lake_url)
        self.root = self.root.rstrip("/")
        # Local renames are atomic; object stores make every put atomic already.
        self.is_local = "file" in _protocols(self.fs)

    def path(self, relative: str) -> str:
        """Absolute path on the lake's filesystem of a lake-relative path."""
        return f"{self.root}/{relative}"

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write a small file so that readers see the old or the new content, never half."""
        self._atomic(relative, lambda handle: handle.write(data))

    def write_table(self, relative: str, table: pa.Table) -> None:
        """Write a Parquet file atomically (hidden temporary name, then rename, when local)."""
        self._atomic(relative, lambda handle: pq.write_table(
            table, handle, compression=PARQUET_COMPRESSION))

    def read_bytes(self, relative: str) -> bytes | None:
        """A file's content, or None when it does not exist."""
        target = self.path(relative)
        return self.fs.cat_file(target) if self.fs.exists(target) else None

    def remove(self, relative: str) -> bool:
        """Delete a file if it exists; returns whether it did."""
        target = self.path(relative)
        if not self.fs.exists(target):
            return False
        self.fs.rm_file(target)
        return True

    def _atomic(self, relative: str, write: Callable[[BinaryIO], object]) -> None:
        """Run `write` on the file at `relative`: staged and renamed locally, direct elsewhere.

        Local writes are atomic against a process crash, not fsynced against power loss.
        """
        target = self.path(relative)
        folder, name = target.rsplit("/", 1)
        self.fs.makedirs(folder, exist_ok=True)
        staging = f"{folder}/.{name}.tmp" if self.is_local else target
        with self.fs.open(staging, "wb") as handle:
            write(handle)
        if staging != target:
            self.fs.mv(staging, target)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def read_watermark(lake: Lake) -> Watermark:
    """The lake's export state; a fresh lake starts at seq 0.

    Raises:
        InputError: the watermark file exists but is not valid JSON of the expected shape.
    """
    data = lake.read_bytes(f"{EVENTS_DIR}/{WATERMARK_FILE}")
    if data is None:
        return Watermark()
    try:
        state = json.loads(data)
        return Watermark(seq=int(state["seq"]),
                         events_exported=int(state.get("events_exported", 0)),
                         pending=list(state.get("pending", [])),
                         updated_at=state.get("updated_at"))
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{lake.path(EVENTS_DIR + '/' + WATERMARK_FILE)}: not a valid export "
                         f"watermark ({error}); fix or remove it to re-export") from None


def write_watermark(lake: Lake, watermark: Watermark) -> None:
    """Persist the export state (atomically)."""
    watermark.updated_at = datetime.now(timezone.utc).isoformat()
    lake.write_bytes(f"{EVENTS_DIR}/{WATERMARK_FILE}",
                     json.dumps(asdict(watermark), indent=2).encode("utf-8"))


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


def split_by_hour(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """Split a seq-ordered chunk into its hourly partitions.

    Args:
        table: events with `LAKE_EVENT_SCHEMA`, ordered by seq.

    Returns:
        (lake-relative file path, rows) per UTC hour present, rows still in seq order;
        the name holds the partition's first and last seq, so it is fixed by the data.
    """
    micros = pc.cast(table.column("timestamp"), pa.int64()).to_numpy()
    hours = np.floor_divide(micros, _MICROSECONDS_PER_HOUR)
    order = np.argsort(hours, kind="stable")  # stable keeps seq order inside each hour
    grouped = table.take(pa.array(order))
    sorted_hours = hours[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_hours)) + 1))
    ends = np.append(starts[1:], len(sorted_hours))
    seqs = grouped.column("seq").to_numpy()
    parts = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        relative = partition_file(int(sorted_hours[start]), int(seqs[start]), int(seqs[end - 1]))
        parts.append((relative, grouped.slice(start, end - start)))
    return parts


def partition_file(hour_number: int, first_seq: int, last_seq: int) -> str:
    """Lake-relative path of the file holding seqs first..last of one UTC hour."""
    hour_start = datetime.fromtimestamp(hour_number * 3600, tz=timezone.utc)
    return (f"{EVENTS_DIR}/date={hour_start:%Y-%m-%d}/hour={hour_start:%H}/"
            f"part-{first_seq:012d}-{last_seq:012d}.parquet")


def recover_crashed_run(lake: Lake, watermark: Watermark) -> int:
    """Delete the files a crashed run journalled but never committed; returns how many existed.

    Those files hold events above the watermark, which this run exports again.
    """
    removed = sum(lake.remove(relative) for relative in watermark.pending)
    if watermark.pending:
        log.warning("lake export: removed %d file(s) of an unfinished export above seq %d",
                    removed, watermark.seq)
        watermark.pending = []
        write_watermark(lake, watermark)
    return removed


def export_chunk(lake: Lake, watermark: Watermark, events: pd.DataFrame) -> list[str]:
    """Write one chunk's partition files and move the watermark past it.

    The order (journal, files, watermark) is what makes a crash at any point safe.

    Returns:
        Lake-relative paths of the files written.
    """
    parts = split_by_hour(events_to_table(events))
    watermark.pending = [relative for relative, _ in parts]
    write_watermark(lake, watermark)
    for relative, rows in parts:
        lake.write_table(relative, rows)
    watermark.seq = int(events["seq"].max())
    watermark.events_exported += len(events)
    watermark.pending = []
    write_watermark(lake, watermark)
    return [relative for relative, _ in parts]


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


class ExportInProgress(RuntimeError):
    """Another export holds the lock: two at once could write overlapping seq ranges."""


@contextmanager
def export_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed) for the duration of the block.

    It keeps an hourly run from overlapping a slow previous one on the same machine (the
    scheduler's). Exports from several machines into one lake need one scheduler.

    Raises:
        ExportInProgress: the lock is held by another process.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportInProgress(f"another lake export is running (lock {path}); "
                                   "try again when it has finished") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export_lake(settings: Settings, progress: bool = True) -> ExportSummary:
    """Export events stored since the last run to the lake, and snapshot products and customers.

    Meant to run hourly (the docker-compose scheduler calls `tailor export`). Incremental
    and idempotent: a second run right after the first writes no event file.

    Args:
        settings: uses `event_store_url`, `lake_root`, `lake_export_chunk_rows`, `home`
            (for the lock file).
        progress: show a rich progress bar on stderr.

    Returns:
        An `ExportSummary` (events and files written, watermark before and after).

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
