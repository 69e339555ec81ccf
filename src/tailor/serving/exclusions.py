"""Who must not be personalised: deleted and opted-out customers, re-read while serving.

Reads `<home>/privacy/excluded_customers.csv` through
`tailor.privacy.excluded_customers.excluded_customer_ids` (which creates it, header only,
when it is missing). Looks at the file's modification time at most every `RECHECK_SECONDS` and
re-reads it only when it changed, so an opt-out takes effect within seconds and a request
costs a set lookup.
"""

from __future__ import annotations

import logging
import threading
import time

from tailor.config import Settings
from tailor.privacy.excluded_customers import excluded_customer_ids, exclusions_path

log = logging.getLogger(__name__)

RECHECK_SECONDS = 2.0


class ExclusionList:
    """The excluded customer ids, kept fresh."""

    def __init__(self, settings: Settings, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.settings = settings
        self.recheck_seconds = recheck_seconds
        self.ids: frozenset[str] = frozenset()
        self.last_error: str | None = None
        self._mtime: int | None = None
        self._checked_at = -float("inf")
        self._lock = threading.Lock()
        self.reload()

    def __contains__(self, customer_id: str) -> bool:
        if time.monotonic() - self._checked_at >= self.recheck_seconds:
            self.reload()
        return customer_id in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def reload(self) -> None:
        """Re-read the list if the file changed; on a read error keep the ids known so far."""
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                path = exclusions_path(self.settings)
                mtime = path.stat().st_mtime_ns if path.exists() else None
                if mtime is not None and mtime == self._mtime:
                    return
                self.ids = excluded_customer_ids(self.settings)
                self._mtime = path.stat().st_mtime_ns
                self.last_error = None
            except OSError as error:
                self.last_error = f"exclusion list unreadable: {error}"
                log.error("serving: %s; keeping the %d ids read before", self.last_error,
                          len(self.ids))
