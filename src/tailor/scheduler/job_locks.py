"""One lock per scheduled job, so two schedulers never run the same job at once.

Writes `<home>/locks/schedule/<job>.lock` (the holder's pid) and holds an exclusive `flock`
on it for the whole run. The scheduler passes the locked descriptor on to the job's process,
so the lock lives exactly as long as the run: a scheduler killed mid-job leaves it held
until the job itself ends, and once both are gone the kernel has released it (a killed job
never leaves a lock behind). With `database_url` on PostgreSQL the scheduler also holds a
session advisory lock in that database, which keeps schedulers on different machines that
share the event store (but not a home) apart; the server drops it with the connection.
Locks are tried, never waited for: a job held elsewhere is skipped this round.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator
from urllib.parse import urlsplit, urlunsplit

from tailor.config import Settings

ADVISORY_CLASS = 0x7A12  # the first key of every scheduler advisory lock (promotion: 0x7A11)


class LockUnavailable(ConnectionError):
    """PostgreSQL, which holds the scheduler's advisory locks, cannot be reached."""


@dataclass
class HeldLock:
    """A lock this process holds: the descriptor a job's process inherits."""

    file: IO[str]

    @property
    def fd(self) -> int:
        return self.file.fileno()


def lock_path(settings: Settings, job_name: str) -> Path:
    return settings.home_path / "locks" / "schedule" / f"{job_name}.lock"


@contextmanager
def job_lock(settings: Settings, job_name: str) -> Iterator[HeldLock | None]:
    """Try to take the job's lock for the block; yields None when another holds it.

    Raises:
        LockUnavailable: PostgreSQL (for the advisory lock) cannot be reached.
    """
    path = lock_path(settings, job_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        url = _postgres_url(settings.database_url)
        if url is None:
            yield HeldLock(handle)
            return
        with _advisory_lock(url, job_name) as held:
            yield HeldLock(handle) if held else None
    finally:
        handle.close()


def _postgres_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0] not in {"postgresql", "postgres"}:
        return None
    return urlunsplit(parts._replace(scheme="postgresql"))


@contextmanager
def _advisory_lock(url: str, job_name: str) -> Iterator[bool]:
    """Try a session advisory lock on the job's key; held while the connection lives."""
    import psycopg

    key = zlib.crc32(f"tailor.schedule.{job_name}".encode()) - 2**31
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise LockUnavailable(" ".join(str(error).split())) from None
    with connection:
        row = connection.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                 (ADVISORY_CLASS, key)).fetchone()
        held = bool(row and row[0])
        try:
            yield held
        finally:
            if held and not connection.closed:  # a dropped connection has released it
                connection.execute("SELECT pg_advisory_unlock(%s, %s)", (ADVISORY_CLASS, key))
