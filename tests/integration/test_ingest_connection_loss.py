"""An import into PostgreSQL whose connection the server ends.

The importer's backend is terminated for real (`pg_terminate_backend`, found by the
connection's application_name) while a chunk is being copied, or right after a chunk
committed with the answer lost (as when the termination lands during COMMIT). The import
retries on a new connection and ends with exactly the counts of an undisturbed import;
when the retries run out, the `ingest_runs` row says `aborted` with the reason, the CLI
exits 3 ("a service failed") with one line, and importing again completes the file.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

import tailor.events.postgres_store as postgres_store
from tailor.cli import EXIT_SERVICE_FAILED, app
from tailor.config import Settings, load_settings
from tailor.events.ingest.job import ingest_files
from tailor.events.store import RUN_ABORTED, RUN_FINISHED, StoreUnavailable, open_event_store

pytestmark = pytest.mark.postgres

NOW = pd.Timestamp("2026-03-01T12:00:00Z")
CHUNK_ROWS = 1_000
ROWS = 5_000  # five chunks, each copied through COPY (more than ARRAY_INSERT_MAX_ROWS)


def write_events(path: Path) -> Path:
    """ROWS rows: every 50th without a customer (rejected), every 100th repeating an id of
    the chunk before (a duplicate)."""
    ids = [f"e{row:05d}" for row in range(ROWS)]
    for row in range(CHUNK_ROWS, ROWS, 100):
        ids[row] = ids[row - CHUNK_ROWS + 1]
    seconds = NOW.value // 10**9 - 86_400 + pd.RangeIndex(ROWS) * 10
    pd.DataFrame({
        "event_id": ids,
        "customer_id": [None if row % 50 == 7 else f"c{row % 97}" for row in range(ROWS)],
        "event_type": "page_view",
        "timestamp": pd.to_datetime(seconds, unit="s", utc=True),
    }).to_parquet(path, index=False)
    return path


def schema_url(server_url: str, application: str) -> Iterator[str]:
    """A URL on a fresh schema whose connections carry `application` as application_name."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in server_url else "?"
    yield (f"{server_url}{separator}options={quote(f'-csearch_path={schema}')}"
           f"&application_name={application}")
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def application() -> str:
    return f"tailor_import_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def import_url(postgres_server_url: str, application: str) -> Iterator[str]:
    yield from schema_url(postgres_server_url, application)


@pytest.fixture
def clean_url(postgres_server_url: str) -> Iterator[str]:
    yield from schema_url(postgres_server_url, "tailor_clean_import")


def settings_for(home: Path, url: str, **overrides: object) -> Settings:
    return load_settings(home=home, env={}).replace(
        database_url=url, ingest_chunk_rows=CHUNK_ROWS, ingest_retry_backoff_seconds=0,
        **overrides)


class Terminator:
    """Ends the importer's backend from another connection, and counts every time it did."""

    def __init__(self, server_url: str, application: str) -> None:
        self.server_url, self.application = server_url, application
        self.terminated = 0

    def __call__(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as connection:
            # With a timeout the call returns once the backend has exited.
            ended = connection.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (self.application,)).fetchall()
        assert ended and all(row[0] for row in ended), "the importer's backend was not found"
        self.terminated += len(ended)


def terminate_mid_copy(monkeypatch: pytest.MonkeyPatch, terminate: Callable[[], None],
                       chunks: Callable[[int], bool]) -> None:
    """Terminate the backend after the first CSV block of the chunks `chunks(n)` picks (n
    counts COPY attempts from 1) has gone to the server, while its COPY is open."""
    original = postgres_store.events_csv_blocks
    attempts = [0]

    def blocks(*args: object, **kwargs: object) -> Iterator[bytes]:
        attempts[0] += 1
        attempt = attempts[0]
        for number, block in enumerate(original(*args, **kwargs)):
            yield block
            if number == 0 and chunks(attempt):
                terminate()

    monkeypatch.setattr(postgres_store, "events_csv_blocks", blocks)


def counts(report: dict) -> tuple:
    return report["accepted"], report["duplicates"], report["rejected"], report["received"]


def clean_import(home: Path, clean_url: str, events: Path) -> dict:
    report = ingest_files(settings_for(home, clean_url), events, now=NOW, progress=False)
    return report.to_dict()


def test_a_backend_terminated_mid_copy_is_retried_and_the_import_is_exact(
        tmp_path: Path, import_url: str, clean_url: str, postgres_server_url: str,
        application: str, monkeypatch: pytest.MonkeyPatch) -> None:
    events = write_events(tmp_path / "events.parquet")
    expected = clean_import(tmp_path / "clean", clean_url, events)
    terminator = Terminator(postgres_server_url, application)
    terminate_mid_copy(monkeypatch, terminator, lambda attempt: attempt in (2, 4))
    report = ingest_files(settings_for(tmp_path / "home", import_url), events, now=NOW,
                          progress=False).to_dict()
    assert terminator.terminated == 2  # two real terminations, both survived
    assert counts(report) == counts(expected)
    assert any("connection dropped 2 time(s)" in warning for warning in report["warnings"])
    store = open_event_store(import_url)
    try:
        assert store.count_events() == expected["accepted"]
        assert sum(store.rejected_counts().values()) == sum(expected["rejected"].values())
        runs = store.ingest_runs()
        assert runs["status"].tolist() == [RUN_FINISHED]
        assert runs[["accepted", "duplicates"]].iloc[0].tolist() == [
            expected["accepted"], expected["duplicates"]]
    finally:
        store.close()


