"""Store writes that survive a dropped database connection: retried with backoff, exactly once.

Reads and writes the event store it is handed (through the `EventStore` interface only).
A PostgreSQL server may end the importer's connection mid-chunk (a restart, a failover,
`pg_terminate_backend`); the store reconnects on its next call, so the write is simply
tried again, after `backoff_seconds`, then twice that, and so on, `retries` times.
Re-running a chunk stores nothing twice (events are keyed by `event_id`), and the counts
stay exact even when the lost answer was to a COMMIT that did happen: before the first
attempt the store's highest `seq` is noted, and a retry counts the batch's events stored
above it as already inserted. Dead letters of a chunk are written once: a retry first asks
whether the batch already holds more of them than the chunks before wrote.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from tailor.events.store import EventStore, StoreUnavailable, connection_lost

if TYPE_CHECKING:  # frames only in annotations: the serving writers import no pandas
    import pandas as pd

log = logging.getLogger(__name__)

Result = TypeVar("Result")


@dataclass(frozen=True)
class RetryPolicy:
    """How often a write is tried again after the store's connection dropped.

    Attributes:
        retries: attempts after the first (0 = give up at once).
        backoff_seconds: wait before the first retry; each further wait doubles.
        on_retry: told the error (one line) before each retry, e.g. to report them.
    """

    retries: int = 0
    backoff_seconds: float = 0.0
    on_retry: Callable[[str], None] | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> "RetryPolicy":
        """The policy of `ingest.retries` and `ingest.retry_backoff_seconds`."""
        return cls(settings.ingest_retries, settings.ingest_retry_backoff_seconds)

    def wait(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        return self.backoff_seconds * 2 ** (retry - 1)


def with_retries(operation: Callable[[int], Result], what: str, policy: RetryPolicy,
                 sleep: Callable[[float], None] = time.sleep) -> Result:
    """Run `operation(attempt)` (attempt 0 first), again after each dropped connection.

    Args:
        operation: the write; it gets the attempt number so that a retry can first find
            out what the lost attempt did.
        what: the write in words, for the log and the error ("chunk 3 of events.csv").
        policy: retries and backoff.
        sleep: how to wait (tests pass a recorder).

    Returns:
        What `operation` returned.

    Raises:
        StoreUnavailable: the connection dropped on every attempt (the last error chained).
        Exception: any other error of `operation`, at once (data errors are not retried).
    """
    attempt = 0
    while True:
        try:
            return operation(attempt)
        except Exception as error:
            if not connection_lost(error):
                raise
            if attempt >= policy.retries:
                raise StoreUnavailable(
                    f"the event store connection failed {attempt + 1} time(s) while writing "
                    f"{what}: {type(error).__name__}: {one_line(error)}") from error
            attempt += 1
            delay = policy.wait(attempt)
            if policy.on_retry is not None:
                policy.on_retry(f"{type(error).__name__}: {one_line(error)}")
            log.warning("%s: the event store connection failed (%s: %s); retry %d of %d in "
                        "%.1f s", what, type(error).__name__, one_line(error), attempt,
                        policy.retries, delay)
            sleep(delay)


def one_line(error: BaseException) -> str:
    """The error's message on one line (drivers add server detail on further lines)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def insert_events_exactly(store: EventStore, events: pd.DataFrame, batch_id: str, what: str,
                          policy: RetryPolicy) -> int:
    """`store.insert_events` with retries; returns rows new, exact across a lost COMMIT."""
    if events.empty:
        return 0
    mark = with_retries(lambda _: store.max_seq(), what, policy) if policy.retries else 0

    def attempt(number: int) -> int:
        stored_before = store.batch_events_after(batch_id, mark) if number else 0
        return stored_before + store.insert_events(events, batch_id)

    return with_retries(attempt, what, policy)


def insert_rejected_once(store: EventStore, rejected: pd.DataFrame, batch_id: str, source: str,
                         written_before: int, what: str, policy: RetryPolicy) -> None:
    """`store.insert_rejected` with retries, skipped on a retry when the lost attempt
    committed (the batch then holds more than the `written_before` rows of earlier chunks)."""
    if rejected.empty:
        return

    def attempt(number: int) -> None:
        if number and store.batch_rejected(batch_id) > written_before:
            return
        store.insert_rejected(rejected, batch_id, source)

    with_retries(attempt, what, policy)
