"""Data retention: raw events older than `privacy.event_retention_days` leave every store that
keeps them (`tailor data-retention`, daily in the schedule).

Reads the event store (`settings.event_store_url`: counts of old events and dead letters)
and the lake's event partitions (`<lake>/events/date=…/hour=…/`). With `apply`, deletes the
event store's events timestamped before the cutoff and its dead letters received before it
(in batches: the collector keeps writing meanwhile), the lake's hourly partitions that end by
the cutoff, and then rebuilds the warehouse's derived tables (orders, sessions) so nothing
older survives there. Without `apply` (the default) it only says what would go, per store.

The cutoff is `now - days`, rounded down to the hour: the lake is partitioned by the hour of
each event's timestamp, so the store and the lake lose exactly the same events. The lake's
export lock is held while deleting, so an hourly export cannot write an old partition back.

Training learns from what the stores hold: with fewer days than the churn horizon plus the
90-day feature windows (`training_needs_days`), the churn model's label window is shortened
and the 90-day features see less history; the report says so rather than refusing.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tailor.config import Settings
from tailor.errors import InputError

log = logging.getLogger(__name__)

LONGEST_FEATURE_WINDOW_DAYS = 90  # the `last_90` windows of tailor/features/sql
LOCK_WAIT_SECONDS = 600.0  # how long --apply waits for an hourly export to finish
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")


@dataclass
class LakePartition:
    """One hourly folder of the lake's events: lake-relative path, files and bytes in it."""

    path: str
    files: int
    bytes: int


@dataclass
class RetentionReport:
    """What retention found (dry run) or deleted (applied), per store."""

    status: str  # off, dry_run or applied
    retention_days: int
    cutoff: str | None = None
    event_store: dict[str, Any] = field(default_factory=dict)
    lake: dict[str, Any] = field(default_factory=dict)
    warehouse: str = "unchanged"
    training_needs_days: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """The report in a few lines of prose."""
        if self.status == "off":
            return ("data retention is off (privacy.event_retention_days = 0): every event is "
                    "kept")
        verb = "deleted" if self.status == "applied" else "would delete"
        lines = [f"events before {self.cutoff} ({self.retention_days} days):",
                 f"  event store: {verb} {self.event_store['events']:,} events and "
                 f"{self.event_store['dead_letters']:,} dead letters",
                 f"  lake: {verb} {self.lake['partitions']:,} hourly partitions "
                 f"({self.lake['files']:,} files, {self.lake['bytes']:,} bytes)"
                 + (f", {self.lake['oldest']} … {self.lake['newest']}" if self.lake['oldest']
                    else ""),
                 f"  warehouse: {self.warehouse}"]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        if self.status == "dry_run":
            lines.append("nothing was deleted (dry run); run with --apply to delete")
        return "\n".join(lines)


def retention_cutoff(now: datetime, days: int) -> datetime:
    """`now - days`, rounded down to the hour (UTC)."""
    moment = now.astimezone(timezone.utc) - timedelta(days=days)
    return moment.replace(minute=0, second=0, microsecond=0)


def training_needs_days(settings: Settings) -> float:
    """Days of history the churn model uses in full: its label horizon after a snapshot plus
    the longest feature window before it."""
    return float(settings.models_churn_horizon_days + LONGEST_FEATURE_WINDOW_DAYS)


