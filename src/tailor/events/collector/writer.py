"""The collector's writer thread: the one owner of the event store, which validates and
commits waiting batches in groups and only then answers each request.

Reads the submissions queued by the routes; writes valid events and dead-letter rows to the
event store at `settings.event_store_url`, and one `ingest_runs` row per
`collector.ingest_run_seconds` window. After each commit it tells the `CommitHook` it was
given (the session-feature pusher, wired by a higher layer), if any.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter as Tally
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from tailor.config import Settings
from tailor.events.collector.batches import BatchResult, Submission
from tailor.events.collector.groups import commit_events, validate_group
from tailor.events.collector.metrics import DEAD_LETTER_SOURCE, CollectorMetrics, IngestWindow
from tailor.events.collector.requests import RequestError
from tailor.events.frames import utc_now
from tailor.events.schema import TimestampRules
from tailor.events.store import EventStore, open_event_store
from tailor.throttled_log import ThrottledLog, error_key

log = logging.getLogger(__package__)  # one logger for the whole collector, as before the split

MAX_PENDING_BATCHES = 2_000  # beyond this the collector answers 503 instead of queueing
MAX_GROUP_EVENTS = 5_000  # events validated together by the writer at most
REOPEN_SECONDS = 1.0  # a store that failed to open is tried again after this, on demand


def _do_nothing() -> None:
    """The start and stop of a commit hook that needs neither."""


@dataclass(frozen=True)
class CommitHook:
    """What the writer tells a higher layer (session features, say) about committed events.

    Built by whoever builds the collector (`tailor collect`, the BentoML service); the event
    layer itself knows no listener, and without a hook nothing is told.

    Attributes:
        committed: called on the writer thread with each group's committed events (columns
            of the event contract) after their batches are answered; must neither raise nor
            block.
        start: called on the writer thread once the store is open, before the first batch.
        stop: called when the writer stops, after its last batch.
    """

    committed: Callable[[pd.DataFrame], None]
    start: Callable[[], None] = _do_nothing
    stop: Callable[[], None] = _do_nothing


NO_COMMIT_HOOK = CommitHook(committed=lambda events: None)


class BatchWriter:
    """Owns the event store on one thread; validates and commits waiting batches in groups.

    `submit` returns a future that resolves to the batch's `BatchResult` only after its
    events are committed, or to an exception when the store failed (nothing acknowledged).

    Faults: when a group's commit fails, a probe write tells a failing store from a failing
    batch; with the store writable the batches are retried one by one, so only the batch at
    fault gets the error. After any failed write the connection is closed (the next write
    opens a new one: a connection opened read-only, or broken, is never reused), and while
    the last write failed `health_problem` says why and the writer probes the store every
    second until a write succeeds. Identical errors are logged once per minute with a count.
    """

    def __init__(self, settings: Settings, metrics: CollectorMetrics,
                 commit_hook: CommitHook = NO_COMMIT_HOOK) -> None:
        self.settings = settings
        self.commit_hook = commit_hook
        self.store_url = settings.event_store_url
        self.max_future_seconds = settings.ingest_max_future_seconds
        self.timestamps = TimestampRules.from_settings(settings)
        self.window_seconds = settings.collector_ingest_run_seconds
        self.metrics = metrics
        self._queue: queue.Queue[Submission | None] = queue.Queue(maxsize=MAX_PENDING_BATCHES)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_lock = threading.Lock()
        self.error: BaseException | None = None
        self._error_at = 0.0  # monotonic time the store failed to open, for retries
        self.write_error: str | None = None  # the last write failed, and why
        self._failed_writes = 0
        self._log = ThrottledLog(log)
        self._window = IngestWindow.start()

    def start(self, *, wait: bool = True) -> None:
        """Start the writer thread (idempotent) and wait until the store is open.

        A store that failed to open is tried again at most once every `REOPEN_SECONDS`
        (the error stands until the new attempt has an outcome).

        Args:
            wait: wait for the store to open (and raise its error); False only starts it.

        Raises:
            Exception: whatever opening the store raised (bad URL, server down).
        """
        with self._start_lock:
            if self._thread is not None and not self._thread.is_alive() \
                    and self.error is not None \
                    and time.monotonic() - self._error_at >= REOPEN_SECONDS:
                self._thread = None
                self._ready.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tailor-collector-writer",
                                                daemon=True)
                self._thread.start()
        if not wait:
            return
        self._ready.wait()
        if self.error is not None:
            raise self.error

    @property
    def alive(self) -> bool:
        """Whether the writer is running with an open store."""
        return self._thread is not None and self._thread.is_alive() and self.error is None

    def health_problem(self) -> str | None:
        """Why the collector cannot store events now (None when it can, or has not tried).

        A store that failed to open is tried again from here too (in the background), so
        an idle collector that a load balancer took out of rotation still recovers.
        """
        if self.error is not None:
            self.start(wait=False)
            return f"event store: {type(self.error).__name__}: {self.error}"
        if self.write_error is not None:
            return f"event store refuses writes ({self._failed_writes} failed): {self.write_error}"
        return None

    def submit(self, submission: Submission) -> Future:
        """Queue a batch; the future resolves after its commit.

        Raises:
            RequestError: 503 when the store could not be opened or too many batches wait.
        """
        self.start()
        try:
            self._queue.put_nowait(submission)
        except queue.Full:
            raise RequestError(503, "collector busy: too many batches waiting; retry later") \
                from None
        self.metrics.pending.inc()
        return submission.future

    def stop(self) -> None:
        """Finish the waiting batches, record the open ingest window and close the store."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        self.commit_hook.stop()

    def _run(self) -> None:
        """The thread's loop: open the store, then store groups until told to stop."""
        try:
            store = open_event_store(self.store_url)
        except BaseException as error:  # reported to start(): the collector cannot work
            self._log.log(logging.ERROR, "open " + error_key(error),
                          "collector: cannot open the event store: %s", error_key(error))
            self.error, self._error_at = error, time.monotonic()
            self._ready.set()
            return
        if self.error is not None:
            log.warning("collector: the event store opened after failing to (%s)",
                        error_key(self.error))
            self.error = None
        self.commit_hook.start()  # before the first batch, not during it
        self._ready.set()
        try:
            while True:
                group, stopping = self._next_group()
                if group:
                    self._store_group(store, group)
                elif self.write_error is not None and not stopping:
                    self._probe(store)  # idle and failing: find out whether it is over
                self._maintain_window(store, force=stopping)
                if stopping:
                    return
        except BaseException as error:  # a bug, not bad input: stop taking batches, say why
            log.exception("collector: the writer stopped")
            self.error = error
            self._fail_waiting(error)
        finally:
            store.close()

    def _fail_waiting(self, error: BaseException) -> None:
        """Answer every queued batch with the writer's error (they may be retried)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._fail(item, error)

    def _next_group(self) -> tuple[list[Submission], bool]:
        """Waiting batches (at least one, or none after a quiet second) and whether to stop."""
        try:
            first = self._queue.get(timeout=1.0)
        except queue.Empty:
            return [], False
        if first is None:
            return [], True
        group, events = [first], len(first.events)
        while events < MAX_GROUP_EVENTS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this group
                break
            group.append(item)
            events += len(item.events)
        return group, False

    def _store_group(self, store: EventStore, group: list[Submission], *,
                     write_dead_letter: bool = True) -> None:
        """Validate a group, commit it in one transaction, then resolve each batch's future.

        When the commit fails and a probe write succeeds (the store is fine: a batch is at
        fault), each batch is stored again on its own; dead letters already written are not
        written twice.
        """
        dead_letter_written = False
        try:
            checked = validate_group(group, max_future_seconds=self.max_future_seconds,
                                     timestamps=self.timestamps)
            if write_dead_letter and len(checked.dead_letter):
                store.insert_rejected(checked.dead_letter, self._window.batch_id,
                                      DEAD_LETTER_SOURCE)
            dead_letter_written = True
            new_counts = commit_events(store, checked.valid, checked.valid_owner, len(group),
                                       self._window.batch_id)
        except Exception as error:  # not acknowledged: the requests may retry
            self._write_failed(store, error, len(group))
            if len(group) > 1 and self._probe(store):
                for submission in group:
                    self._store_group(store, [submission], write_dead_letter=write_dead_letter
                                      and not dead_letter_written)
                return
            for submission in group:
                self._fail(submission, error)
            return
        self._write_succeeded()
        valid_counts = np.bincount(checked.valid_owner, minlength=len(group))
        for number, submission in enumerate(group):
            result = checked.results[number]
            result.accepted = int(new_counts[number])
            result.duplicates = int(valid_counts[number] - new_counts[number])
            self._count(submission, result)
            self.metrics.pending.dec()
            submission.future.set_result(result)
        self.commit_hook.committed(checked.valid)  # e.g. session features: never raises or blocks

    def _write_failed(self, store: EventStore, error: BaseException, batches: int) -> None:
        """Record a failed write, log it (identical errors once a minute) and drop the
        connection, so the next write opens a fresh one."""
        self.write_error = error_key(error)
        self._failed_writes += 1
        self._log.log(logging.ERROR, "write " + self.write_error,
                      "collector: storing %d batch(es) failed: %s", batches, self.write_error,
                      exc_info=error)
        try:
            store.close()
        except Exception:  # a broken connection may fail to close: it is dropped either way
            pass

    def _write_succeeded(self) -> None:
        if self.write_error is not None:
            log.warning("collector: the event store accepts writes again (after %d failed "
                        "write(s): %s)", self._failed_writes, self.write_error)
        self.write_error, self._failed_writes = None, 0

    def _probe(self, store: EventStore) -> bool:
        """Whether the store takes a write now: records the open ingest window (an upsert
        of its counts, harmless to repeat)."""
        try:
            store.record_ingest(self._window.as_run())
        except Exception as error:
            self._write_failed(store, error, 0)
            return False
        self._write_succeeded()
        return True

    def _fail(self, submission: Submission, error: BaseException) -> None:
        self.metrics.pending.dec()
        submission.future.set_exception(error)

    def _count(self, submission: Submission, result: BatchResult) -> None:
        """Add a committed batch to the metrics and the open ingest window."""
        self.metrics.accepted.inc(result.accepted)
        self.metrics.duplicates.inc(result.duplicates)
        for reason, count in Tally(item["reason"] for item in result.rejected).items():
            self.metrics.rejected.labels(reason=reason).inc(count)
        self._window.add(len(submission.events), result)

    def _maintain_window(self, store: EventStore, force: bool) -> None:
        """Record the open window's counts (at most once a second) and roll it when it is full."""
        window = self._window
        now = time.monotonic()
        full = (utc_now() - window.started_at).total_seconds() >= self.window_seconds
        if window.dirty and (force or full or now - window.recorded_at >= 1.0):
            try:
                store.record_ingest(window.as_run())
                window.recorded_at, window.dirty = now, False
            except Exception as error:  # counts only: events are already committed and answered
                self._write_failed(store, error, 0)
        if full and not window.dirty:
            self._window = IngestWindow.start()
