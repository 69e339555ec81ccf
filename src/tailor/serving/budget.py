"""The daily incentive budget of the checkout offers: a spend ledger shared by every worker.

Reads and writes one running total per UTC day: in Redis (`settings.redis_url` set) under
`tailor:incentive_budget:<YYYY-MM-DD>`, kept two days; else in SQLite at
`<home>/incentive_budget.db`, table `incentive_spend(day, spent)`. Nothing else.

`reserve(cost)` adds an offer's expected cost to today's total only when the total stays
within `serving.daily_incentive_budget`, atomically across threads, worker processes and
servers (a Lua script in Redis; a `BEGIN IMMEDIATE` transaction in SQLite, in WAL mode on
one connection per thread), so concurrent
offers never commit more than the budget. `release(cost)` gives back a reservation whose
offer was never shown (its request ran out of time). A ledger that cannot be reached raises
`LedgerUnavailable`: the caller offers nothing (fail closed). The checkout decisions reach
the ledger through `tailor.serving.offer_budget`.

A server does not go to the shared ledger for every offer: `LeasedLedger` (what `open_ledger`
gives when `serving.incentive_lease` > 0) reserves a slice of the day's budget at a time and
grants offers from it in memory, so a worker commits one ledger transaction per slice rather
than one (with an fsync on SQLite) per offer. The day's total then counts the slices: it never
exceeds the budget; a slice a worker holds is spent only by that worker's offers; a worker that
stops gives its unused slice back (one that is killed leaves it counted, offering less that
day, never more).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from tailor.config import Settings

log = logging.getLogger(__name__)

REDIS_PREFIX = "tailor:incentive_budget:"
KEEP_SECONDS = 2 * 86_400  # a day's key outlives the day it counts
SQLITE_FILE = "incentive_budget.db"
SQLITE_TIMEOUT_SECONDS = 1.0
EPSILON = 1e-9  # float sums: a cost that fits exactly is not refused by rounding
RECHECK_SECONDS = 1.0  # a refused slice is asked for again after this long (a release elsewhere)

# KEYS[1] the day's key; ARGV cost, budget, seconds to keep. Returns {granted, spent}.
RESERVE_SCRIPT = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost = tonumber(ARGV[1])
if spent + cost > tonumber(ARGV[2]) + 1e-9 then
  return {0, tostring(spent)}
end
spent = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, tostring(spent)}
"""
# KEYS[1] the day's key; ARGV cost. Returns the day's total after giving the cost back (>= 0).
RELEASE_SCRIPT = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0') - tonumber(ARGV[1])
if spent < 0 then spent = 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[1], tostring(spent), 'KEEPTTL')
end
return tostring(spent)
"""


class LedgerUnavailable(RuntimeError):
    """The ledger could not be read or written; the message says why."""


@dataclass(frozen=True)
class Reservation:
    """The answer to one reservation.

    Attributes:
        granted: the cost was added to the day's total.
        spent: the day's total after the call.
        budget: the day's budget.
    """

    granted: bool
    spent: float
    budget: float


class Ledger(Protocol):
    """Where the day's incentive spend is counted."""

    budget: float
    backend: str

    def reserve(self, cost: float, day: date | None = None) -> Reservation: ...

    def release(self, cost: float, day: date | None = None) -> float: ...

    def spent(self, day: date | None = None) -> float: ...


