"""A daemon thread that does one round of work every few seconds until it is stopped.

Reads and writes nothing itself. Serving's model watcher (`tailor.serving.model_slots`) and
its sweeper of forgotten customers (`tailor.serving.forgotten_rows`) are such threads: a
subclass names its thread and says what one round (`tick`) does; the interval is read
before each wait, so it may be changed before `start`.
"""

from __future__ import annotations

import threading
from typing import Self


class PeriodicThread:
    """Calls `tick` every `interval_seconds` on a daemon thread, from `start` to `stop`."""

    thread_name = "tailor-periodic"
    interval_seconds: float

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One round of work (a subclass's; it guards its own errors)."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the thread (once); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name,
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; a round in progress finishes first (up to `timeout` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.tick()