def run_retention(settings: Settings, *, apply: bool = False, days: int | None = None,
                  now: datetime | None = None,
                  lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> RetentionReport:
    """Say what retention would delete, or delete it.

    Args:
        settings: the stores; `privacy.event_retention_days` unless `days` is given.
        apply: delete (default: a dry run that changes nothing).
        days: keep this many days instead of the setting (> 0).
        now: the clock (default: now, UTC).
        lock_wait_seconds: how long to wait for a running lake export before giving up.

    Raises:
        InputError: `days` below 1, or the lake export held its lock all along.
    """
    if days is not None and days < 1:
        raise InputError(f"--days: must be at least 1, got {days}")
    keep_days = settings.privacy_event_retention_days if days is None else days
    report = RetentionReport("off", keep_days, training_needs_days=training_needs_days(settings))
    if keep_days == 0:
        return report
    cutoff = retention_cutoff(now or datetime.now(timezone.utc), keep_days)
    report.cutoff = cutoff.isoformat()
    report.status = "applied" if apply else "dry_run"
    if keep_days < report.training_needs_days:
        report.warnings.append(
            f"keeping {keep_days} days, fewer than the {report.training_needs_days:g} the churn "
            f"model uses in full (models.churn_horizon_days {settings.models_churn_horizon_days:g}"
            f" + {LONGEST_FEATURE_WINDOW_DAYS}-day feature windows): its label window gets "
            "shorter and 90-day features see less history; homepage and cross-sell learn from "
            f"the last {keep_days} days only")
    if apply:
        _apply(settings, cutoff, report, lock_wait_seconds)
    else:
        _survey(settings, cutoff, report)
    return report


def _survey(settings: Settings, cutoff: datetime, report: RetentionReport) -> None:
    """Fill the report with what would go."""
    import pandas as pd

    from tailor.events.lake_files import Lake
    from tailor.events.store import open_event_store
    from tailor.urls import redact_url

    store = open_event_store(settings.event_store_url)
    try:
        counts = store.count_older_than(pd.Timestamp(cutoff))
    finally:
        store.close()
    report.event_store = {"url": redact_url(settings.event_store_url), **counts}
    report.lake = _lake_summary(settings.lake_root, old_partitions(Lake(settings.lake_root), cutoff))
    report.warehouse = ("would be rebuilt" if settings.warehouse_file.exists()
                        and report.lake["partitions"] else "unchanged")


def _apply(settings: Settings, cutoff: datetime, report: RetentionReport,
           lock_wait_seconds: float) -> None:
    """Delete under the lake's export lock, then rebuild the warehouse's derived tables."""
    import pandas as pd

    from tailor.events.lake import EXPORT_LOCK_FILE
    from tailor.events.lake_files import ExportInProgress, Lake, export_lock
    from tailor.events.store import open_event_store
    from tailor.urls import redact_url

    deadline = time.monotonic() + lock_wait_seconds
    while True:
        try:
            with export_lock(settings.home_path / EXPORT_LOCK_FILE):
                lake = Lake(settings.lake_root)
                partitions = old_partitions(lake, cutoff)
                for partition in partitions:
                    lake.fs.rm(lake.path(partition.path), recursive=True)
                _remove_empty_days(lake, {item.path.split("/hour=")[0] for item in partitions})
                store = open_event_store(settings.event_store_url)
                try:
                    counts = store.delete_older_than(pd.Timestamp(cutoff))
                finally:
                    store.close()
            break
        except ExportInProgress:
            if time.monotonic() >= deadline:
                raise InputError(f"the lake export held its lock for {lock_wait_seconds:g} s; "
                                 "nothing was deleted, run again later") from None
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
    report.event_store = {"url": redact_url(settings.event_store_url), **counts}
    report.lake = _lake_summary(settings.lake_root, partitions)
    if partitions and settings.warehouse_file.exists():
        from tailor.warehouse import refresh_warehouse

        refresh_warehouse(settings)
        report.warehouse = "rebuilt"
    log.info("data retention: deleted %d events, %d dead letters and %d lake partitions "
             "before %s", counts["events"], counts["dead_letters"], len(partitions),
             report.cutoff)


def old_partitions(lake: Any, cutoff: datetime) -> list[LakePartition]:
    """The lake's hourly event partitions that end by `cutoff` (every event in them is older),
    oldest first."""
    from tailor.events.lake_files import EVENTS_DIR

    found = []
    for folder in sorted(lake.fs.glob(lake.path(f"{EVENTS_DIR}/date=*/hour=*"))):
        match = _PARTITION.search(folder.rstrip("/"))
        if not match:
            continue
        start = datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}:00:00+00:00")
        if start + timedelta(hours=1) > cutoff:
            continue
        sizes = lake.fs.find(folder, detail=True)
        found.append(LakePartition(f"{EVENTS_DIR}/{match.group(0)}", len(sizes),
                                   sum(int(info.get("size") or 0) for info in sizes.values())))
    return found


def _remove_empty_days(lake: Any, days: set[str]) -> None:
    """Delete the `date=` folders the deletion left without any hour."""
    for day in sorted(days):
        folder = lake.path(day)
        if lake.fs.exists(folder) and not lake.fs.find(folder):
            lake.fs.rm(folder, recursive=True)


def _lake_summary(root: str, partitions: list[LakePartition]) -> dict[str, Any]:
    from tailor.urls import redact_url

    return {"root": redact_url(root), "partitions": len(partitions),
            "files": sum(item.files for item in partitions),
            "bytes": sum(item.bytes for item in partitions),
            "oldest": partitions[0].path if partitions else None,
            "newest": partitions[-1].path if partitions else None}
