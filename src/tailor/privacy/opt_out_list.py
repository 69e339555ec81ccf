"""The opt-out list as a long-running collector holds it: the ids whose events it must drop,
kept current, and the changes its routes make.

Reads `<home>/privacy/excluded_customers.csv` through `ExclusionFollower` (only the appended
rows after an opt-out), looking at its modification time at most every `RECHECK_SECONDS`;
writes it (and the audit log) through `tailor.privacy.opt_out`. Handed to the collector app
by `tailor collect` and the BentoML service (the event layer never imports privacy): it is
the collector's `OptOutRegistry`.
"""

from __future__ import annotations

import logging

from tailor.config import Settings
from tailor.privacy.opt_out import OptOutChange, opt_in, opt_out
from tailor.privacy.opt_out_follower import watched_exclusions
from tailor.watched_file import WatchedFile

log = logging.getLogger(__name__)

# A look costs one stat of the file (a few microseconds); 50 ms bounds how long a change made
# by another process (`tailor opt-out`, another worker) takes to reach this one.
RECHECK_SECONDS = 0.05


class OptOutList:
    """Opted-out and deleted ids for the collector, and the opt-out / opt-in it performs.

    Args:
        settings: whose home holds the list.
        recheck_seconds: how often `blocked_ids` looks at the file.
    """

    def __init__(self, settings: Settings, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.settings = settings
        self.watch: WatchedFile[frozenset[str]] = watched_exclusions(settings, recheck_seconds)
        self._refresh(force=True)

    def blocked_ids(self) -> frozenset[str]:
        """The ids whose events are dropped; on a read error, the ids read before (logged)."""
        self._refresh(force=False)
        return self.watch.value

    def opt_out(self, customer_id: str, source: str) -> OptOutChange:
        """Opt an id out (`tailor.privacy.opt_out.opt_out`); this process sees it at once."""
        change = opt_out(self.settings, customer_id, source)
        self._refresh(force=True)
        return change

    def opt_in(self, customer_id: str, source: str) -> OptOutChange:
        """Take an id's opt-out back (`tailor.privacy.opt_out.opt_in`)."""
        change = opt_in(self.settings, customer_id, source)
        self._refresh(force=True)
        return change

    def _refresh(self, force: bool) -> None:
        try:
            self.watch.refresh(force=force)
        except OSError as error:
            log.error("collector: opt-out list unreadable (%s); keeping the %d ids read before",
                      error, len(self.watch.value))
