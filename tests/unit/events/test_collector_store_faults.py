"""The collector under store faults: a read-only store, a full disk, recovery.

The faults are SQLite's own: a connection opened with `mode=ro` (what a read-only home
gives) answers "attempt to write a readonly database", and `max_page_count` at the current
size answers "database or disk is full". Both last only for connections opened while the
fault is on, as on a real machine: the collector recovers only if it reopens its connection.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

with warnings.catch_warnings():  # Starlette now suggests httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from tailor.config import Settings, load_settings
from tailor.events.collector.app import create_collector_app
from tailor.events.keys import create_key, keys_file_path
from tailor.events.sqlite_store import SqliteEventStore, sqlite_path
from tailor.events.store import EventStore, open_event_store
from tailor.throttled_log import ThrottledLog
from waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def make_event() -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "customer_id": "c-1", "event_type": "page_view",
            "timestamp": (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)).isoformat()}


def big_batch() -> list[dict[str, Any]]:
    """Events that need new pages in the file (about 100 KB), so a full disk refuses them."""
    return [{**make_event(), "properties": {"page": "x" * 400}} for _ in range(250)]


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return load_settings(home=tailor_home, env={})


@pytest.fixture
def secret_key(settings: Settings) -> str:
    return create_key("secret", keys_file_path(settings), label="test server")


@pytest.fixture
def store(settings: Settings) -> Iterator[EventStore]:
    event_store = open_event_store(settings.event_store_url)  # the file exists before the fault
    yield event_store
    event_store.close()


class StoreFault:
    """Makes new SQLite connections to one file read-only or full while `kind` is set."""

    def __init__(self, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = str(Path(path).resolve())
        self.kind: str | None = None
        self.opened = 0
        real_connect = sqlite3.connect

        def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
            if str(Path(str(database)).resolve()) != self.path or self.kind is None:
                connection = real_connect(database, *args, **kwargs)
            elif self.kind == "read-only":
                connection = real_connect(f"file:{self.path}?mode=ro", *args, uri=True, **kwargs)
            else:  # "full": the file may not grow by a single page
                connection = real_connect(database, *args, **kwargs)
                pages = connection.execute("PRAGMA page_count").fetchone()[0]
                connection.execute(f"PRAGMA max_page_count = {pages}")
            self.opened += 1
            return connection

        monkeypatch.setattr(sqlite3, "connect", connect)

    def fill_disk(self) -> None:
        """The disk fills: new connections, and those already open, cannot grow the file."""
        self.kind = "full"
        for thing in gc.get_objects():
            if isinstance(thing, SqliteEventStore) and thing._connection is not None \
                    and str(Path(thing.path).resolve()) == self.path:
                with thing._lock:
                    pages = thing._connection.execute("PRAGMA page_count").fetchone()[0]
                    thing._connection.execute(f"PRAGMA max_page_count = {pages}")


def post(client: TestClient, key: str, events: list[Any]):
    return client.post("/v1/events", json={"events": events}, headers={"X-Tailor-Key": key})


def test_a_store_read_only_at_start_is_unhealthy_then_recovers_when_writable(
        settings: Settings, secret_key: str, store: EventStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fault = StoreFault(sqlite_path(settings.event_store_url), monkeypatch)
    fault.kind = "read-only"
    with TestClient(create_collector_app(settings)) as client:
        refused = post(client, secret_key, [make_event()])
        assert refused.status_code == 503 and "retry" in refused.json()["error"]
        health = client.get("/healthz")
        assert health.status_code == 503 and "readonly" in health.json()["error"]
        assert client.get("/readyz").status_code == 503
        assert client.get("/livez").status_code == 200  # liveness only
        fault.kind = None  # the home is writable again
        wait_until(lambda: client.get("/healthz").status_code == 200, 30,
                   "/healthz to say ok once the store is writable")
        accepted = post(client, secret_key, [make_event()])
        assert accepted.status_code == 200 and accepted.json()["accepted"] == 1
    assert store.count_events() == 1


def test_the_next_batch_after_the_fault_clears_succeeds_without_waiting(
        settings: Settings, secret_key: str, store: EventStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fault = StoreFault(sqlite_path(settings.event_store_url), monkeypatch)
    with TestClient(create_collector_app(settings)) as client:
        assert post(client, secret_key, [make_event()]).status_code == 200
        fault.fill_disk()
        opened = fault.opened
        first = post(client, secret_key, big_batch())
        assert first.status_code == 503
        # The failed write dropped the connection; the batch after it runs on a new one.
        assert post(client, secret_key, big_batch()).status_code == 503
        assert fault.opened > opened
        health = client.get("/healthz").json()
        assert "full" in health["error"]
        fault.kind = None
        assert post(client, secret_key, [make_event()]).status_code == 200
        assert client.get("/healthz").status_code == 200
    assert store.count_events() == 2


def test_a_full_disk_logs_each_identical_error_once_per_interval(
        settings: Settings, secret_key: str, store: EventStore,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fault = StoreFault(sqlite_path(settings.event_store_url), monkeypatch)
    with TestClient(create_collector_app(settings)) as client:
        assert post(client, secret_key, [make_event()]).status_code == 200
        fault.fill_disk()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tailor.events.collector"):
            statuses = [post(client, secret_key, big_batch()).status_code for _ in range(40)]
        assert statuses == [503] * 40
        records = [record for record in caplog.records if record.name == "tailor.events.collector"]
        with_traceback = [record for record in records if record.exc_info]
        assert len(with_traceback) == 1, [record.getMessage() for record in records]
        assert len(records) <= 3, [record.getMessage() for record in records]
        fault.kind = None
        assert post(client, secret_key, [make_event()]).status_code == 200
    assert store.count_events() == 2


def test_throttled_log_counts_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("tailor.test.throttle"), interval_seconds=60,
                             clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="tailor.test.throttle"):
        written = [throttled.log(logging.WARNING, "disk", "write failed: %s", "full",
                                 exc_info=OSError("full")) for _ in range(5)]
        throttled.log(logging.WARNING, "other", "something else")
        now[0] = 61.0
        throttled.log(logging.WARNING, "disk", "write failed: %s", "full",
                      exc_info=OSError("full"))
    assert written == [True, False, False, False, False]
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["write failed: full", "something else",
                        "write failed: full (and 4 more like it in the last 60 s)"]
    assert caplog.records[0].exc_info and not caplog.records[2].exc_info


def test_a_store_that_could_not_open_is_opened_once_it_can_be_even_when_idle(
        tmp_path: Path, settings: Settings, secret_key: str) -> None:
    blocker = tmp_path / "store-folder"
    blocker.write_text("a file where the store's folder should be")
    blocked = settings.replace(database_url=f"sqlite:///{blocker / 'events.db'}")
    # The app starts all the same (mounted in `tailor serve`, a failing start-up would take
    # the whole server down with it), and says why it cannot store.
    with TestClient(create_collector_app(blocked)) as client:
        assert post(client, secret_key, [make_event()]).status_code == 503
        health = client.get("/healthz")
        assert health.status_code == 503 and "event store" in health.json()["error"]
        blocker.unlink()  # fixed; no batch arrives (a load balancer took the collector out)
        wait_until(lambda: client.get("/healthz").status_code == 200, 30,
                   "/healthz to say ok once the store's folder is free")
        assert post(client, secret_key, [make_event()]).json()["accepted"] == 1
