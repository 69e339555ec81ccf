"""The lake's files: its filesystem, the export watermarks, hourly partitions and the lock.

Reads and writes, through fsspec (a local folder, `s3://bucket/prefix`, `memory://` in
tests), the files of one dataset folder of the lake (`events`, `predictions`):

    <lake>/<dataset>/date=YYYY-MM-DD/hour=HH/part-<firstseq>-<lastseq>.parquet   (hive style)
    <lake>/<dataset>/_watermark.json   the highest exported seq, written after the files

and the export lock file in the Tailor home. The exports built on it
(`tailor.events.lake` for events, `tailor.events.prediction_lake` for the prediction log)
share its crash safety: before a chunk's files are written their paths are journalled in
the watermark (`pending`), and the watermark moves only once every file exists; a run that
finds a journal deletes those files and exports the same rows again. File names come from
the seq range they hold, so a re-run writes the same names rather than new ones.
"""

from __future__ import annotations

import fcntl
import json
import logging
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tailor.errors import InputError

log = logging.getLogger(__name__)

EVENTS_DIR = "events"  # the dataset the functions below default to
WATERMARK_FILE = "_watermark.json"
PARQUET_COMPRESSION = "snappy"  # the Parquet default: fast to write, read by every engine
UTC_MICROS = pa.timestamp("us", tz="UTC")
_MICROSECONDS_PER_HOUR = 3_600_000_000


@dataclass
class Watermark:
    """Export state kept in the lake: the highest exported seq and any unfinished chunk."""

    seq: int = 0
    events_exported: int = 0  # rows exported (answers, in the predictions dataset)
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


def read_watermark(lake: Lake, dataset: str = EVENTS_DIR) -> Watermark:
    """The export state of a dataset of the lake (`events`, `predictions`); a fresh lake
    starts at seq 0.

    Raises:
        InputError: the watermark file exists but is not valid JSON of the expected shape.
    """
    data = lake.read_bytes(f"{dataset}/{WATERMARK_FILE}")
    if data is None:
        return Watermark()
    try:
        state = json.loads(data)
        return Watermark(seq=int(state["seq"]),
                         events_exported=int(state.get("events_exported", 0)),
                         pending=list(state.get("pending", [])),
                         updated_at=state.get("updated_at"))
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{lake.path(dataset + '/' + WATERMARK_FILE)}: not a valid export "
                         f"watermark ({error}); fix or remove it to re-export") from None


def write_watermark(lake: Lake, watermark: Watermark, dataset: str = EVENTS_DIR) -> None:
    """Persist a dataset's export state (atomically)."""
    watermark.updated_at = datetime.now(timezone.utc).isoformat()
    lake.write_bytes(f"{dataset}/{WATERMARK_FILE}",
                     json.dumps(asdict(watermark), indent=2).encode("utf-8"))


def split_by_hour(table: pa.Table, dataset: str = EVENTS_DIR,
                  time_column: str = "timestamp") -> list[tuple[str, pa.Table]]:
    """Split a seq-ordered chunk into its hourly partitions.

    Args:
        table: rows with a `seq` column and a UTC microsecond `time_column` (events with
            `LAKE_EVENT_SCHEMA`), ordered by seq.
        dataset: the lake folder the files belong in.
        time_column: the time that picks each row's hour.

    Returns:
        (lake-relative file path, rows) per UTC hour present, rows still in seq order;
        the name holds the partition's first and last seq, so it is fixed by the data.
    """
    micros = pc.cast(table.column(time_column), pa.int64()).to_numpy()
    hours = np.floor_divide(micros, _MICROSECONDS_PER_HOUR)
    order = np.argsort(hours, kind="stable")  # stable keeps seq order inside each hour
    grouped = table.take(pa.array(order))
    sorted_hours = hours[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_hours)) + 1))
    ends = np.append(starts[1:], len(sorted_hours))
    seqs = grouped.column("seq").to_numpy()
    parts = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        relative = partition_file(int(sorted_hours[start]), int(seqs[start]), int(seqs[end - 1]),
                                  dataset)
        parts.append((relative, grouped.slice(start, end - start)))
    return parts


def partition_file(hour_number: int, first_seq: int, last_seq: int,
                   dataset: str = EVENTS_DIR) -> str:
    """Lake-relative path of the file holding seqs first..last of one UTC hour."""
    hour_start = datetime.fromtimestamp(hour_number * 3600, tz=timezone.utc)
    return (f"{dataset}/date={hour_start:%Y-%m-%d}/hour={hour_start:%H}/"
            f"part-{first_seq:012d}-{last_seq:012d}.parquet")


def recover_crashed_run(lake: Lake, watermark: Watermark, dataset: str = EVENTS_DIR) -> int:
    """Delete the files a crashed run journalled but never committed; returns how many existed.

    Those files hold rows above the watermark, which this run exports again.
    """
    removed = sum(lake.remove(relative) for relative in watermark.pending)
    if watermark.pending:
        log.warning("lake export: removed %d file(s) of an unfinished %s export above seq %d",
                    removed, dataset, watermark.seq)
        watermark.pending = []
        write_watermark(lake, watermark, dataset)
    return removed


def write_chunk(lake: Lake, watermark: Watermark, table: pa.Table, dataset: str = EVENTS_DIR,
                time_column: str = "timestamp") -> list[str]:
    """Write one seq-ordered chunk's hourly partition files and move the watermark past it.

    The order (journal, files, watermark) is what makes a crash at any point safe.

    Returns:
        Lake-relative paths of the files written.
    """
    parts = split_by_hour(table, dataset, time_column)
    watermark.pending = [relative for relative, _ in parts]
    write_watermark(lake, watermark, dataset)
    for relative, rows in parts:
        lake.write_table(relative, rows)
    watermark.seq = int(pc.max(table.column("seq")).as_py())
    watermark.events_exported += table.num_rows
    watermark.pending = []
    write_watermark(lake, watermark, dataset)
    return [relative for relative, _ in parts]


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
