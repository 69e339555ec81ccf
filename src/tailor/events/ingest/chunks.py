"""One chunk of events checked and written: PII columns dropped, the contract applied, the
valid rows and the dead letters committed together.

Reads a `Chunk` from the readers; writes its valid events to `events` and its rejected rows
(with their raw text) to `rejected_events` in the event store, counting both in the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tailor.events.ingest.report import Chunk, IngestReport, MalformedLine
from tailor.events.pii import pii_columns
from tailor.events.retry import RetryPolicy, insert_events_exactly, insert_rejected_once
from tailor.events.schema import MALFORMED_ROW, TimestampRules, rows_as_json, validate_events
from tailor.events.store import EventStore

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
        "detail": [f"row: expected {line.fields_expected} fields, found {line.fields_found}"
                   for line in lines],
        "raw": [None if withhold_raw else line.text for line in lines],
    })


def drop_pii(frame: pd.DataFrame, path: Path, report: IngestReport) -> pd.DataFrame:
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


def validate_chunk(chunk: Chunk, *, path: Path, now: pd.Timestamp,
                   known_products: set[str] | None, max_future_seconds: int,
                   report: IngestReport, timestamps: TimestampRules | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid rows and dead-letter rows (with file row numbers) of one chunk; adds the
    chunk's zone-less timestamps to `report.naive_timestamps`."""
    frame, row_numbers = drop_pii(chunk.frame, path, report), chunk.row_numbers
    parts = []
    if chunk.malformed:
        parts.append(malformed_frame(chunk.malformed, withhold_raw=report.pii_in_events))
    if chunk.line_break_in is not None:
        broken = chunk.line_break_in != None  # noqa: E711 (elementwise comparison)
        parts.append(line_break_frame(frame[broken], row_numbers[broken],
                                      chunk.line_break_in[broken]))
        frame, row_numbers = frame[~broken].reset_index(drop=True), row_numbers[~broken]
    result = validate_events(frame, now=now, known_products=known_products,
                             max_future_seconds=max_future_seconds, first_row_number=0,
                             timestamps=timestamps)
    report.naive_timestamps += result.naive_timestamps
    rejected = result.rejected
    if not rejected.empty:
        rejected = rejected.assign(row_number=row_numbers[rejected["row_number"].to_numpy()])
    rejected = pd.concat([*parts, rejected], ignore_index=True) if parts else rejected
    return result.valid, rejected


def line_break_frame(rows: pd.DataFrame, row_numbers: np.ndarray,
                     fields: np.ndarray) -> pd.DataFrame:
    """Dead-letter rows for one-line fields that hold a line break (likely an open quote)."""
    return pd.DataFrame({
        "row_number": row_numbers, "reason": MALFORMED_ROW, "field": fields,
        "detail": [f"{name}: contains a line break (an unterminated quote reads the lines "
                   "after it into this field)" for name in fields],
        "raw": rows_as_json(rows),
    })


def write_chunk(store: EventStore, report: IngestReport, source: str, valid: pd.DataFrame,
                rejected: pd.DataFrame, policy: RetryPolicy = RetryPolicy()) -> None:
    """Store one chunk's valid rows and dead letters, then add them to the report.

    Counts reach the report only once their rows are committed. A dropped store connection
    is retried as `policy` says, exactly once per row (`tailor.events.retry`).
    """
    what = f"rows from {report.received + 1:,} of {source}"
    inserted = insert_events_exactly(store, valid, report.batch_id, what, policy)
    insert_rejected_once(store, rejected, report.batch_id, source,
                         sum(report.rejected.values()), what, policy)
    report.received += len(valid) + len(rejected)
    report.accepted += inserted
    report.duplicates += len(valid) - inserted
    if not rejected.empty:
        report.count_rejected(rejected["reason"])
