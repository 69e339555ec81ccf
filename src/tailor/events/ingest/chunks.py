"""One chunk of events checked and written: columns mapped, PII columns dropped, event-type
names read as the contract's, the contract applied, the valid rows and the dead letters
committed together.

Reads a `Chunk` from the readers; writes its valid events to `events` and its rejected rows
(with their raw text) to `rejected_events` in the event store, counting both in the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tailor.events.ingest.event_types import EventTypeNames
from tailor.events.ingest.jsonl import raw_json
from tailor.events.ingest.mapping import ColumnPlan
from tailor.events.ingest.report import Chunk, ChunkNotes, IngestReport, MalformedLine
from tailor.events.pii import pii_columns
from tailor.events.retry import RetryPolicy, insert_events_exactly, insert_rejected_once
from tailor.events.schema import MALFORMED_ROW, TimestampRules, rows_as_json, validate_events
from tailor.events.store import EventStore
from tailor.events.tombstones import TombstoneSet

log = logging.getLogger(__package__)  # one logger for the whole import, as before the split


def malformed_frame(lines: list[MalformedLine], *, withhold_raw: bool = False) -> pd.DataFrame:
    """Dead-letter rows for lines the CSV parser could not split (raw line kept verbatim).

    With `withhold_raw` (the file has PII columns, which cannot be told apart in a line
    of the wrong shape) the line is not kept, so no e-mail or name reaches the table.
    """
    return pd.DataFrame({
        "row_number": [line.row_number for line in lines],
        "reason": MALFORMED_ROW,
        "field": "row",
        "detail": [line.detail or f"row: expected {line.fields_expected} fields, found "
                   f"{line.fields_found}" for line in lines],
        "raw": [None if withhold_raw else line.text for line in lines],
    })


def drop_pii(frame: pd.DataFrame, path: "Path | str", report: IngestReport) -> pd.DataFrame:
    """The events frame without PII columns (they belong in the customers file only)."""
    found = pii_columns(frame.columns)
    if not found:
        return frame
    message = (f"{path}: dropped PII column(s) {', '.join(found)} from events "
               "(PII belongs in the customers file, which keeps it in the PII store)")
    if message not in report.warnings:
        report.warnings.append(message)
        log.warning(message)
    return frame.drop(columns=found)


def validate_chunk(chunk: Chunk, *, path: "Path | str", now: pd.Timestamp,
                   known_products: set[str] | None, max_future_seconds: int,
                   report: IngestReport, timestamps: TimestampRules | None = None,
                   column_plan: ColumnPlan | None = None,
                   event_types: EventTypeNames | None = None,
                   notes: ChunkNotes | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid rows and dead-letter rows (with file row numbers) of one chunk.

    Args:
        chunk: the rows read; path: the file (for warnings); report: collects warnings.
        now, known_products, max_future_seconds, timestamps: as for `validate_events`.
        column_plan: maps the file's columns onto the contract's (CSV and Parquet).
        event_types: reads other names of event types as the contract's.
        notes: gets the chunk's zone-less and per-form timestamp counts, the event-type
            names renamed and the calls left out (default: zone-less counts to `report`).
    """
    frame, row_numbers = chunk.frame, chunk.row_numbers
    if column_plan is not None:
        frame = column_plan.apply(frame)
    frame = drop_pii(frame, path, report)
    records = chunk.records
    parts = []
    if chunk.malformed:
        parts.append(malformed_frame(chunk.malformed, withhold_raw=report.pii_in_events))
    # CSV: a one-line field holding a line break; JSON Lines: a value no column can hold.
    fields = chunk.line_break_in if chunk.line_break_in is not None else chunk.refused_field
    if fields is not None:
        taken = fields != None  # noqa: E711 (elementwise comparison)
        if chunk.line_break_in is not None:
            parts.append(line_break_frame(frame[taken], row_numbers[taken], fields[taken]))
        else:
            parts.append(_refused_frame(chunk, records, taken, row_numbers[taken]))
        frame, row_numbers = frame[~taken].reset_index(drop=True), row_numbers[~taken]
        records = _kept(records, ~taken)
    notes = notes if notes is not None else ChunkNotes()
    if event_types is not None and "event_type" in frame.columns and len(frame):
        read = event_types.read(frame["event_type"])
        notes.event_types_renamed, notes.skipped = read.renamed, read.skipped
        frame = frame.assign(event_type=read.values)
        if read.skip.any():
            frame, row_numbers = frame[~read.skip].reset_index(drop=True), row_numbers[~read.skip]
            records = _kept(records, ~read.skip)
    result = validate_events(frame, now=now, known_products=known_products,
                             max_future_seconds=max_future_seconds, first_row_number=0,
                             timestamps=timestamps)
    notes.naive_timestamps, notes.timestamp_forms = (result.naive_timestamps,
                                                     result.timestamp_forms)
    report.naive_timestamps += result.naive_timestamps
    rejected = result.rejected
    if not rejected.empty:
        positions = rejected["row_number"].to_numpy()
        rejected = rejected.assign(row_number=row_numbers[positions])
        if records is not None:
            rejected = rejected.assign(raw=[raw_json(records[position])
                                            for position in positions])
    rejected = pd.concat([*parts, rejected], ignore_index=True) if parts else rejected
    return result.valid, rejected