def test_a_commit_whose_answer_was_lost_is_counted_once(
        tmp_path: Path, import_url: str, clean_url: str, postgres_server_url: str,
        application: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk committed, then the backend was terminated before the client heard so:
    the retry stores nothing again and still counts the chunk's rows as accepted."""
    events = write_events(tmp_path / "events.parquet")
    expected = clean_import(tmp_path / "clean", clean_url, events)
    terminator = Terminator(postgres_server_url, application)
    original = postgres_store.PostgresEventStore.insert_events
    calls = [0]

    def insert_then_lose_the_answer(self, frame: pd.DataFrame, batch_id: str) -> int:
        inserted = original(self, frame, batch_id)
        calls[0] += 1
        if calls[0] == 3:
            terminator()
            raise psycopg.errors.AdminShutdown("terminating connection due to administrator "
                                               "command")
        return inserted

    monkeypatch.setattr(postgres_store.PostgresEventStore, "insert_events",
                        insert_then_lose_the_answer)
    report = ingest_files(settings_for(tmp_path / "home", import_url), events, now=NOW,
                          progress=False).to_dict()
    assert terminator.terminated == 1
    assert counts(report) == counts(expected)


def test_exhausted_retries_abort_the_run_with_its_reason_and_exit_3(
        tmp_path: Path, import_url: str, clean_url: str, postgres_server_url: str,
        application: str, monkeypatch: pytest.MonkeyPatch) -> None:
    events = write_events(tmp_path / "events.parquet")
    expected = clean_import(tmp_path / "clean", clean_url, events)
    terminator = Terminator(postgres_server_url, application)
    terminate_mid_copy(monkeypatch, terminator, lambda attempt: attempt >= 2)
    for key in ("TAILOR_HOME", "TAILOR_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TAILOR_DATABASE_URL", import_url)
    monkeypatch.setenv("TAILOR_INGEST_CHUNK_ROWS", str(CHUNK_ROWS))
    monkeypatch.setenv("TAILOR_INGEST_RETRIES", "2")
    monkeypatch.setenv("TAILOR_INGEST_RETRY_BACKOFF_SECONDS", "0")
    result = CliRunner().invoke(app, ["ingest", str(events), "--home", str(tmp_path / "home")])
    assert result.exit_code == EXIT_SERVICE_FAILED == 3, result.output
    assert terminator.terminated == 3  # the first attempt and two retries
    assert isinstance(result.exception, SystemExit)  # mapped, not an uncaught error
    assert "Traceback" not in result.output
    failure = [line for line in result.output.splitlines() if "service failed" in line]
    assert len(failure) == 1 and "StoreUnavailable" in failure[0]
    store = open_event_store(import_url)
    try:
        runs = store.ingest_runs()
        assert runs["status"].tolist() == [RUN_ABORTED]
        reason = runs["abort_reason"].iloc[0]
        assert reason.startswith("StoreUnavailable: the event store connection failed 3 time(s)")
        assert "AdminShutdown" in reason or "OperationalError" in reason
        kept = store.count_events()
        # The committed rows, of the first COPY only (the reader may cut the first chunk
        # in pieces to start the writer sooner).
        assert runs["accepted"].iloc[0] == kept and 0 < kept < CHUNK_ROWS
        monkeypatch.undo()
        again = ingest_files(settings_for(tmp_path / "again", import_url), events, now=NOW,
                             progress=False)
        assert again.accepted + kept == expected["accepted"] == store.count_events()
        assert store.ingest_runs()["status"].tolist() == [RUN_ABORTED, RUN_FINISHED]
    finally:
        store.close()


def test_a_store_from_before_the_status_column_gets_it(tmp_path: Path, import_url: str) -> None:
    """An `ingest_runs` table created by an earlier version is migrated on open; its rows
    read as finished."""
    with psycopg.connect(import_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE ingest_runs (batch_id TEXT PRIMARY KEY, source TEXT "
                           "NOT NULL, started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ "
                           "NOT NULL, received BIGINT NOT NULL, accepted BIGINT NOT NULL, "
                           "duplicates BIGINT NOT NULL, rejected TEXT NOT NULL)")
        connection.execute("INSERT INTO ingest_runs VALUES ('old', 'a.csv', now(), now(), 3, 3, "
                           "0, '{}')")
    store = open_event_store(import_url)
    try:
        runs = store.ingest_runs()
        assert runs[["batch_id", "status", "abort_reason"]].values.tolist() == [
            ["old", RUN_FINISHED, ""]]
    finally:
        store.close()


def test_unreachable_store_raises_store_unavailable_after_the_retries(tmp_path: Path) -> None:
    """Retries count: a store that never answers is given up after `ingest.retries`."""
    from tailor.events.retry import RetryPolicy, with_retries

    waits: list[float] = []
    attempts: list[int] = []

    def always_dropped(attempt: int) -> None:
        attempts.append(attempt)
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    with pytest.raises(StoreUnavailable, match="failed 4 time"):
        with_retries(always_dropped, "a chunk", RetryPolicy(3, 0.5), sleep=waits.append)
    assert attempts == [0, 1, 2, 3] and waits == [0.5, 1.0, 2.0]
    with pytest.raises(ValueError):  # a data error is not retried
        with_retries(lambda attempt: int("x"), "a chunk", RetryPolicy(3, 0.5),
                     sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]
