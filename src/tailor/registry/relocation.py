"""A copied home's MLflow store: artifact locations moved from the original home to this one.

Reads and writes the home's own SQLite tracking store (`<home>/mlflow.db`, the default
`mlflow_tracking_uri`); any other tracking store is shared on purpose and left alone.

MLflow records absolute `file://` URIs of the artifact folders: each experiment's
`<home>/mlartifacts/<experiment>` (where new runs write), and each run's, logged model's
and model version's folder under it. A home copied with `cp -a` keeps the original's URIs,
so training in the copy would write its artifacts into the original home. `rehome_artifacts`
rewrites every location under another home's `mlartifacts/` to this home's: experiments
always (new artifacts stay home), older runs, logged models and versions where the copied
folder exists here (else they keep reading the original's, which still holds them).
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tailor.config import Settings

log = logging.getLogger(__name__)

ARTIFACTS_DIR = "mlartifacts"
MARK = f"/{ARTIFACTS_DIR}/"
EXPERIMENT_COLUMN = ("experiments", "artifact_location")
# Locations of artifacts that already exist: moved only when the copy holds them.
STORED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("runs", "artifact_uri"), ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"), ("model_versions", "source"),
)


def home_tracking_db(settings: Settings) -> Path | None:
    """The home's own SQLite tracking file when the settings use it and it exists."""
    own = settings.home_path.resolve() / "mlflow.db"
    if settings.tracking_uri != f"sqlite:///{own}" or not own.is_file():
        return None
    return own


def own_root(settings: Settings) -> str:
    """`file://<home>/mlartifacts/`, the prefix of every local artifact URI of this home."""
    return (settings.home_path.resolve() / ARTIFACTS_DIR).as_uri() + "/"


def foreign_roots(connection: sqlite3.Connection, root: str) -> list[str]:
    """`file://…/mlartifacts/` prefixes of experiments that are not this home's."""
    table, column = EXPERIMENT_COLUMN
    found = set()
    for (location,) in connection.execute(f'SELECT "{column}" FROM "{table}"'):
        if location and location.startswith("file://") and MARK in location:
            prefix = location[:location.index(MARK) + len(MARK)]
            if prefix != root:
                found.add(prefix)
    return sorted(found)


def _tables(connection: sqlite3.Connection) -> set[str]:
    return {name for (name,) in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}


def _moved(location: str | None, old: str, new: str, must_exist: bool) -> str | None:
    """The location under `new` when it lies under `old` (and, if asked, exists there)."""
    if not location or not location.startswith(old):
        return None
    moved = new + location[len(old):]
    if must_exist and not Path(unquote(urlsplit(moved).path)).exists():
        return None
    return moved


def _rewrite(connection: sqlite3.Connection, table: str, column: str, old: str, new: str,
             must_exist: bool) -> int:
    rows = connection.execute(f'SELECT rowid, "{column}" FROM "{table}" '
                              f'WHERE substr("{column}", 1, ?) = ?', (len(old), old)).fetchall()
    changed = [(moved, rowid) for rowid, location in rows
               if (moved := _moved(location, old, new, must_exist)) is not None]
    connection.executemany(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', changed)
    return len(changed)


def rehome_artifacts(settings: Settings) -> list[str]:
    """Point the home's MLflow locations that name another home's artifacts at this home.

    Returns:
        The other homes' artifact roots that were rewritten (empty: nothing to do).
    """
    path = home_tracking_db(settings)
    if path is None:
        return []
    root = own_root(settings)
    with closing(sqlite3.connect(path, timeout=30)) as connection:
        tables = _tables(connection)
        if EXPERIMENT_COLUMN[0] not in tables:
            return []
        roots = foreign_roots(connection, root)
        for old in roots:
            with connection:  # one transaction per root
                moved = _rewrite(connection, *EXPERIMENT_COLUMN, old, root, False)
                for table, column in STORED_COLUMNS:
                    if table in tables:
                        moved += _rewrite(connection, table, column, old, root, True)
            log.warning("MLflow store %s named artifacts of another home (%s); %d locations "
                        "now point into this home", path, old, moved)
    return roots

