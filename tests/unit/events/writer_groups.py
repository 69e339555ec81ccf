"""Drive the collector's writer with batches it must take as one group (test helper)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tailor.config import Settings
from tailor.events.collector.batches import Submission
from tailor.events.collector.metrics import CollectorMetrics
from tailor.events.collector.writer import BatchWriter


def run_one_group(settings: Settings, batches: list[list[Any]]) -> list[Any]:
    """Hand batches to a writer as one group (queued before it starts).

    Returns:
        Per batch, its result, or the exception its request would have been answered with.
    """
    writer = BatchWriter(settings, CollectorMetrics())
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    submissions = [Submission(events=events, received_at=now) for events in batches]
    for submission in submissions:
        writer._queue.put(submission)
    writer.start()
    outcomes = [submission.future.exception(timeout=30) or submission.future.result()
                for submission in submissions]
    writer.stop()
    return outcomes
