"""One promotion decision at a time per registered model, across processes.

Reads the tracking URI from the settings. Holds, while a training run reads the champion,
decides and moves the aliases:
  * a SQLite registry (the embedded default): an exclusive `flock` on
    `<registry file>.locks/<model>.lock` beside the database file (every process using that
    registry runs on this machine, since SQLite needs a local file);
  * a PostgreSQL registry: a session advisory lock in the registry's own database;
  * any other URI (an MLflow server over HTTP): a `flock` on `<home>/locks/<model>.lock`,
    which serializes the runs of this machine only (docs/operations.md says so).
Either kind is released by the kernel or the server when its process dies, so a killed
training run never leaves the lock held.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from tailor.config import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05


class PromotionLockTimeout(TimeoutError):
    """Another run of the same model held the promotion lock for longer than the setting."""


def lock_file(settings: Settings, registered_name: str) -> Path | None:
    """The lock file for `registered_name`, or None when the registry is on PostgreSQL."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        database = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        return database.with_name(database.name + ".locks") / f"{registered_name}.lock"
    if _postgres_url(uri) is not None:
        return None
    return settings.home_path / "locks" / f"{registered_name}.lock"


def _postgres_url(uri: str) -> str | None:
    """A psycopg URL for a `postgresql[+driver]://` tracking URI, else None."""
    parts = urlsplit(uri)
    if parts.scheme.split("+", 1)[0] not in {"postgresql", "postgres"}:
        return None
    return urlunsplit(parts._replace(scheme="postgresql"))


@contextmanager
def promotion_lock(settings: Settings, registered_name: str) -> Iterator[None]:
    """Hold the promotion lock of `registered_name` for the `with` block.

    Raises:
        PromotionLockTimeout: not acquired within `models.promotion_lock_seconds`.
    """
    timeout = settings.models_promotion_lock_seconds
    path = lock_file(settings, registered_name)
    if path is None:
        with _advisory_lock(_postgres_url(settings.tracking_uri) or "", registered_name,
                            timeout):
            yield
        return
    with _file_lock(path, registered_name, timeout):
        yield


@contextmanager
def _file_lock(path: Path, registered_name: str, timeout: float) -> Iterator[None]:
    """An exclusive `flock` on `path` (a new open file each time: threads exclude each other
    too), polled until `timeout`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = path.open("a")
    try:
        _wait_for(lambda: _try_flock(handle), registered_name, timeout, str(path))
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def _try_flock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def _advisory_lock(url: str, registered_name: str, timeout: float) -> Iterator[None]:
    """A session advisory lock in the registry's PostgreSQL database, polled until `timeout`."""
    import psycopg

    key = zlib.crc32(f"tailor.promotion.{registered_name}".encode())
    with psycopg.connect(url, autocommit=True) as connection:
        def attempt() -> bool:
            row = connection.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                     (0x7A11, key - 2**31)).fetchone()
            return bool(row and row[0])

        _wait_for(attempt, registered_name, timeout, "a PostgreSQL advisory lock")
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s, %s)", (0x7A11, key - 2**31))


def _wait_for(attempt: Callable[[], bool], registered_name: str, timeout: float,
              where: str) -> None:
    """Call `attempt()` until it returns True; log once when another run holds the lock."""
    deadline = time.monotonic() + timeout
    waited = False
    while not attempt():
        if not waited:
            log.info("%s: another training run is deciding its promotion; waiting for it (%s)",
                     registered_name, where)
            waited = True
        if time.monotonic() >= deadline:
            raise PromotionLockTimeout(
                f"{registered_name}: another training run held the promotion lock ({where}) "
                f"for more than {timeout:.0f} s (models.promotion_lock_seconds)")
        time.sleep(POLL_SECONDS)
