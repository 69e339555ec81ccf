"""How much offline data a materialization window holds, and warnings when it holds none.

Reads the offline Parquet sources of the feature views (`<home>/features/*.parquet`, through
DuckDB). Writes `<home>/feature_repo/data/freshness.json`: the batch views the last
`tailor features` run found no row for within their TTL, which the online reader reports
as stale, not missing (nothing fresh was materialized, so an absent row says nothing about
the entity). `tailor features` reports the counts (`materialized_rows`) and the warnings
(docs/features.md, "Stale windows").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from tailor.config import Settings
from tailor.features.repo import ViewWindow, repo_dir

FRESHNESS_FILE = "freshness.json"

BATCH_LAYER = "batch"  # the `layer` tag of the views the batch job fills (features.py)


@dataclass(frozen=True)
class WindowRows:
    """Offline rows of one view: inside the window materialized now, and inside its TTL."""

    view: str
    window_rows: int
    fresh_rows: int
    newest: datetime | None
    batch: bool


def count_rows(path: str, start: datetime, end: datetime) -> tuple[int, datetime | None]:
    """Rows of a Parquet file stamped in [start, end], and its newest stamp overall.

    Args:
        path: the offline source file (its timestamp column is `event_timestamp`).
        start: the window's start (aware).
        end: the window's end (aware).

    Returns:
        (rows in the window, newest `event_timestamp` or None); (0, None) when the file
        is missing.
    """
    import duckdb

    if not Path(path).is_file():
        return 0, None
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        found = connection.execute(
            "SELECT count(*) FILTER (WHERE event_timestamp >= ? AND event_timestamp <= ?), "
            "max(event_timestamp) FROM read_parquet(?)", [start, end, path]).fetchone()
    rows, newest = found if found is not None else (0, None)
    return int(rows), newest


def window_rows(store: Any, windows: Sequence[ViewWindow]) -> list[WindowRows]:
    """Count each materialized view's offline rows in its window and in its TTL.

    Args:
        store: the open `feast.FeatureStore` (for each view's source and TTL).
        windows: the windows `tailor.features.repo.materialize` returned.
    """
    counted = []
    for window in windows:
        view = store.get_feature_view(window.view)
        path = view.batch_source.path
        rows, newest = count_rows(path, window.start, window.end)
        fresh, _ = count_rows(path, window.end - view.ttl, window.end)
        counted.append(WindowRows(window.view, rows, fresh, newest,
                                  view.tags.get("layer") == BATCH_LAYER))
    return counted


def stale_warnings(counts: Sequence[WindowRows], end: datetime) -> list[str]:
    """One warning per batch view whose TTL window holds no offline row.

    Such a view serves nothing fresh: every online read of it is stale (defaults and a
    `stale` flag), however new the last run. Session views are left out: they are filled
    by the collector's push, and an empty half hour is normal.
    """
    warnings = []
    for count in counts:
        if not count.batch or count.fresh_rows:
            continue
        newest = f"newest row {count.newest:%Y-%m-%d %H:%M}" if count.newest else "no rows"
        warnings.append(f"{count.view}: no offline rows within its TTL before "
                        f"{end:%Y-%m-%d %H:%M} ({newest}); every online read of it is stale "
                        "defaults. Load recent events, or raise features.batch_ttl_days")
    return warnings


def freshness_path(settings: Settings) -> Path:
    """`<home>/feature_repo/data/freshness.json`."""
    return repo_dir(settings) / "data" / FRESHNESS_FILE


def stale_batch_views(counts: Sequence[WindowRows]) -> list[str]:
    """The batch views with no offline row within their TTL."""
    return sorted(count.view for count in counts if count.batch and not count.fresh_rows)


def write_freshness(settings: Settings, counts: Sequence[WindowRows], end: datetime) -> Path:
    """Record which batch views had nothing fresh at `end` (for the online reader)."""
    path = freshness_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"materialized_until": end.isoformat(),
                                "stale_views": stale_batch_views(counts)}, indent=2),
                    encoding="utf-8")
    return path


def read_stale_views(settings: Settings) -> frozenset[str]:
    """The views the last `tailor features` run found nothing fresh for (none when the file
    is missing or unreadable)."""
    try:
        recorded = json.loads(freshness_path(settings).read_text(encoding="utf-8"))
        return frozenset(str(view) for view in recorded.get("stale_views", ()))
    except (OSError, ValueError, AttributeError):
        return frozenset()
