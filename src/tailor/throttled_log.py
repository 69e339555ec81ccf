"""Logging that says a repeated error once per interval, with a count, instead of every time.

Reads and writes nothing but log records. A fault that lasts (a full disk, a read-only
home, a database that went away) fails every request the same way; logging each one
with its traceback filled the collector's log with thousands of identical pairs. With
`ThrottledLog`, the first occurrence of an error is logged in full (traceback included),
later identical ones within `interval_seconds` are only counted, and the next one after
the interval is logged with how many were held back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

DEFAULT_INTERVAL_SECONDS = 60.0


@dataclass
class _Seen:
    """When an error was last written to the log, and how many were held back since."""

    logged_at: float
    held_back: int = 0


def error_key(error: BaseException) -> str:
    """What makes two errors "identical": their type and (the start of) their message."""
    return f"{type(error).__name__}: {str(error)[:200]}"


class ThrottledLog:
    """Writes each distinct message at most once per interval to a logger, with a count.

    Args:
        logger: where the records go.
        interval_seconds: how long an identical message stays quiet after being logged.
        clock: monotonic seconds (a parameter so tests need not sleep).
    """

    def __init__(self, logger: logging.Logger,
                 interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: str, message: str, *args: object,
            exc_info: BaseException | None = None) -> bool:
        """Log `message % args` unless `key` was logged within the interval.

        Args:
            level: a `logging` level.
            key: what identifies "the same error" (e.g. `error_key(error)` plus where).
            message, args: the log message, as for `Logger.log`.
            exc_info: an exception whose traceback goes with the record (first time only).

        Returns:
            True when a record was written, False when it was only counted.
        """
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.logged_at < self.interval_seconds:
                seen.held_back += 1
                return False
            held_back = seen.held_back if seen is not None else 0
            self._seen[key] = _Seen(logged_at=now)
            if len(self._seen) > 1000:  # many distinct keys: forget the stale ones
                self._forget_before(now - self.interval_seconds)
        if held_back:
            message += f" (and {held_back} more like it in the last %.0f s)"
            args = (*args, self.interval_seconds)
        traceback = exc_info if seen is None else None  # the full traceback once per key
        self.logger.log(level, message, *args, exc_info=traceback)
        return True

    def _forget_before(self, moment: float) -> None:
        self._seen = {key: seen for key, seen in self._seen.items()
                      if seen.logged_at >= moment or seen.held_back}
