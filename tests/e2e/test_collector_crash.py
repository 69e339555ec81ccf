"""Acknowledged means durable: SIGKILL `tailor collect` mid-stream, restart it, retry.

Several senders post batches to a real collector process and record which batches were
answered 200. The collector is killed while requests are in flight. Before it restarts,
the store must already hold every acknowledged event; after the restart the senders retry
what was never acknowledged, and every event is then stored exactly once.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest

from collector_process import start_collector
from tailor.events.keys import create_key
from tailor.events.store import open_event_store

pytestmark = pytest.mark.slow

SENDERS = 4
BATCH_EVENTS = 200
ACKED_BEFORE_KILL = 24  # batches answered 200 before the collector is killed


@dataclass
class Ledger:
    """What the senders know: every batch they made, and the answers they got."""

    batches: dict[str, list[dict]] = field(default_factory=dict)
    answers: dict[str, dict] = field(default_factory=dict)  # batch id -> 200 body
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged_event_ids(self) -> set[str]:
        with self.lock:
            return {event["event_id"] for batch_id in self.answers
                    for event in self.batches[batch_id]}


def make_batch(sender: int, number: int) -> list[dict]:
    """A batch of valid, distinct events."""
    stamp = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=5)).isoformat()
    return [{"event_id": uuid.uuid4().hex, "customer_id": f"c-{sender}-{number % 7}",
             "event_type": "product_view", "product_id": f"p-{index % 50}", "timestamp": stamp,
             "session_id": f"s-{sender}"} for index in range(BATCH_EVENTS)]


def post_batch(client: httpx.Client, url: str, key: str, events: list[dict]) -> dict | None:
    """The 200 answer to one batch, or None when it was not acknowledged."""
    try:
        response = client.post(f"{url}/v1/events", json={"events": events},
                               headers={"X-Tailor-Key": key}, timeout=10.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def send_until_stopped(sender: int, url: str, key: str, ledger: Ledger,
                       stop: threading.Event) -> None:
    """Post new batches back to back until told to stop or the collector goes away."""
    with httpx.Client() as client:
        for number in range(10_000):
            if stop.is_set():
                return
            batch_id, events = f"{sender}-{number}", make_batch(sender, number)
            with ledger.lock:
                ledger.batches[batch_id] = events
            answer = post_batch(client, url, key, events)
            if answer is None:
                return  # the collector is gone: this batch waits for the retry
            with ledger.lock:
                ledger.answers[batch_id] = answer


def stored_event_ids(database_url: str) -> pd.Series:
    store = open_event_store(database_url)
    try:
        return store.events_after(0, 1_000_000)["event_id"]
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'events.db'}"
    return request.getfixturevalue("postgres_url")


def test_every_acknowledged_event_survives_a_kill_and_retries_store_nothing_twice(
        tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "home"
    key = create_key("secret", home / "collector_keys.json")
    collector = start_collector(home, database_url=database_url)
    ledger, stop = Ledger(), threading.Event()
    senders = [threading.Thread(target=send_until_stopped,
                                args=(n, collector.url, key, ledger, stop)) for n in range(SENDERS)]
    for thread in senders:
        thread.start()
    deadline = time.monotonic() + 60
    while len(ledger.answers) < ACKED_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.01)
    collector.kill()  # mid-stream: the senders have requests in flight
    stop.set()
    for thread in senders:
        thread.join(timeout=30)

    acknowledged = ledger.acknowledged_event_ids()
    assert len(ledger.answers) >= ACKED_BEFORE_KILL
    after_kill = set(stored_event_ids(database_url))
    assert acknowledged <= after_kill, f"{len(acknowledged - after_kill)} acknowledged events lost"

    unanswered = [batch_id for batch_id in ledger.batches if batch_id not in ledger.answers]
    assert unanswered, "the kill should have cut off batches in flight"
    restarted = start_collector(home, port=collector.port, database_url=database_url)
    try:
        with httpx.Client() as client:
            for batch_id in unanswered:
                answer = post_batch(client, restarted.url, key, ledger.batches[batch_id])
                assert answer is not None, f"retry of batch {batch_id} was refused"
                ledger.answers[batch_id] = answer
    finally:
        restarted.stop()

    sent = [event["event_id"] for events in ledger.batches.values() for event in events]
    stored = stored_event_ids(database_url)
    assert stored.is_unique
    assert set(stored) == set(sent)
    answers = list(ledger.answers.values())
    # Every event's final answer counts it once: as accepted, or as a duplicate when its
    # batch had been committed but the kill cut the answer off.
    assert sum(answer["accepted"] + answer["duplicates"] for answer in answers) == len(sent)
    assert sum(answer["accepted"] for answer in answers) <= len(stored)
    assert all(not answer["rejected"] for answer in answers)
