"""Which customers every model must leave out: the deleted and opted-out ones.

Reads `<home>/privacy/excluded_customers.csv` (columns customer_id, reason, recorded_at;
reason is `deleted` or `opted_out`). Writes that file, header only, when it does not exist
yet, so the source is always real and the privacy jobs (`tailor forget`, `tailor opt-out`,
from the privacy issue) only append rows to it. Until they do, it is empty and nothing is
excluded. Training, evaluation, recommendations and the retention list all read it, and
serving re-reads it (`tailor.serving.exclusions`).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from tailor.config import Settings

log = logging.getLogger(__name__)

EXCLUSION_COLUMNS: tuple[str, ...] = ("customer_id", "reason", "recorded_at")
EXCLUSION_REASONS: frozenset[str] = frozenset({"deleted", "opted_out"})


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
    path = ensure_exclusions_file(settings)
    excluded = set()
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            customer_id = (row.get("customer_id") or "").strip()
            reason = (row.get("reason") or "").strip()
            if not customer_id:
                continue
            excluded.add(customer_id)
            if reason not in EXCLUSION_REASONS:
                log.warning("%s line %d: reason %r is not one of %s; excluded anyway", path,
                            line, reason, sorted(EXCLUSION_REASONS))
    return frozenset(excluded)
