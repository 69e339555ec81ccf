"""The audit table of monitoring decisions, beside the events.

Writes and reads the table `monitoring_decisions` in the event store's database (SQLite
`<home>/events.db` by default, or the PostgreSQL database of `database_url`): one row per
model per round, with the decision, its reason and its evidence (metric values, the window,
the versions compared, the drift verdicts) as JSON. A round is keyed by model and the end of
its window, so running a round twice on the same data finds the first decision and does not
act twice. SQL is parameterized; no customer id ever reaches the table.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tailor.config import Settings

_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS monitoring_decisions (
    round_key TEXT PRIMARY KEY,
    decided_at TEXT NOT NULL,
    model TEXT NOT NULL,
    window_start TEXT,
    window_end TEXT,
    champion_version TEXT,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL
)"""


@dataclass(frozen=True)
class Decision:
    """One model's outcome of one round (as stored)."""

    round_key: str
    decided_at: str
    model: str
    window_start: str | None
    window_end: str | None
    champion_version: str | None
    decision: str
    reason: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextmanager
def _connection(settings: Settings) -> Iterator[tuple[Any, str]]:
    """An open connection to the event store's database and its placeholder style."""
    url = settings.event_store_url
    if url.startswith("sqlite:///"):
        from tailor.events.sqlite_store import sqlite_path

        path = sqlite_path(url)
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connection: Any = sqlite3.connect(path, isolation_level=None, timeout=60.0)
        try:
            connection.execute(_TABLE_SQL)
            yield connection, "?"
        finally:
            connection.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(_TABLE_SQL)
            yield connection, "%s"


def find(settings: Settings, round_key: str) -> Decision | None:
    """The decision already taken for `round_key`, if any."""
    with _connection(settings) as (connection, mark):
        row = connection.execute(
            f"SELECT round_key, decided_at, model, window_start, window_end, champion_version, "
            f"decision, reason, evidence FROM monitoring_decisions WHERE round_key = {mark}",
            (round_key,)).fetchone()
    return None if row is None else Decision(*row[:8], json.loads(row[8]))


def record(settings: Settings, decision: Decision) -> None:
    """Store `decision` (a later decision for the same round replaces an earlier one)."""
    values = (decision.round_key, decision.decided_at, decision.model, decision.window_start,
              decision.window_end, decision.champion_version, decision.decision,
              decision.reason, json.dumps(decision.evidence, default=str))
    with _connection(settings) as (connection, mark):
        marks = ", ".join([mark] * len(values))
        connection.execute("DELETE FROM monitoring_decisions WHERE round_key = " + mark,
                           (decision.round_key,))
        connection.execute(
            "INSERT INTO monitoring_decisions (round_key, decided_at, model, window_start, "
            f"window_end, champion_version, decision, reason, evidence) VALUES ({marks})",
            values)


def history(settings: Settings, model: str | None = None, limit: int = 100) -> list[Decision]:
    """The newest decisions first, for one model or all."""
    with _connection(settings) as (connection, mark):
        where, arguments = (f"WHERE model = {mark} ", (model,)) if model else ("", ())
        rows = connection.execute(
            "SELECT round_key, decided_at, model, window_start, window_end, champion_version, "
            f"decision, reason, evidence FROM monitoring_decisions {where}"
            f"ORDER BY decided_at DESC LIMIT {int(limit)}", arguments).fetchall()
    return [Decision(*row[:8], json.loads(row[8])) for row in rows]
