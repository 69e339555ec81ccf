"""Which customers every model must leave out: the deleted and opted-out ones.

Reads `<home>/privacy/excluded_customers.csv` (columns customer_id, reason, recorded_at;
reason is `deleted` or `opted_out`). Writes that file, header only, when it does not exist
yet, so the source is always real; `tailor opt-out` appends rows, opt-in and `tailor forget`
(`drop_customer`: a forgotten id is kept only as a tombstone) rewrite it, each holding the
lock file `<home>/privacy/excluded_customers.lock` (`writers_lock`). Until then it is empty
and nothing is excluded. Training, evaluation, recommendations and the retention list all
read it, and serving re-reads it (`tailor.serving.exclusions`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tailor.config import Settings
from tailor.file_lock import exclusive_lock

log = logging.getLogger(__name__)

EXCLUSION_COLUMNS: tuple[str, ...] = ("customer_id", "reason", "recorded_at")
EXCLUSION_REASONS: frozenset[str] = frozenset({"deleted", "opted_out"})
LOCK_FILE = "excluded_customers.lock"  # beside the list; every writer holds it


def exclusions_path(settings: Settings) -> Path:
    """Where the list of excluded customers lives."""
    return settings.home_path / "privacy" / "excluded_customers.csv"


def ensure_exclusions_file(settings: Settings) -> Path:
    """Create the exclusion list with its header if it is missing; returns its path."""
    path = exclusions_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(EXCLUSION_COLUMNS)
    return path


def excluded_customer_ids(settings: Settings) -> frozenset[str]:
    """Customer ids that were deleted or opted out; empty until the privacy jobs add any.

    A row with an unknown reason still excludes its customer (when in doubt, leave a person
    out), with a warning naming the line.
    """
    return frozenset(exclusion_reasons(settings))


def exclusion_reasons(settings: Settings) -> dict[str, str]:
    """Each excluded customer id and why (`deleted`, `opted_out`, or the unknown reason a row
    gives; the last row of a customer wins)."""
    path = ensure_exclusions_file(settings)
    reasons: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)  # not DictReader: the list is re-read by running servers
        header = [name.strip() for name in next(rows, EXCLUSION_COLUMNS)]
        id_at, reason_at = _column(header, "customer_id", path), _column(header, "reason", path)
        pairs = [(row[id_at].strip() if len(row) > id_at else "",
                  row[reason_at].strip() if len(row) > reason_at else "") for row in rows]
    for customer_id, reason in pairs:  # one pass, no per-row calls: the list may be long
        if customer_id:
            reasons[customer_id] = reason
    unknown = set(reasons.values()) - EXCLUSION_REASONS
    for line, (customer_id, reason) in enumerate(pairs, start=2):  # only when a reason is odd
        if unknown and customer_id and reason in unknown:
            log.warning("%s line %d: reason %r is not one of %s; excluded anyway", path,
                        line, reason, sorted(EXCLUSION_REASONS))
    return reasons


def drop_customer(settings: Settings, customer_id: str) -> int:
    """Remove a customer's rows from the list (a forgotten customer is excluded by the
    tombstone instead, and the list must not keep the id); returns rows removed.

    Holds the writers' lock that opt-out and opt-in hold (`writers_lock`), so an opt-out of
    another customer made meanwhile is not lost; the file is rewritten beside itself and
    renamed over (`rewrite_rows`), so a reader sees the old or the new list, never half of one.
    """
    path = ensure_exclusions_file(settings)
    with writers_lock(path.parent / LOCK_FILE):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle)][1:]
        kept = [row for row in rows if row and row[0].strip() != customer_id]
        removed = len([row for row in rows if row]) - len(kept)
        if removed:
            rewrite_rows(path, kept)
    return removed


@contextmanager
def writers_lock(path: Path) -> Iterator[None]:
    """Hold the exclusion list's exclusive writer lock (blocking: writes are short). Every
    writer of the list holds it: opt-out, opt-in (`tailor.privacy.opt_out`), `drop_customer`."""
    with exclusive_lock(path):
        yield


def csv_lines(rows: list[list[str]]) -> str:
    """Rows as the list's CSV lines ("\\n" ends a line). A row with a carriage return in a
    field (an id may hold one) is quoted whole: the minimal quoting of `csv` quotes only the
    line terminator's characters, and readers (newline="") would end the line at the "\\r"."""
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        (quoted if any("\r" in field for field in row) else plain).writerow(row)
    return buffer.getvalue()


def rewrite_rows(path: Path, rows: list[list[str]]) -> None:
    """Replace the list with `rows` (header first) atomically, its modification time moved
    past the old one's so a watcher that looked within the same clock tick still sees it.
    Call it holding `writers_lock`."""
    text = csv_lines([list(EXCLUSION_COLUMNS), *rows])
    previous = path.stat().st_mtime_ns if path.exists() else 0
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    stamp = max(time.time_ns(), previous + 1_000_000)
    os.utime(temporary, ns=(stamp, stamp))
    os.replace(temporary, path)


def _column(header: list[str], name: str, path: Path) -> int:
    """Where a column is in the list's header.

    Raises:
        ValueError: the header lacks it (the file is not an exclusion list).
    """
    if name not in header:
        raise ValueError(f"{path}: no {name!r} column in the header {header}; expected "
                         f"{', '.join(EXCLUSION_COLUMNS)}")
    return header.index(name)