def _today(day: date | None) -> str:
    return (day or datetime.now(timezone.utc).date()).isoformat()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class RedisLedger:
    """The ledger in Redis: one float per day, reserved by a Lua script.

    Args:
        url: redis://host:port/db.
        budget: currency per UTC day.
        prefix: key prefix (tests use their own).
        timeout_seconds: socket timeout; a slower Redis counts as unavailable.
    """

    backend = "redis"

    def __init__(self, url: str, budget: float, *, prefix: str = REDIS_PREFIX,
                 timeout_seconds: float = 0.25) -> None:
        import redis

        self.budget = float(budget)
        self.url = url
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_seconds,
                                            socket_connect_timeout=timeout_seconds)
        self._script = self._client.register_script(RESERVE_SCRIPT)
        self._release_script = self._client.register_script(RELEASE_SCRIPT)

    def reserve(self, cost: float, day: date | None = None) -> Reservation:
        import redis

        try:
            granted, spent = self._script(keys=[self.prefix + _today(day)],
                                          args=[repr(float(cost)), repr(self.budget),
                                                KEEP_SECONDS])
        except redis.RedisError as error:
            raise LedgerUnavailable(f"Redis incentive ledger: {_describe(error)}") from error
        return Reservation(bool(int(granted)), float(spent), self.budget)

    def release(self, cost: float, day: date | None = None) -> float:
        """Give back a reserved cost (never below 0); returns the day's total after."""
        import redis

        try:
            spent = self._release_script(keys=[self.prefix + _today(day)],
                                         args=[repr(float(cost))])
        except redis.RedisError as error:
            raise LedgerUnavailable(f"Redis incentive ledger: {_describe(error)}") from error
        return float(spent)

    def spent(self, day: date | None = None) -> float:
        import redis

        try:
            value: Any = self._client.get(self.prefix + _today(day))
        except redis.RedisError as error:
            raise LedgerUnavailable(f"Redis incentive ledger: {_describe(error)}") from error
        return float(value) if value is not None else 0.0


class SQLiteLedger:
    """The ledger in a SQLite file: one row per day, reserved in a write transaction.

    Args:
        path: the database file (created with its table on first use).
        budget: currency per UTC day.
    """

    backend = "sqlite"

    def __init__(self, path: Path, budget: float) -> None:
        self.path = Path(path)
        self.budget = float(budget)
        self._ready = False
        self._lock = threading.Lock()
        self._local = threading.local()  # one open connection per thread

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the table created) on first use."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if not self._ready:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._ready = True
        connection = self._open()
        try:
            # WAL: a reservation commits with one fsync of the log (synchronous FULL, so a
            # power loss forgets none), not a rollback journal created and deleted each time
            # (measured: 150 us of CPU and 3 ms instead of 790 us and 17 ms per reservation).
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("CREATE TABLE IF NOT EXISTS incentive_spend "
                               "(day TEXT PRIMARY KEY, spent REAL NOT NULL)")
        except sqlite3.Error:
            connection.close()
            raise
        self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        """Forget this thread's connection after an error (the next call opens a new one)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                pass

    def _open(self) -> sqlite3.Connection:
        # isolation_level None: the transactions below are begun and ended explicitly.
        return sqlite3.connect(self.path, timeout=SQLITE_TIMEOUT_SECONDS, isolation_level=None,
                               check_same_thread=False)

    def reserve(self, cost: float, day: date | None = None) -> Reservation:
        def add(spent: float) -> tuple[float, bool]:
            granted = spent + cost <= self.budget + EPSILON
            return (spent + cost if granted else spent), granted

        spent, granted = self._update(_today(day), add)
        return Reservation(granted, spent, self.budget)

    def release(self, cost: float, day: date | None = None) -> float:
        """Give back a reserved cost (never below 0); returns the day's total after."""
        return self._update(_today(day), lambda spent: (max(spent - cost, 0.0), True))[0]

    def _update(self, key: str, change: Callable[[float], tuple[float, bool]]
                ) -> tuple[float, bool]:
        """Apply `change` (old total -> (new total, write it?)) to the day's total in one
        write transaction; returns what `change` returned."""
        try:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")  # the write lock, before reading
                spent, write = change(self._read(connection, key))
                if write:
                    connection.execute(
                        "INSERT INTO incentive_spend (day, spent) VALUES (?, ?) "
                        "ON CONFLICT(day) DO UPDATE SET spent = excluded.spent", (key, spent))
                connection.execute("COMMIT")
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
        except sqlite3.Error as error:
            self._drop_connection()
            raise LedgerUnavailable(f"SQLite incentive ledger {self.path}: "
                                    f"{_describe(error)}") from error
        return spent, write

    def spent(self, day: date | None = None) -> float:
        try:
            return self._read(self._connect(), _today(day))
        except sqlite3.Error as error:
            self._drop_connection()
            raise LedgerUnavailable(f"SQLite incentive ledger {self.path}: "
                                    f"{_describe(error)}") from error

    @staticmethod
    def _read(connection: sqlite3.Connection, key: str) -> float:
        row = connection.execute("SELECT spent FROM incentive_spend WHERE day = ?",
                                 (key,)).fetchone()
        return float(row[0]) if row else 0.0


