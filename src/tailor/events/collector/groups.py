"""A group of batches checked against the data contract together and committed in one
transaction.

Reads the group's submissions; writes the valid events to the event store
(`commit_events`). `validate_group` runs plain valid events through the Python check
(`validate_records`) and the rest through the vectorised `validate_events`, and returns
each batch's rejections and the dead-letter rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from tailor.events.collector.batches import BatchResult, Submission, flatten_group
from tailor.events.collector.enrichment import enrich_rows
from tailor.events.frames import utc_now
from tailor.events.records import validate_records
from tailor.events.schema import (
    EVENT_COLUMNS,
    MALFORMED_ROW,
    TimestampRules,
    ValidationResult,
    validate_events,
)
from tailor.events.store import EventStore

log = logging.getLogger(__package__)  # one logger for the whole collector, as before the split


@dataclass
class CheckedGroup:
    """A group of batches after the contract check.

    `valid` holds the valid events of every batch (in batch order), `valid_owner` the
    batch number of each; `results` lists each batch's rejections; `dead_letter` holds
    every rejected event for the dead-letter table.
    """

    valid: pd.DataFrame
    valid_owner: np.ndarray
    results: list[BatchResult]
    dead_letter: pd.DataFrame


def validate_group(group: Sequence[Submission], *, max_future_seconds: int,
                   timestamps: TimestampRules | None = None) -> CheckedGroup:
    """Check a group of batches against the data contract in one pass.

    Args:
        group: submissions whose events are raw JSON values.
        max_future_seconds: tolerated lead of a timestamp over the receive time.
        timestamps: plausibility window and naive zone (`events.*` settings).

    Returns:
        The `CheckedGroup`; accepted and duplicate counts are filled in after the commit.
    """
    flat = flatten_group(group)
    owner = np.array(flat.owner, dtype="int64")
    index = np.array(flat.index, dtype="int64")
    rejected_rows = list(flat.rejected)
    now = utc_now()

    def check_frame(frame: pd.DataFrame) -> ValidationResult:
        return validate_isolating(frame, now=now, max_future_seconds=max_future_seconds,
                                  timestamps=timestamps)

    zone = (timestamps or TimestampRules()).naive_timezone
    checked = validate_records(enrich_rows(flat.rows, group, flat.owner, zone), now=now,
                               max_future_seconds=max_future_seconds, check_frame=check_frame,
                               timestamps=timestamps)
    refused = checked.rejected["row_number"].to_numpy(dtype="int64")
    for row, reason, where, detail in zip(refused, checked.rejected["reason"],
                                          checked.rejected["field"], checked.rejected["detail"]):
        rejected_rows.append({"owner": int(owner[row]), "index": int(index[row]),
                              "reason": reason, "field": where, "detail": detail,
                              "event": flat.rows[row]})
    kept = np.setdiff1d(np.arange(len(flat.rows)), refused)
    return CheckedGroup(checked.valid, owner[kept], _results_with_rejections(group, rejected_rows),
                        _dead_letter_frame(rejected_rows))


def validate_isolating(frame: pd.DataFrame, *, now: pd.Timestamp, max_future_seconds: int,
                       first_row: int = 0, timestamps: TimestampRules | None = None
                       ) -> ValidationResult:
    """`validate_events`, but an unexpected error inside the check costs only the rows causing it.

    The check is meant never to raise on bad rows; should some odd value still make it
    raise, the rows are halved until the culprits are alone, and those are rejected as
    malformed. Without this, one hostile event would fail every batch validated with it.
    """
    try:
        return validate_events(frame, now=now, max_future_seconds=max_future_seconds,
                               first_row_number=first_row, timestamps=timestamps)
    except Exception as error:
        if len(frame) > 1:
            half = len(frame) // 2
            parts = [validate_isolating(frame.iloc[:half], now=now, first_row=first_row,
                                        max_future_seconds=max_future_seconds,
                                        timestamps=timestamps),
                     validate_isolating(frame.iloc[half:], now=now, first_row=first_row + half,
                                        max_future_seconds=max_future_seconds,
                                        timestamps=timestamps)]
            valid = [part.valid for part in parts if len(part.valid)]
            return ValidationResult(
                valid=pd.concat(valid, ignore_index=True) if valid else parts[0].valid,
                rejected=pd.concat([part.rejected for part in parts], ignore_index=True))
        log.warning("collector: the contract check raised %s on one event; rejecting it",
                    type(error).__name__)
        return ValidationResult(
            valid=pd.DataFrame(columns=list(EVENT_COLUMNS)),
            rejected=pd.DataFrame({"row_number": [first_row], "reason": [MALFORMED_ROW],
                                   "field": ["event"], "raw": [""], "detail": [
                                       f"event: could not be checked ({type(error).__name__}: "
                                       f"{str(error)[:80]})"]}))


def commit_events(store: EventStore, valid: pd.DataFrame, owner: np.ndarray, n_batches: int,
                  batch_id: str) -> np.ndarray:
    """Store the valid events of a group in one commit; returns how many were new per batch.

    The store only says how many rows were new in all. When that is fewer than sent
    (a retry, usually), the new rows are read back: they are the ones above the `seq`
    watermark taken before the insert. An event id sent twice in one group counts as
    new for the first batch that sent it.
    """
    if valid.empty:
        return np.zeros(n_batches, dtype="int64")
    watermark = store.max_seq()
    new = store.insert_events(valid, batch_id)
    if new == len(valid):
        return np.bincount(owner, minlength=n_batches)
    ours, seq = set(valid["event_id"]), watermark
    fresh: set[str] = set()
    while len(fresh) < new:
        page = store.events_after(seq, 10_000)
        if page.empty:
            break
        fresh |= ours.intersection(page["event_id"])
        seq = int(page["seq"].max())
    is_new = valid["event_id"].isin(fresh).to_numpy() & ~valid["event_id"].duplicated().to_numpy()
    return np.bincount(owner[is_new], minlength=n_batches)


def _results_with_rejections(group: Sequence[Submission],
                             rejected_rows: Iterable[dict[str, Any]]) -> list[BatchResult]:
    """One result per submission, listing its rejected events in batch order."""
    results = [BatchResult() for _ in group]
    for item in sorted(rejected_rows, key=lambda item: (item["owner"], item["index"])):
        results[item["owner"]].rejected.append(
            {"index": item["index"], "reason": item["reason"], "field": item["field"],
             "detail": item["detail"]})
    return results


def _dead_letter_frame(rejected_rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rejected events as dead-letter rows; `raw` is the event exactly as the client sent it."""
    return pd.DataFrame({
        "row_number": [item["index"] for item in rejected_rows],
        "reason": [item["reason"] for item in rejected_rows],
        "field": [item["field"] for item in rejected_rows],
        "detail": [item["detail"] for item in rejected_rows],
        "raw": [json.dumps(item["event"], default=str) for item in rejected_rows],
    })
