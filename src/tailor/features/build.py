"""`tailor features`: compute the features, apply the Feast definitions, materialize online.

Reads the warehouse; writes `<home>/features/` (offline Parquet sources and manifest),
`<home>/feature_repo/` (the rendered Feast repo and its registry) and the online store
(SQLite under the home, or Redis): incrementally, what is new or changed since the last
run (`tailor.features.repo.materialize`). A warehouse whose views read another home's lake
(a copied home) is refreshed first. Progress goes to stderr, and so do warnings
(`tailor.features.freshness`): a batch view with no offline row inside its TTL window.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from tailor.config import Settings
from tailor.features import specs as catalogue
from tailor.features.compute import FeatureBuild, compute_features
from tailor.features.freshness import WindowRows, stale_warnings, window_rows, write_freshness
from tailor.features.repo import (
    ApplySummary,
    ViewWindow,
    apply_definitions,
    materialize,
    open_feature_store,
)
from tailor.warehouse.duckdb_warehouse import refresh_warehouse, views_reading_elsewhere

log = logging.getLogger(__name__)


@dataclass
class FeaturesSummary:
    """What one `tailor features` run computed, applied and materialized, and where."""

    build: FeatureBuild
    applied: ApplySummary
    materialized_until: str
    windows: list[ViewWindow]
    online_store: str
    features: int
    seconds: float
    window_rows: list[WindowRows] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def materialized_rows(self) -> int:
        """Offline rows inside this run's materialization windows, over all views."""
        return sum(count.window_rows for count in self.window_rows)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return {
            "features": self.features,
            "categories": self.build.categories,
            "rows": self.build.rows,
            "offline": self.build.feature_dir,
            "first_snapshot": self.build.first_snapshot,
            "newest_snapshot": self.build.newest_snapshot,
            "repo": self.applied.repo_path,
            "project": self.applied.project,
            "applied": self.applied.applied,
            "deleted": self.applied.deleted,
            "online_store": self.online_store,
            "materialized_until": self.materialized_until,
            "materialized": [window.to_dict() for window in self.windows],
            "materialized_rows": self.materialized_rows,
            "window_rows": {count.view: count.window_rows for count in self.window_rows},
            "warnings": list(self.warnings),
            "seconds": self.seconds,
        }

    def summary_text(self) -> str:
        """A few lines for people."""
        rows = ", ".join(f"{table} {count:,}" for table, count in self.build.rows.items())
        windows = ", ".join(f"{window.view} {window.mode} from {window.start:%Y-%m-%d %H:%M}"
                            for window in self.windows)
        return (f"computed {self.features} features ({len(self.build.categories)} categories); "
                f"rows: {rows}\n"
                f"offline: {self.build.feature_dir}\n"
                f"feast repo: {self.applied.repo_path} (project {self.applied.project}, "
                f"{len(self.applied.applied)} objects applied, "
                f"{len(self.applied.deleted)} deleted)\n"
                f"online store: {self.online_store}, materialized until {self.materialized_until}"
                f" ({self.materialized_rows:,} offline rows in the windows)"
                f"\n  {windows}"
                + "".join(f"\nwarning: {warning}" for warning in self.warnings))


def _describe_online_store(settings: Settings) -> str:
    if settings.redis_url:
        return "redis " + settings.redis_url.split("@")[-1]  # never print a password
    return f"sqlite {settings.home_path.resolve() / 'feature_repo' / 'data' / 'online_store.db'}"


class _QuietStatus:
    """Stands in for a rich status line when progress is off: logs each step instead."""

    def update(self, message: str) -> None:
        log.info(message)


@contextlib.contextmanager
def _status(enabled: bool) -> Iterator[Any]:
    """A rich status line on stderr, or a logger when `enabled` is False."""
    if not enabled:
        yield _QuietStatus()
        return
    from rich.console import Console

    with Console(stderr=True).status("features: computing") as status:
        yield status


@contextlib.contextmanager
def _feast_logs_at_warning() -> Iterator[None]:
    """Feast logs every registry refresh at INFO; keep the job's output readable."""
    feast_log = logging.getLogger("feast")
    level = feast_log.level
    feast_log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        feast_log.setLevel(level)


def _refresh_copied_warehouse(settings: Settings) -> None:
    """Refresh a warehouse whose lake views read another home's lake (a copied home): the
    features must come from this home's data."""
    elsewhere = views_reading_elsewhere(settings)
    if elsewhere:
        log.warning("features: the warehouse's %s view(s) read another lake than %s (a copied "
                    "home?); refreshing the warehouse first", ", ".join(elsewhere),
                    settings.lake_root)
        refresh_warehouse(settings)


def run_features(settings: Settings, now: datetime | None = None,
                 show_progress: bool = True, full: bool = False) -> FeaturesSummary:
    """Compute, apply and materialize; the whole `tailor features` job.

    Args:
        settings: the Tailor settings.
        now: the current time (default: the clock).
        show_progress: show a rich status line on stderr.
        full: materialize every view's whole TTL window, not only what is new or changed
            since the last run (after the online store lost its data).

    Returns:
        The `FeaturesSummary`.
    """
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    _refresh_copied_warehouse(settings)
    with _status(show_progress) as status, _feast_logs_at_warning():
        build = compute_features(settings, now=now,
                                 progress=lambda message: status.update(message))
        status.update("features: feast apply")
        applied = apply_definitions(settings)
        status.update("features: materializing to the online store")
        store = open_feature_store(settings)
        windows = materialize(settings, end=now, store=store,
                              incremental=not full, changed_since=build.changed_since)
        counts = window_rows(store, windows)
    write_freshness(settings, counts, now)
    warnings = stale_warnings(counts, now)
    for warning in warnings:
        log.warning("features: %s", warning)
    return FeaturesSummary(
        build=build, applied=applied, materialized_until=now.isoformat(), windows=windows,
        online_store=_describe_online_store(settings),
        features=len(catalogue.all_specs(build.categories)),
        seconds=round(time.perf_counter() - started, 3), window_rows=counts, warnings=warnings)