class LeasedLedger:
    """A shared ledger reached once per slice of the day's budget, not once per offer.

    `reserve(cost)` takes the cost from the slice this process holds; when the slice cannot
    cover it, reserves another slice of `lease` (or `cost`, if larger) in the shared ledger,
    and when the ledger cannot spare that, whatever it has left that covers `cost`. A refusal
    is remembered for `RECHECK_SECONDS` for costs at least as large (the ledger is asked again
    after that, for a reservation given back elsewhere). `release(cost)` returns the cost to
    the slice. A new UTC day starts with no slice; the last day's remainder is left counted
    in that day's total. `close()` gives the unused slice back to the shared ledger.

    `Reservation.spent` is the shared total as last seen (slices of every worker counted).

    Args:
        inner: the shared ledger (`RedisLedger` or `SQLiteLedger`).
        lease: the slice reserved at a time, in currency.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, inner: Ledger, lease: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.budget = inner.budget
        self.lease = float(lease)
        self._clock = clock
        self._lock = threading.Lock()
        self._day = ""
        self._left = 0.0  # of this process's slice, for self._day
        self._seen = 0.0  # the shared total as last seen, for self._day
        self._refused_from = float("inf")  # costs >= this are refused ...
        self._refused_until = 0.0  # ... until this clock time

    @property
    def unused(self) -> float:
        """What is left of this process's slice today."""
        with self._lock:
            return self._left if self._day == _today(None) else 0.0

    def reserve(self, cost: float, day: date | None = None) -> Reservation:
        key = _today(day)
        with self._lock:
            self._start(key)
            if cost <= self._left + EPSILON:
                self._left = max(self._left - cost, 0.0)
                return Reservation(True, self._seen, self.budget)
            if cost >= self._refused_from and self._clock() < self._refused_until:
                return Reservation(False, self._seen, self.budget)
            size = max(self.lease, cost)
            taken = self.inner.reserve(size, day)
            rest = self.budget - taken.spent
            if not taken.granted and rest + EPSILON >= cost:  # the ledger's last bit
                size = min(size, rest)
                taken = self.inner.reserve(size, day)
            self._seen = taken.spent
            if not taken.granted:
                now = self._clock()
                self._refused_from = min(self._refused_from, cost) \
                    if now < self._refused_until else cost
                self._refused_until = now + RECHECK_SECONDS
                return Reservation(False, taken.spent, self.budget)
            self._left = max(self._left + size - cost, 0.0)
            return Reservation(True, taken.spent, self.budget)

    def _start(self, key: str) -> None:
        """Forget the slice of an earlier day (under the lock)."""
        if key != self._day:
            self._day, self._left, self._seen = key, 0.0, 0.0
            self._refused_from, self._refused_until = float("inf"), 0.0

    def release(self, cost: float, day: date | None = None) -> float:
        """Give back a reserved cost to this process's slice; returns the shared total as last
        seen. A cost of another day goes back to the shared ledger."""
        key = _today(day)
        with self._lock:
            if key == self._day:
                self._left += cost
                return self._seen
        return self.inner.release(cost, day)

    def spent(self, day: date | None = None) -> float:
        """The shared total: offers granted and every worker's unused slice."""
        return self.inner.spent(day)

    def close(self) -> None:
        """Give this process's unused slice back to the shared ledger (logged if it fails)."""
        with self._lock:
            left, day, self._left = self._left, self._day, 0.0
        if left > EPSILON and day == _today(None):
            try:
                self.inner.release(left)
            except LedgerUnavailable as error:
                log.warning("an unused incentive slice of %.2f could not be given back: %s",
                            left, error)


def open_ledger(settings: Settings) -> Ledger:
    """The ledger the settings name: Redis when `redis_url` is set, else SQLite in the home;
    reached a slice (`serving.incentive_lease` of the budget) at a time when that is above 0."""
    budget = settings.serving_daily_incentive_budget
    shared: Ledger
    if settings.redis_url:
        shared = RedisLedger(settings.redis_url, budget,
                             timeout_seconds=settings.features_online_timeout_ms / 1000)
    else:
        shared = SQLiteLedger(settings.home_path / SQLITE_FILE, budget)
    if settings.serving_incentive_lease > 0 and budget > 0:
        return LeasedLedger(shared, budget * settings.serving_incentive_lease)
    return shared
