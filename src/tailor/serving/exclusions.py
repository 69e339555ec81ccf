"""Who must not be personalised: deleted and opted-out customers, re-read while serving.

Reads `<home>/privacy/excluded_customers.csv` through
`tailor.privacy.excluded_customers.excluded_customer_ids` (which creates it, header only,
when it is missing). Looks at the file's modification time at most every `RECHECK_SECONDS` and
re-reads it only when it changed, so an opt-out takes effect within seconds and a request
costs a set lookup.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tailor.config import Settings
from tailor.privacy.excluded_customers import excluded_customer_ids, exclusions_path
from tailor.watched_file import WatchedFile

log = logging.getLogger(__name__)

RECHECK_SECONDS = 2.0


class ExclusionList:
    """The excluded customer ids, kept fresh (`watch`: the file, looked at every
    `recheck_seconds`)."""

    def __init__(self, settings: Settings, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.settings = settings
        self.last_error: str | None = None

        def read(_path: Path | None) -> frozenset[str]:  # creates the file when missing
            return excluded_customer_ids(settings)

        self.watch: WatchedFile[frozenset[str]] = WatchedFile(
            exclusions_path(settings), read, frozenset(), recheck_seconds)
        self.reload()

    @property
    def ids(self) -> frozenset[str]:
        """The ids read last."""
        return self.watch.value

    def __contains__(self, customer_id: str) -> bool:
        self._refresh(force=False)
        return customer_id in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def reload(self) -> None:
        """Re-read the list if the file changed; on a read error keep the ids known so far."""
        self._refresh(force=True)

    def _refresh(self, force: bool) -> None:
        try:
            if self.watch.refresh(force=force):
                self.last_error = None
        except OSError as error:
            self.last_error = f"exclusion list unreadable: {error}"
            log.error("serving: %s; keeping the %d ids read before", self.last_error,
                      len(self.ids))
