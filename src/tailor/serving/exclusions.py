"""Who must not be personalised: deleted and opted-out customers, re-read while serving.

Reads `<home>/privacy/tombstones.csv` (the forgotten customers, as keyed hashes:
`tailor.events.tombstones`) and `<home>/privacy/excluded_customers.csv` through
`tailor.privacy.opt_out_follower.ExclusionFollower` (the file is created, header only, when it
is missing). Looks at the files' modification times at most every `RECHECK_SECONDS` and reads
them only when they changed (only the appended rows after an opt-out), so an opt-out or a
forget takes effect within that interval and a request costs a set lookup (and one keyed hash
once any customer was forgotten).
"""

from __future__ import annotations

import logging

from tailor.config import Settings
from tailor.events.tombstones import TombstoneSet
from tailor.privacy.opt_out_follower import watched_exclusions
from tailor.watched_file import WatchedFile

log = logging.getLogger(__name__)

RECHECK_SECONDS = 0.05  # one stat of the file per 50 ms: an opt-out reaches serving within that


class ExclusionList:
    """The excluded customer ids, kept fresh (`watch`: the file, looked at every
    `recheck_seconds`)."""

    def __init__(self, settings: Settings, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.settings = settings
        self.last_error: str | None = None

        self.watch: WatchedFile[frozenset[str]] = watched_exclusions(settings, recheck_seconds)
        # A forgotten customer is excluded from the request after `tailor forget` wrote the
        # tombstone (within `recheck_seconds`), long before the stores are all cleaned.
        self.tombstones = TombstoneSet(settings.home_path, recheck_seconds=recheck_seconds)
        self.reload()

    @property
    def ids(self) -> frozenset[str]:
        """The ids read last."""
        return self.watch.value

    def __contains__(self, customer_id: str) -> bool:
        self._refresh(force=False)
        return customer_id in self.ids or self._forgotten(customer_id)

    def _forgotten(self, customer_id: str) -> bool:
        try:
            return self.tombstones.contains(customer_id)
        except (OSError, ValueError) as error:  # unreadable file or key: keep serving
            self.last_error = f"tombstones unreadable: {error}"
            log.error("serving: %s", self.last_error)
            return False

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