def _kept(records: list[dict] | None, keep: np.ndarray) -> list[dict] | None:
    """The objects of the rows kept."""
    if records is None:
        return None
    return [record for record, kept in zip(records, keep) if kept]


def _refused_frame(chunk: Chunk, records: list[dict] | None, rows: np.ndarray,
                   row_numbers: np.ndarray) -> pd.DataFrame:
    """Dead-letter rows for JSON values no column can hold (an object where text belongs)."""
    assert chunk.refused_field is not None and chunk.refused_detail is not None
    positions = np.flatnonzero(rows)
    return pd.DataFrame({
        "row_number": row_numbers, "reason": MALFORMED_ROW,
        "field": chunk.refused_field[positions], "detail": chunk.refused_detail[positions],
        "raw": [raw_json(records[position]) if records is not None else None
                for position in positions],
    })


def line_break_frame(rows: pd.DataFrame, row_numbers: np.ndarray,
                     fields: np.ndarray) -> pd.DataFrame:
    """Dead-letter rows for one-line fields that hold a line break (likely an open quote)."""
    return pd.DataFrame({
        "row_number": row_numbers, "reason": MALFORMED_ROW, "field": fields,
        "detail": [f"{name}: contains a line break (an unterminated quote reads the lines "
                   "after it into this field)" for name in fields],
        "raw": rows_as_json(rows),
    })


def drop_forgotten(tombstones: TombstoneSet, valid: pd.DataFrame, rejected: pd.DataFrame
                   ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The chunk without the rows of forgotten customers (valid rows and dead letters alike:
    a dead letter would keep the id); returns (valid, rejected, rows dropped)."""
    if not tombstones.current():
        return valid, rejected, 0
    keep_valid = ~np.asarray(tombstones.forgotten_mask(valid["customer_id"].tolist()), bool) \
        if not valid.empty else np.ones(0, bool)
    keep_rejected = np.ones(len(rejected), bool)
    if not rejected.empty:
        from tailor.events.frames import rejected_column_lists

        keep_rejected = ~np.asarray(
            tombstones.forgotten_mask(rejected_column_lists(rejected)[5]), bool)
    dropped = int((~keep_valid).sum() + (~keep_rejected).sum())
    return valid[keep_valid], rejected[keep_rejected], dropped


def write_chunk(store: EventStore, report: IngestReport, source: str, valid: pd.DataFrame,
                rejected: pd.DataFrame, policy: RetryPolicy = RetryPolicy(),
                tombstones: TombstoneSet | None = None) -> None:
    """Store one chunk's valid rows and dead letters, then add them to the report.

    Counts reach the report only once their rows are committed. A dropped store connection
    is retried as `policy` says, exactly once per row (`tailor.events.retry`). Rows of a
    customer in `tombstones` are dropped first, counted as `forgotten`, never stored.
    """
    if tombstones is not None:
        valid, rejected, dropped = drop_forgotten(tombstones, valid, rejected)
        report.received += dropped
        report.forgotten += dropped
    what = f"rows from {report.received + 1:,} of {source}"
    inserted = insert_events_exactly(store, valid, report.batch_id, what, policy)
    insert_rejected_once(store, rejected, report.batch_id, source,
                         sum(report.rejected.values()), what, policy)
    report.received += len(valid) + len(rejected)
    report.accepted += inserted
    report.duplicates += len(valid) - inserted
    if not rejected.empty:
        report.count_rejected(rejected["reason"])
        report.add_samples(rejected)
