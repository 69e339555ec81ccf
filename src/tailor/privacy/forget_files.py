"""Files that hold a customer's rows, rewritten without them (`tailor forget`'s file steps).

Reads and writes, each file replaced atomically (a hidden temporary file renamed over it):

* the lake (through fsspec, `tailor.events.lake_files.Lake`): event partitions lose the
  customer's rows (a partition left empty is removed), prediction-log partitions keep their
  rows with `customer_id` and `session_id` cleared (as the store does), and the customers
  snapshot loses its row. Only the `customer_id` column of each partition is read to find
  the files that need a rewrite;
* any file under the home (`scrub_file`): Parquet rows and CSV rows with a cell equal to
  one of the values; JSON with list items that hold a value dropped and strings holding one
  cleared; pickled models through `tailor.models.customer_rows`; other text with every
  occurrence replaced by `[forgotten]`. A file the rules cannot clean (a binary that still
  holds a value) is reported, never silently kept.

The values are the customer id and its PII values (e-mail, name); nothing here logs them.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tailor.events.lake_files import PARQUET_COMPRESSION, Lake

FORGOTTEN_TEXT = "[forgotten]"
LAKE_EVENTS, LAKE_PREDICTIONS = "events", "predictions"
LAKE_CUSTOMERS_FILE = "customers/customers.parquet"
READ_THREADS = 2
TEXT_SUFFIXES = frozenset({".txt", ".log", ".html", ".htm", ".md", ".yaml", ".yml", ".py",
                           ".toml", ".ini", ".cfg", ".xml", ".svg", ".eml", ".out"})


@dataclass
class FileScrub:
    """What scrubbing some files did: rows or values removed per file, and files left
    holding a value (which the rules could not clean)."""

    removed: dict[str, int] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)

    def add(self, other: "FileScrub") -> None:
        self.removed.update(other.removed)
        self.left += other.left

    @property
    def total(self) -> int:
        return sum(self.removed.values())


# -- the lake ------------------------------------------------------------------------------------


def _matches(table: pa.Table, column: str, value: str) -> pa.Array:
    """Per row, whether `column` equals `value` (nulls: False)."""
    return pc.fill_null(pc.equal(table.column(column), pa.scalar(value)), False)


def _files_holding(lake: Lake, dataset: str, customer_id: str,
                   advance: Callable[[int], None]) -> list[str]:
    """Lake-relative paths of the dataset's partitions with a row of the customer."""
    paths = sorted(lake.fs.glob(f"{lake.root}/{dataset}/**/*.parquet"))

    def holds(path: str) -> bool:
        with lake.fs.open(path, "rb") as handle:
            ids = pq.read_table(handle, columns=["customer_id"])
        return bool(pc.any(_matches(ids, "customer_id", customer_id)).as_py())

    found = []
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for path, hit in zip(paths, pool.map(holds, paths)):
            advance(1)
            if hit:
                found.append(path[len(lake.root) + 1:])
    return found


def lake_partition_count(lake: Lake) -> int:
    """How many event and prediction partition files the lake holds (for progress)."""
    return sum(len(lake.fs.glob(f"{lake.root}/{dataset}/**/*.parquet"))
               for dataset in (LAKE_EVENTS, LAKE_PREDICTIONS))


def _read(lake: Lake, relative: str) -> pa.Table:
    with lake.fs.open(lake.path(relative), "rb") as handle:
        return pq.read_table(handle)


def forget_in_lake(lake: Lake, customer_id: str,
                   advance: Callable[[int], None] = lambda _n: None) -> dict[str, int]:
    """Rewrite the lake without the customer.

    Returns:
        `events` (rows removed), `event_files` (partitions rewritten or removed),
        `predictions` (rows whose ids were cleared), `customers` (snapshot rows removed).
    """
    counts = {"events": 0, "event_files": 0, "predictions": 0, "customers": 0}
    for relative in _files_holding(lake, LAKE_EVENTS, customer_id, advance):
        table = _read(lake, relative)
        hit = _matches(table, "customer_id", customer_id)
        kept = table.filter(pc.invert(hit))
        counts["events"] += table.num_rows - kept.num_rows
        counts["event_files"] += 1
        if kept.num_rows:
            lake.write_table(relative, kept)
        else:
            lake.remove(relative)
    for relative in _files_holding(lake, LAKE_PREDICTIONS, customer_id, advance):
        table = _read(lake, relative)
        hit = _matches(table, "customer_id", customer_id)
        counts["predictions"] += int(pc.sum(hit).as_py() or 0)
        for column in ("customer_id", "session_id"):
            if column in table.column_names:
                position = table.column_names.index(column)
                cleared = pc.if_else(hit, pa.scalar(None, table.schema.field(column).type),
                                     table.column(column))
                table = table.set_column(position, table.schema.field(column), cleared)
        lake.write_table(relative, table)
    snapshot = lake.path(LAKE_CUSTOMERS_FILE)
    if lake.fs.exists(snapshot):
        table = _read(lake, LAKE_CUSTOMERS_FILE)
        hit = _matches(table, "customer_id", customer_id)
        if pc.any(hit).as_py():
            kept = table.filter(pc.invert(hit))
            counts["customers"] = table.num_rows - kept.num_rows
            lake.write_table(LAKE_CUSTOMERS_FILE, kept)
    return counts


# -- any file under the home ---------------------------------------------------------------------


