"""The daily incentive budget's ledger on SQLite (a file in tmp) and on the real Redis (a
key prefix of its own, `ledger_factory` in `tests/serving_fixtures.py`), alone and under
concurrent threads and processes. In the checkout answers: `tests/integration/serving/
test_budget_offers.py`."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import date
from pathlib import Path

import pytest

from tailor.serving.budget import KEEP_SECONDS, LedgerUnavailable, RedisLedger, SQLiteLedger

TODAY, TOMORROW = date(2026, 5, 1), date(2026, 5, 2)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_reservations_stop_at_the_budget_and_each_day_has_its_own(ledger_factory) -> None:
    ledger = ledger_factory(10.0)
    granted = [ledger.reserve(cost, TODAY) for cost in (4.0, 4.0, 4.0, 2.0, 0.01)]
    assert [r.granted for r in granted] == [True, True, False, True, False]
    assert [r.spent for r in granted] == pytest.approx([4.0, 8.0, 8.0, 10.0, 10.0])
    assert ledger.spent(TODAY) == pytest.approx(10.0)
    assert ledger.reserve(3.0, TOMORROW).granted and ledger.spent(TOMORROW) == pytest.approx(3.0)
    if isinstance(ledger, RedisLedger):  # each day's key expires after two days
        import redis

        ttl = redis.Redis.from_url(ledger.url).ttl(ledger.prefix + TODAY.isoformat())
        assert 0 < ttl <= KEEP_SECONDS


def test_concurrent_threads_never_commit_more_than_the_budget(ledger_factory) -> None:
    ledger = ledger_factory(50.0)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        for _ in range(15):
            granted = ledger.reserve(1.0, TODAY).granted
            with lock:
                outcomes.append(granted)

    threads = [threading.Thread(target=spend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 90 and outcomes.count(True) == 50
    assert ledger.spent(TODAY) == pytest.approx(50.0)


def test_concurrent_processes_never_commit_more_than_the_budget(ledger_factory) -> None:
    ledger = ledger_factory(40.0)
    script = textwrap.dedent(f"""
        from datetime import date
        from tailor.serving.budget import RedisLedger, SQLiteLedger
        ledger = {ledger.spec}
        print(sum(ledger.reserve(1.0, date(2026, 5, 1)).granted for _ in range(25)))
    """)
    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    granted = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        granted.append(int(out.strip()))
    assert sum(granted) == 40
    assert ledger.spent(TODAY) == pytest.approx(40.0)


def test_an_unreachable_ledger_raises(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable, match="Redis incentive ledger"):
        RedisLedger(f"redis://127.0.0.1:{closed_port()}/0", 10.0).reserve(1.0)
    (tmp_path / "a-folder.db").mkdir()
    with pytest.raises(LedgerUnavailable, match="SQLite incentive ledger"):
        SQLiteLedger(tmp_path / "a-folder.db", 10.0).reserve(1.0)


def test_a_locked_sqlite_ledger_fails_closed_rather_than_waiting(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "budget.db", 10.0)
    assert ledger.reserve(1.0, TODAY).granted
    holder = sqlite3.connect(tmp_path / "budget.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(LedgerUnavailable, match="locked"):
            ledger.reserve(1.0, TODAY)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ledger.spent(TODAY) == pytest.approx(1.0)


def test_release_gives_a_reservation_back_and_never_goes_below_zero(ledger_factory) -> None:
    ledger = ledger_factory(10.0)
    assert ledger.reserve(4.0, TODAY).granted and ledger.reserve(5.0, TODAY).granted
    assert not ledger.reserve(2.0, TODAY).granted
    assert ledger.release(4.0, TODAY) == pytest.approx(5.0)
    assert ledger.reserve(2.0, TODAY).granted and ledger.spent(TODAY) == pytest.approx(7.0)
    assert ledger.release(100.0, TODAY) == 0.0 and ledger.spent(TODAY) == 0.0
    assert ledger.release(1.0, TOMORROW) == 0.0 and ledger.spent(TOMORROW) == 0.0
