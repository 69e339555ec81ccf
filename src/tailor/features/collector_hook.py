"""The event collector's commit hook that keeps session features live in the online store.

Reads the events the collector has just committed (handed over by its writer thread);
writes nothing itself: it queues them for the process's background session pusher
(`tailor.features.realtime`), which writes the online store. Built by whoever builds the
collector (`tailor collect`, the BentoML service), so the event layer never imports
features.
"""

from __future__ import annotations

import pandas as pd

from tailor.config import Settings
from tailor.events.collector.writer import CommitHook
from tailor.features.realtime import background_pusher, notify_events_committed

PUSHER_START_SECONDS = 10.0  # the longest the writer waits for the session pusher to start


def session_feature_hook(settings: Settings) -> CommitHook:
    """A commit hook that folds committed events into session features and pushes them.

    Args:
        settings: the collector's settings (its home, feature project and Redis URL pick
            the pusher).

    Returns:
        A `CommitHook` whose start waits (at most `PUSHER_START_SECONDS`) for the pusher to
        open the feature store, and whose `committed` queues events without raising or
        blocking. Its stop does nothing: the pusher is the process's and outlives the app.
    """

    def start() -> None:
        # The pusher's first start imports the feature code (most of a second of CPU, more
        # with a Feast repo): done before the collector's first batch, not during it.
        background_pusher(settings).ready.wait(PUSHER_START_SECONDS)

    def committed(events: pd.DataFrame) -> None:
        notify_events_committed(settings, events)

    return CommitHook(committed=committed, start=start)