def _replace_atomically(path: Path, write: Callable[[Any], object], binary: bool = True) -> None:
    """Write a new version of `path` beside it and rename it over the old one (mode kept)."""
    staging = path.with_name(f".{path.name}.forget-tmp")
    out: Any = staging.open("wb") if binary else staging.open("w", encoding="utf-8",
                                                              newline="")
    with out:
        write(out)
    os.chmod(staging, path.stat().st_mode & 0o7777)
    os.replace(staging, path)


def _holds(data: bytes, values: Iterable[str]) -> bool:
    return any(value.encode("utf-8") in data for value in values)


def _scrub_parquet(path: Path, values: list[str]) -> int:
    """Drop the rows with a text cell holding one of the values (equal to it, or as a whole
    word: a case id `c42|p7` names customer c42); returns rows dropped."""
    table = pq.read_table(path)
    pattern = _pattern(values)
    hit = np.zeros(table.num_rows, dtype=bool)
    for column, kind in zip(table.columns, table.schema.types):
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue
        for value in values:
            candidates = pc.fill_null(pc.match_substring(column, value), False)
            for row in np.flatnonzero(candidates.to_numpy(zero_copy_only=False)):
                hit[row] = hit[row] or bool(pattern.search(column[int(row)].as_py()))
    removed = int(hit.sum())
    if removed:
        kept = table.filter(pa.array(~hit))
        _replace_atomically(path, lambda out: pq.write_table(
            kept, out, compression=PARQUET_COMPRESSION))
    return removed


def _scrub_csv(path: Path, values: list[str]) -> int:
    """Drop the rows with a cell equal to (or holding) one of the values."""
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    kept = [row for row in rows if not any(_text_holds(cell, values) for cell in row)]
    if len(kept) == len(rows):
        return 0
    _replace_atomically(path, lambda out: csv.writer(out).writerows(kept), binary=False)
    return len(rows) - len(kept)


def _pattern(values: list[str]) -> re.Pattern[str]:
    """Each value as a whole word (an id is not matched inside a longer id)."""
    alternatives = "|".join(re.escape(value) for value in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<![\w.@-])(?:{alternatives})(?![\w@-])")


def _text_holds(text: str, values: list[str]) -> bool:
    return bool(_pattern(values).search(text))


def _scrub_json_value(value: Any, values: list[str], pattern: re.Pattern[str]
                      ) -> tuple[Any, int]:
    """The value without list items holding a value, and strings holding one cleared."""
    if isinstance(value, str):
        cleaned, n = pattern.subn(FORGOTTEN_TEXT, value)
        return cleaned, n
    if isinstance(value, list):
        kept, removed = [], 0
        for item in value:
            if isinstance(item, (list, dict)) and _text_holds(json.dumps(item), values):
                removed += 1
                continue
            cleaned, n = _scrub_json_value(item, values, pattern)
            kept.append(cleaned)
            removed += n
        return kept, removed
    if isinstance(value, dict):
        out, removed = {}, 0
        for key, item in value.items():
            new_key, n_key = _scrub_json_value(key, values, pattern)
            cleaned, n = _scrub_json_value(item, values, pattern)
            out[new_key] = cleaned
            removed += n + n_key
        return out, removed
    return value, 0


def _scrub_json(path: Path, values: list[str]) -> int:
    document = json.loads(path.read_text(encoding="utf-8"))
    cleaned, removed = _scrub_json_value(document, values, _pattern(values))
    if removed:
        _replace_atomically(path, lambda out: out.write(json.dumps(cleaned)), binary=False)
    return removed


def _scrub_text(path: Path, values: list[str]) -> int:
    text = path.read_text(encoding="utf-8")
    cleaned, removed = _pattern(values).subn(FORGOTTEN_TEXT, text)
    if removed:
        _replace_atomically(path, lambda out: out.write(cleaned), binary=False)
    return removed


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: unpickling a model of 1M customers makes
    millions of objects, and the collector's passes over them tripled the load time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _scrub_pickle(path: Path, customer_id: str) -> int:
    """A pickled Tailor model without the customer's rows (1 when it held them)."""
    from tailor.models.customer_rows import forget_customer_rows

    with _gc_paused():
        with path.open("rb") as handle:
            model = pickle.load(handle)
        if not forget_customer_rows(model, customer_id):
            return 0
        _replace_atomically(path, lambda out: pickle.dump(model, out,
                                                          protocol=pickle.HIGHEST_PROTOCOL))
    return 1


def scrub_file(path: Path, customer_id: str, values: list[str]) -> FileScrub:
    """Clean one file of the customer (see the module docstring for the rules per kind).

    Args:
        path: the file.
        customer_id: the id (a pickled model drops its rows).
        values: every text to remove: the id and its PII values.

    Returns:
        What was removed from the file, and the file itself in `left` when it still holds
        a value afterwards.
    """
    result = FileScrub()
    data = path.read_bytes()
    is_parquet = data[:4] == b"PAR1"
    if not is_parquet and not _holds(data, values):
        return result
    suffix = path.suffix.lower()
    try:
        if is_parquet:
            removed = _scrub_parquet(path, values)
        elif suffix in (".pkl", ".pickle"):
            removed = _scrub_pickle(path, customer_id)
        elif suffix == ".csv":
            removed = _scrub_csv(path, values)
        elif suffix == ".json":
            removed = _scrub_json(path, values)
        elif suffix in TEXT_SUFFIXES or suffix == ".jsonl":
            removed = _scrub_text(path, values)
        else:
            removed = 0
    except (UnicodeDecodeError, ValueError, pickle.UnpicklingError, pa.ArrowException):
        removed = 0
    if removed:
        result.removed[str(path)] = removed
    if not is_parquet and _holds(path.read_bytes(), values):
        result.left.append(str(path))
    return result
