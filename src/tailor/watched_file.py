"""A file's content kept current in a long-running process: re-read when the file's
modification time moves, the time looked at no more often than a recheck interval.

Shared below everything: the collector's key ring (`events/keys.py`) and identity secret
(`events/identity.py`), serving's exclusion list (`serving/exclusions.py`). Reads the file
it is given (through the caller's `read`); writes nothing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
_NEVER_READ = object()  # the modification time before the first read (a missing file is None)


class WatchedFile(Generic[T]):
    """The value `read` made of the file's current version (`value`).

    Args:
        path: the file; None watches nothing and `value` stays `initial`.
        read: makes the value; called with the path, or with None while the file is
            missing. What it raises propagates from `refresh`, `value` stays as it was
            and the next look tries again.
        initial: the value before the first read.
        recheck_seconds: `refresh(force=False)` looks at the file at most this often.
        missing: the errors of looking at the file that mean it is missing (read(None)).
    """

    def __init__(self, path: Path | None, read: Callable[[Path | None], T], initial: T,
                 recheck_seconds: float,
                 missing: tuple[type[OSError], ...] = (FileNotFoundError,)) -> None:
        self.path = path
        self.read = read
        self.value = initial
        self.recheck_seconds = recheck_seconds
        self.missing = missing
        self._mtime: object = _NEVER_READ
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def refresh(self, force: bool = True) -> bool:
        """Look at the file (unless `force` is off and it was looked at within the recheck
        interval) and re-read it if its modification time moved.

        Returns:
            True when the file was read again.

        Raises:
            OSError: looking at the file failed other than by its being missing.
            Exception: whatever `read` raised.
        """
        now = time.monotonic()
        if self.path is None or (not force and self._checked_at is not None
                                 and now - self._checked_at < self.recheck_seconds):
            return False
        with self._lock:
            self._checked_at = now
            try:
                mtime: int | None = self.path.stat().st_mtime_ns
            except self.missing:
                mtime = None
            if mtime == self._mtime:
                return False
            self.value = self.read(self.path if mtime is not None else None)
            self._mtime = mtime
            return True

    def current(self) -> T:
        """The value, the file re-read first when the recheck interval has passed and it
        changed."""
        self.refresh(force=False)
        return self.value
