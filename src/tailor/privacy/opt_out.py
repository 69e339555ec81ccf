"""Opt-out and opt-in: the one list that `tailor opt-out`, the collector's admin routes and the
tracker's browser call all change.

Reads and writes the exclusion list `<home>/privacy/excluded_customers.csv`
(`tailor.privacy.excluded_customers`: training, serving, campaigns and the collector read
it) under the lock file `<home>/privacy/excluded_customers.lock`, which every writer of the
list holds. Appends one line per call to the audit log (`tailor.privacy.opt_out_audit`,
hashed ids only, never a name or an e-mail).

Changes are idempotent: opting out an opted-out customer changes nothing (and says so);
opt-in removes the customer's `opted_out` rows and never a `deleted` one (a forgotten
customer stays forgotten). An id `tailor forget` tombstoned (`<home>/privacy/tombstones.csv`,
`tailor.events.tombstones`) is `deleted`: neither call writes it to the list. An opt-out
appends one row; an opt-in rewrites the list atomically (a temporary file renamed over it,
`tailor.privacy.excluded_customers.rewrite_rows`). Either moves the file's modification time
forward, so every process watching it (serving's `ExclusionList`, the collector's
`OptOutList`) sees the change on its next look.
"""

from __future__ import annotations

import csv
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from tailor.config import Settings
from tailor.errors import InputError
from tailor.events.tombstones import TombstoneSet, checked_customer_id
from tailor.privacy.excluded_customers import (
    LOCK_FILE,
    csv_lines,
    ensure_exclusions_file,
    exclusions_path,
    rewrite_rows,
    writers_lock,
)
from tailor.privacy.opt_out_audit import record_change

OPTED_OUT, DELETED = "opted_out", "deleted"
SOURCES: frozenset[str] = frozenset({"cli", "api", "browser"})


@dataclass(frozen=True)
class OptOutChange:
    """What one opt-out or opt-in did.

    `status` is the customer's state afterwards: `opted_out`, `opted_in` (not excluded) or
    `deleted` (forgotten: opt-in cannot bring them back); `changed` is False when the list
    already said so.
    """

    customer_id: str
    action: str  # opt_out or opt_in
    status: str
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def opt_out(settings: Settings, customer_id: str, source: str = "cli") -> OptOutChange:
    """Put a customer (or a browser's anonymous id) on the list as `opted_out`.

    From the next request on they get the non-personalised homepage, their events are
    dropped by the collector, and no campaign mail is planned or sent to them.

    Args:
        settings: whose home holds the list.
        customer_id: the id as events carry it (a known id, or `anon-…`).
        source: who asked: `cli`, `api` (an admin key) or `browser` (the tracker).

    Raises:
        InputError: a malformed id or an unknown source.
    """
    customer_id = checked_customer_id(customer_id)
    _check_source(source)
    with _locked_list(settings) as rows:
        current = DELETED if _forgotten(settings, customer_id) else _reason_of(rows, customer_id)
        if current in (OPTED_OUT, DELETED):
            change = OptOutChange(customer_id, "opt_out", current, changed=False)
        else:
            _append_row(exclusions_path(settings), [customer_id, OPTED_OUT, _now()])
            change = OptOutChange(customer_id, "opt_out", OPTED_OUT, changed=True)
    record_change(settings, change.action, customer_id, source, change.status, change.changed)
    return change


def opt_in(settings: Settings, customer_id: str, source: str = "cli") -> OptOutChange:
    """Undo `opt_out`: remove the customer's `opted_out` rows, keep any `deleted` row.

    Raises:
        InputError: a malformed id or an unknown source.
    """
    customer_id = checked_customer_id(customer_id)
    _check_source(source)
    with _locked_list(settings) as rows:
        if _forgotten(settings, customer_id):  # `tailor forget` already dropped its rows
            kept = rows
        else:
            kept = [row for row in rows
                    if not (_id_of(row) == customer_id and _reason(row) == OPTED_OUT)]
        changed = len(kept) != len(rows)
        if changed:
            rewrite_rows(exclusions_path(settings), kept)
        deleted = _reason_of(kept, customer_id) == DELETED or _forgotten(settings, customer_id)
        change = OptOutChange(customer_id, "opt_in", DELETED if deleted else "opted_in", changed)
    record_change(settings, change.action, customer_id, source, change.status, change.changed)
    return change


def opt_out_status(settings: Settings, customer_id: str) -> str:
    """`opted_out`, `deleted` or `opted_in` (not on the list) for one id."""
    customer_id = checked_customer_id(customer_id)
    if _forgotten(settings, customer_id):
        return DELETED
    with _locked_list(settings) as rows:
        return _reason_of(rows, customer_id) or "opted_in"


def _forgotten(settings: Settings, customer_id: str) -> bool:
    """Whether `tailor forget` tombstoned the id: it stays off the list (the raw id must not
    come back) and is `deleted` for good."""
    return TombstoneSet(settings.home_path).contains(customer_id)


# -- the list file ---------------------------------------------------------------------------


@contextmanager
def _locked_list(settings: Settings) -> Iterator[list[list[str]]]:
    """The list's data rows (header left out), read under the writers' lock, held until the
    block ends (so a change is read, decided and written as one step)."""
    path = ensure_exclusions_file(settings)
    with writers_lock(path.parent / LOCK_FILE):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle)]
        yield [row for row in rows[1:] if row]


def _append_row(path: Path, row: list[str]) -> None:
    """Add one row to the list (synced), its modification time moved past the old one's.

    One `write` of one short line: a reader sees the list before or after it, never half a
    row (an append of a few hundred bytes to a local file is not split).
    """
    previous = path.stat().st_mtime_ns
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(csv_lines([row]))
        handle.flush()
        os.fsync(handle.fileno())
    stamp = max(time.time_ns(), previous + 1_000_000)
    os.utime(path, ns=(stamp, stamp))


def _id_of(row: list[str]) -> str:
    return row[0].strip() if row else ""


def _reason(row: list[str]) -> str:
    return row[1].strip() if len(row) > 1 else ""


def _reason_of(rows: list[list[str]], customer_id: str) -> str | None:
    """The reason the list gives for an id (a `deleted` row wins over an `opted_out` one,
    otherwise the last row does), or None when it is not on the list."""
    reasons = [_reason(row) for row in rows if _id_of(row) == customer_id]
    if not reasons:
        return None
    return DELETED if DELETED in reasons else reasons[-1]


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise InputError(f"source: {source!r} is not one of {', '.join(sorted(SOURCES))}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
