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

from tailor.serving.budget import (
    KEEP_SECONDS,
    RECHECK_SECONDS,
    LeasedLedger,
    LedgerUnavailable,
    RedisLedger,
    SQLiteLedger,
)

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


def granted_in_processes(script: str, count: int) -> list[int]:
    """Run `script` in `count` Python processes at once; the number each one printed (the
    reservations it was granted)."""
    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(count)]
    granted = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        granted.append(int(out.strip()))
    return granted


def test_concurrent_processes_never_commit_more_than_the_budget(ledger_factory) -> None:
    ledger = ledger_factory(40.0)
    script = textwrap.dedent(f"""
        from datetime import date
        from tailor.serving.budget import RedisLedger, SQLiteLedger
        ledger = {ledger.spec}
        print(sum(ledger.reserve(1.0, date(2026, 5, 1)).granted for _ in range(25)))
    """)
    granted = granted_in_processes(script, 4)
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


class Counted:
    """A shared ledger that counts the reservations reaching it."""

    def __init__(self, inner) -> None:
        self.inner, self.backend, self.budget, self.calls = inner, inner.backend, inner.budget, 0

    def reserve(self, cost, day=None):
        self.calls += 1
        return self.inner.reserve(cost, day)

    def release(self, cost, day=None):
        return self.inner.release(cost, day)

    def spent(self, day=None):
        return self.inner.spent(day)


def test_workers_grant_from_slices_and_never_commit_more_than_the_budget(ledger_factory
                                                                         ) -> None:
    shared = Counted(ledger_factory(100.0))
    workers = [LeasedLedger(shared, 5.0) for _ in range(3)]
    granted = [0.0] * 3
    for turn in range(400):  # costs 0.25 .. 1.5, the workers in turn
        cost = 0.25 * (1 + turn % 6)
        if workers[turn % 3].reserve(cost, TODAY).granted:
            granted[turn % 3] += cost
    assert sum(granted) <= 100.0 + 1e-6 and shared.spent(TODAY) <= 100.0 + 1e-6
    assert sum(granted) >= 100.0 - 3 * 5.0  # at most a slice per worker left unspent
    assert shared.calls < 60  # about one ledger call per slice, not 400 (or one per offer)
    assert shared.spent(TODAY) == pytest.approx(sum(granted) + sum(w._left for w in workers))


def test_the_ledgers_last_bit_is_granted_and_a_refusal_is_asked_again_later(tmp_path: Path
                                                                            ) -> None:
    now = [0.0]
    shared = Counted(SQLiteLedger(tmp_path / "budget.db", 10.0))
    worker = LeasedLedger(shared, 4.0, clock=lambda: now[0])
    assert all(worker.reserve(4.0, TODAY).granted for _ in range(2))  # two slices of 4
    assert worker.reserve(1.5, TODAY).granted  # the last 2 are taken, not refused
    assert shared.spent(TODAY) == pytest.approx(10.0)
    assert worker.reserve(0.5, TODAY).granted  # from what is left of the last bit
    calls = shared.calls
    refused = worker.reserve(1.0, TODAY)
    assert not refused.granted and refused.spent == pytest.approx(10.0)
    assert not worker.reserve(2.0, TODAY).granted and shared.calls == calls + 1  # remembered
    shared.release(3.0, TODAY)  # another worker gives a reservation back
    assert not worker.reserve(1.0, TODAY).granted  # not asked again yet
    now[0] += RECHECK_SECONDS + 0.1
    assert worker.reserve(1.0, TODAY).granted  # a slice of 4 refused, the 3 left taken
    assert shared.calls == calls + 3 and shared.spent(TODAY) == pytest.approx(10.0)


def test_a_release_returns_to_the_slice_and_a_new_day_starts_without_one(tmp_path: Path
                                                                         ) -> None:
    shared = Counted(SQLiteLedger(tmp_path / "budget.db", 10.0))
    worker = LeasedLedger(shared, 3.0)
    assert worker.reserve(2.0, TODAY).granted and shared.calls == 1
    worker.release(2.0, TODAY)  # the offer was never shown
    assert worker.reserve(3.0, TODAY).granted and shared.calls == 1  # the slice, whole again
    assert worker.reserve(1.0, TOMORROW).granted and shared.calls == 2
    assert shared.spent(TODAY) == pytest.approx(3.0)  # the old day's slice stays counted
    assert shared.spent(TOMORROW) == pytest.approx(3.0)
    worker.release(1.0, TODAY)  # a reservation of an earlier day goes to the shared ledger
    assert shared.spent(TODAY) == pytest.approx(2.0)


def test_closing_gives_the_unused_slice_back(tmp_path: Path) -> None:
    shared = SQLiteLedger(tmp_path / "budget.db", 50.0)
    worker = LeasedLedger(shared, 5.0)
    assert worker.reserve(1.25).granted and worker.unused == pytest.approx(3.75)
    assert shared.spent() == pytest.approx(5.0)
    worker.close()
    assert shared.spent() == pytest.approx(1.25) and worker.unused == 0.0


def test_a_slice_outlives_an_unreachable_ledger_then_fails_closed() -> None:
    unreachable = RedisLedger(f"redis://127.0.0.1:{closed_port()}/0", 10.0)
    worker = LeasedLedger(unreachable, 2.0)
    worker._start(TODAY.isoformat())
    worker._left = 1.0  # what was left of a slice taken before Redis went away
    assert worker.reserve(0.75, TODAY).granted
    with pytest.raises(LedgerUnavailable, match="Redis incentive ledger"):
        worker.reserve(0.75, TODAY)


def test_concurrent_leased_processes_never_commit_more_than_the_budget(ledger_factory
                                                                       ) -> None:
    ledger = ledger_factory(40.0)
    script = textwrap.dedent(f"""
        from datetime import date
        from tailor.serving.budget import LeasedLedger, RedisLedger, SQLiteLedger
        worker = LeasedLedger({ledger.spec}, 3.0)
        print(sum(worker.reserve(1.0).granted for _ in range(25)))
        worker.close()
    """)
    granted = granted_in_processes(script, 4)
    assert 40 - 3 * 3 <= sum(granted) <= 40
    assert ledger.spent() == pytest.approx(sum(granted))  # the unused slices given back


def test_the_settings_lease_a_share_of_the_budget(tmp_path: Path) -> None:
    from tailor.config import load_settings
    from tailor.serving.budget import open_ledger

    settings = load_settings(home=tmp_path, env={})
    leased = open_ledger(settings.replace(serving_daily_incentive_budget=200.0))
    assert isinstance(leased, LeasedLedger) and leased.lease == pytest.approx(2.0)
    assert leased.inner.path == tmp_path / "incentive_budget.db"
    shared = open_ledger(settings.replace(serving_incentive_lease=0.0))
    assert isinstance(shared, SQLiteLedger)
