"""The HTTP event collector: an ASGI app that receives event batches and stores them durably.

Reads request bodies, the key ring (`tailor.events.keys`), and the files under
`static/` (the `tailor.js` tracker and the demo shop). Writes valid events and
dead-letter rows to the event store at `settings.event_store_url`, and one
`ingest_runs` row per `collector.ingest_run_seconds` window of batches.

Routes: `POST /v1/events` (and its CORS preflight), `GET /healthz` and `/readyz` (503 with
the reason while the store cannot be opened or its last write failed), `GET /livez`,
`GET /metrics` (Prometheus text, secret key), `GET /tailor.js`, and `GET /shop/…` when the
demo shop is on. Every answer carries the security headers (`tailor.web.security_headers`);
events sent with a public key pass the signed-identity rule (`tailor.events.identity`) first.

A batch is answered only after its events are committed: one writer thread owns the
store, takes whatever batches are waiting, validates them together (plain valid events
in Python by `validate_records`, the rest by the vectorised `validate_events`), commits
their events in one transaction and only then resolves each request with its own counts.
The client's IP address is never read into an event, a dead-letter row or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import queue
import re
import secrets
import threading
import time
from collections import Counter as Tally
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tailor.config import Settings
from tailor.events.frames import utc_now
from tailor.events.identity import IdentityCheck
from tailor.events.keys import KeyRing, generate_key, load_key_ring
from tailor.events.records import validate_records
from tailor.events.schema import (
    DEFAULT_NAIVE_TIMEZONE,
    EVENT_COLUMNS,
    MALFORMED_ROW,
    REJECT_REASONS,
    STRING_COLUMNS,
    TimestampRules,
    ValidationResult,
    parse_event_timestamps,
    validate_events,
)
from tailor.events.store import EventStore, IngestRun, open_event_store
from tailor.throttled_log import ThrottledLog, error_key
from tailor.urls import redact_url
from tailor.web.body_limits import BodyLimitError, CappedBody, check_declared_length
from tailor.web.header_limits import header_limited_protocol
from tailor.web.security_headers import SecurityHeadersMiddleware

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
SHOP_DIR = STATIC_DIR / "shop"
EVENTS_PATH = "/v1/events"
DEAD_LETTER_SOURCE = "collector"
KEY_HEADER = "x-tailor-key"
ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")  # sendBeacon sends text/plain
CORS_ALLOWED_HEADERS = "Content-Type, X-Tailor-Key"
CORS_MAX_AGE_SECONDS = 600
# Clocks within this of the server's are trusted: correcting them would only add the
# network delay and could swap the order of events sent a few milliseconds apart.
SKEW_TOLERANCE_SECONDS = 2.0
# A sent_at further off than this is taken as broken, not as a skewed clock.
MAX_SKEW_SECONDS = 86_400.0
MAX_PENDING_BATCHES = 2_000  # beyond this the collector answers 503 instead of queueing
MAX_GROUP_EVENTS = 5_000  # events validated together by the writer at most
REOPEN_SECONDS = 1.0  # a store that failed to open is tried again after this, on demand
SECRET_KEY_IN_URL = ("secret keys are accepted in the X-Tailor-Key header only, never in a "
                     "URL: URLs end up in logs, so rotate this key now (`tailor keys create "
                     "secret`)")
REGION_HEADERS = ("cf-ipcountry", "cloudfront-viewer-country", "x-region")
REGION_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,16}$")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class RequestError(Exception):
    """A request the collector refuses: the HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- request parsing -------------------------------------------------------------------------


def check_content_type(request: Request) -> None:
    """Accept JSON or plain text bodies (sendBeacon's text/plain), uncompressed; else 415."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise RequestError(415, f"Content-Type {media_type or '(none)'!r} is not accepted; "
                                "send application/json (or text/plain from sendBeacon)")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RequestError(415, f"Content-Encoding {encoding!r} is not supported; send the body "
                                "uncompressed")


async def read_capped_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) as soon as it exceeds `max_bytes`.

    The declared Content-Length is checked first, but the count of bytes actually
    received is what holds: a missing or lying header cannot make the collector read more.
    """
    body = CappedBody(max_bytes)
    try:
        check_declared_length(request.headers.get("content-length"), max_bytes)
        async for chunk in request.stream():
            body.add(chunk)
    except BodyLimitError as error:
        if error.declared is not None:
            raise RequestError(400, f"Content-Length {error.declared[:20]!r} is not a number") \
                from None
        if error.declared_bytes is not None:
            raise RequestError(413, f"body of {error.declared_bytes:,} bytes is over the limit "
                                    f"of {max_bytes:,} bytes (collector.max_batch_bytes)") from None
        raise RequestError(413, f"body is over the limit of {max_bytes:,} bytes "
                                "(collector.max_batch_bytes)") from None
    return body.bytes()


def parse_batch(body: bytes, max_events: int) -> tuple[datetime | None, list[Any]]:
    """The client's `sent_at` and the list of raw events from a request body.

    Args:
        body: `{"sent_at": ISO or epoch seconds, "events": [...]}`, or a bare list of events.
        max_events: the most events one batch may hold.

    Returns:
        `(sent_at or None, events)`; events are not checked here, one by one, but later.

    Raises:
        RequestError: 400 for text that is not JSON or the wrong shape, 413 for too many events.
    """
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise RequestError(400, "malformed JSON: the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"malformed JSON: {error.msg} at line {error.lineno} "
                                f"column {error.colno}") from None
    except ValueError as error:  # from _refuse_constant
        raise RequestError(400, f"malformed JSON: {error}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    sent_at = None
    if isinstance(document, dict):
        events = document.get("events")
        if not isinstance(events, list):
            raise RequestError(400, "events: missing or not a list; send "
                                    '{"sent_at": "<ISO time>", "events": [{...}, ...]}')
        sent_at = parse_sent_at(document.get("sent_at"))
    elif isinstance(document, list):
        events = document
    else:
        raise RequestError(400, "body must be a JSON object with an events list, or a list")
    if len(events) > max_events:
        raise RequestError(413, f"batch of {len(events):,} events is over the limit of "
                                f"{max_events:,} (collector.max_batch_events); split it")
    return sent_at, events


def _refuse_constant(name: str) -> None:
    """Python's json module reads NaN and Infinity; JSON has no such numbers."""
    raise ValueError(f"{name} is not a JSON number")


def parse_sent_at(value: Any) -> datetime | None:
    """`sent_at` as an aware UTC datetime (ISO 8601, naive meaning UTC, or epoch seconds).

    Raises:
        RequestError: 400 when it is present but cannot be read as a time.
    """
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(value)
            return datetime.fromtimestamp(value, tz=timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed
    except (ValueError, OverflowError, OSError):
        pass
    raise RequestError(400, f"sent_at: cannot parse {str(value)[:40]!r} as ISO 8601 or epoch "
                            "seconds")


def clock_skew_seconds(sent_at: datetime | None, received_at: datetime) -> float:
    """Seconds to add to the client's timestamps (receive time minus sent_at), or 0.0.

    0.0 when there is no `sent_at`, when the client's clock is within
    `SKEW_TOLERANCE_SECONDS` (the difference is mostly network delay), or when it is
    more than `MAX_SKEW_SECONDS` off (a broken value, not a skewed clock).
    """
    if sent_at is None:
        return 0.0
    skew = (received_at - sent_at).total_seconds()
    if abs(skew) <= SKEW_TOLERANCE_SECONDS or abs(skew) > MAX_SKEW_SECONDS:
        return 0.0
    return skew


def device_type_from_user_agent(user_agent: str) -> str | None:
    """`mobile`, `tablet` or `desktop` by simple User-Agent rules; None without a User-Agent."""
    text = user_agent.lower()
    if not text.strip():
        return None
    if any(marker in text for marker in ("ipad", "tablet", "kindle", "silk/", "playbook")):
        return "tablet"
    if "android" in text and "mobile" not in text:
        return "tablet"  # Android tablets leave "Mobile" out of their User-Agent
    if any(marker in text for marker in ("mobi", "iphone", "ipod", "android", "windows phone")):
        return "mobile"
    return "desktop"


def region_from_headers(headers: Any) -> str | None:
    """A coarse region (country code) set by a proxy or CDN in front of the collector, if any.

    Only short codes are kept; the client's address itself is never looked at.
    """
    for name in REGION_HEADERS:
        value = (headers.get(name) or "").strip()
        if value and REGION_PATTERN.match(value) and value.upper() not in ("XX", "T1"):
            return value.upper()
    return None


# -- batches and their results -----------------------------------------------------------------


@dataclass
class Submission:
    """One accepted request waiting for the writer: its events and what enrichment applies."""

    events: list[Any]
    received_at: datetime
    skew_seconds: float = 0.0
    device_type: str | None = None  # from the User-Agent, for browser (public key) calls
    region: str | None = None
    future: Future = field(default_factory=Future)


@dataclass
class BatchResult:
    """What happened to one batch: new events, duplicates, and each rejected event."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The response body of `POST /v1/events`."""
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected}


@dataclass
class GroupRows:
    """The events of several submissions, flattened: contract rows and who sent each."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # submission number of each row
    index: list[int] = field(default_factory=list)  # position of each row in its batch
    rejected: list[dict[str, Any]] = field(default_factory=list)  # refused before validation


def _json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "array", type(None): "null"}.get(
        type(value), type(value).__name__)


def json_shape_problem(event: Any) -> tuple[str, str] | None:
    """(field, detail) when an event's JSON types cannot be a contract row, else None.

    Only what a table of scalars cannot express is checked here (an event that is not
    an object, a nested value where text is expected); the contract's own rules run
    afterwards in `validate_events`.
    """
    if not isinstance(event, dict):
        return "event", f"event: expected a JSON object, got {_json_type(event)}"
    for name in (*STRING_COLUMNS, "timestamp", "price", "quantity"):
        value = event.get(name)
        if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
            continue
        expected = "a string" if name in STRING_COLUMNS else (
            "an ISO 8601 string or epoch seconds" if name == "timestamp" else "a number")
        return name, f"{name}: expected {expected}, got {_json_type(value)}"
    return None


def flatten_group(group: Sequence[Submission]) -> GroupRows:
    """Every event of a group of submissions as rows, with JSON-shape rejects set aside."""
    flat = GroupRows()
    for number, submission in enumerate(group):
        for position, event in enumerate(submission.events):
            problem = json_shape_problem(event)
            if problem is None:
                flat.rows.append(event)
                flat.owner.append(number)
                flat.index.append(position)
            else:
                flat.rejected.append({"owner": number, "index": position, "reason": MALFORMED_ROW,
                                      "field": problem[0], "detail": problem[1], "event": event})
    return flat


def _merged_properties(value: Any, additions: dict[str, Any]) -> Any:
    """Properties with server-side fields added; values that are not objects are left for
    the contract check to reject."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return dict(additions)
    if isinstance(value, str):
        if not value.strip():
            return dict(additions)
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return {**parsed, **additions} if isinstance(parsed, dict) else value
    if isinstance(value, dict):
        return {**value, **additions}
    return value


def enrich_rows(rows: Sequence[dict[str, Any]], group: Sequence[Submission],
                owner: Sequence[int], naive_timezone: str = DEFAULT_NAIVE_TIMEZONE
                ) -> list[dict[str, Any]]:
    """The rows with server-side enrichment: skew-corrected timestamps (the client's own
    time kept in properties), device type from the User-Agent, coarse region.

    A row that changes is a copy: the client's event stays as sent, for the dead letter.

    Args:
        rows: the group's events (JSON objects), one per row.
        group: the submissions the rows came from.
        owner: the submission number of each row.
        naive_timezone: the zone a zone-less timestamp is read in (`events.naive_timezone`)
            before its skew is corrected.
    """
    enriched = list(rows)
    additions: dict[int, dict[str, Any]] = {}
    skewed = [row for row, number in enumerate(owner) if group[number].skew_seconds]
    if skewed:
        _correct_clock_skew(enriched, skewed, group, owner, additions, naive_timezone)
    for row, number in enumerate(owner):
        submission = group[number]
        own = enriched[row].get("device_type")
        if submission.device_type and not (isinstance(own, str) and own.strip()):
            enriched[row] = {**enriched[row], "device_type": submission.device_type}
        if submission.region:
            additions.setdefault(row, {})["region"] = submission.region
    for row, extra in additions.items():
        merged = _merged_properties(enriched[row].get("properties"), extra)
        enriched[row] = {**enriched[row], "properties": merged}
    return enriched


def _correct_clock_skew(rows: list[dict[str, Any]], skewed: list[int],
                        group: Sequence[Submission], owner: Sequence[int],
                        additions: dict[int, dict[str, Any]], naive_timezone: str) -> None:
    """Shift the readable timestamps of the `skewed` rows by their batch's skew, in place;
    note each original in `additions`. Unreadable ones, and those the shift would carry
    past pandas' time range, are left as sent for the contract check to judge."""
    originals = pd.Series([rows[row].get("timestamp") for row in skewed], dtype=object)
    skew = np.array([group[owner[row]].skew_seconds for row in skewed], dtype="float64")
    shifts = pd.to_timedelta(skew, unit="s")
    stamps, _ = parse_event_timestamps(originals, naive_timezone)
    for row, original, stamp, shift, seconds in zip(skewed, originals, stamps, shifts, skew):
        try:
            corrected = stamp + shift
        except (OverflowError, ValueError):  # e.g. a year-2262 time: one event, not the group
            continue
        if corrected is pd.NaT:
            continue
        rows[row] = {**rows[row], "timestamp": corrected.isoformat()}
        additions[row] = {"client_timestamp": original,
                          "clock_skew_seconds": round(float(seconds), 3)}


# -- the writer: validation and storage on one thread ------------------------------------------


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


class CollectorMetrics:
    """Prometheus counters of one collector app, in its own registry (not the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("tailor_collector_events_accepted",
                                "Events stored (new event ids).", registry=self.registry)
        self.duplicates = Counter("tailor_collector_events_duplicate",
                                  "Valid events whose event_id was already stored.",
                                  registry=self.registry)
        self.rejected = Counter("tailor_collector_events_rejected",
                                "Events refused by the data contract, by reason.", ["reason"],
                                registry=self.registry)
        self.requests = Counter("tailor_collector_requests",
                                "POST /v1/events requests by HTTP status.", ["status"],
                                registry=self.registry)
        self.latency = Histogram("tailor_collector_request_duration_seconds",
                                 "Time from request to answer of POST /v1/events.",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.pending = Gauge("tailor_collector_pending_batches",
                            "Batches received and not yet committed.", registry=self.registry)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)  # export zeros so dashboards see every reason


@dataclass
class IngestWindow:
    """Counts of the batches in one `ingest_runs` row (one row per window, not per request)."""

    batch_id: str
    started_at: pd.Timestamp
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Tally = field(default_factory=Tally)
    recorded_at: float = 0.0
    dirty: bool = False

    @classmethod
    def start(cls) -> "IngestWindow":
        """A new window whose id is unique across processes and restarts."""
        now = utc_now()
        batch_id = f"collector-{now:%Y%m%dT%H%M%S}-{os.getpid()}-{secrets.token_hex(3)}"
        return cls(batch_id=batch_id, started_at=now)

    def add(self, received: int, result: BatchResult) -> None:
        """Count one committed batch."""
        self.received += received
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.rejected.update(item["reason"] for item in result.rejected)
        self.dirty = True

    def as_run(self) -> IngestRun:
        """The window as the `IngestRun` the store records."""
        return IngestRun(batch_id=self.batch_id, source=DEAD_LETTER_SOURCE,
                         started_at=self.started_at, finished_at=utc_now(),
                         received=self.received, accepted=self.accepted,
                         duplicates=self.duplicates, rejected=dict(self.rejected))


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
        self.max_future_seconds = int(settings.ingest_max_future_seconds)
        self.timestamps = TimestampRules.from_settings(settings)
        self.window_seconds = float(settings.collector_ingest_run_seconds)
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


@dataclass
class CheckedGroup:
    """A group of batches after the contract check.

    `valid` holds the valid events of every batch (in batch order), `valid_owner` the
    batch number of each; `results` lists each batch's rejections; `dead_letter` holds
    every rejected event for the dead-letter table.
    """

    valid: pd.DataFrame
    valid_owner: np.ndarray
    results: list[BatchResult]
    dead_letter: pd.DataFrame


def validate_group(group: Sequence[Submission], *, max_future_seconds: int,
                   timestamps: TimestampRules | None = None) -> CheckedGroup:
    """Check a group of batches against the data contract in one pass.

    Args:
        group: submissions whose events are raw JSON values.
        max_future_seconds: tolerated lead of a timestamp over the receive time.
        timestamps: plausibility window and naive zone (`events.*` settings).

    Returns:
        The `CheckedGroup`; accepted and duplicate counts are filled in after the commit.
    """
    flat = flatten_group(group)
    owner = np.array(flat.owner, dtype="int64")
    index = np.array(flat.index, dtype="int64")
    rejected_rows = list(flat.rejected)
    now = utc_now()

    def check_frame(frame: pd.DataFrame) -> ValidationResult:
        return validate_isolating(frame, now=now, max_future_seconds=max_future_seconds,
                                  timestamps=timestamps)

    zone = (timestamps or TimestampRules()).naive_timezone
    checked = validate_records(enrich_rows(flat.rows, group, flat.owner, zone), now=now,
                               max_future_seconds=max_future_seconds, check_frame=check_frame,
                               timestamps=timestamps)
    refused = checked.rejected["row_number"].to_numpy(dtype="int64")
    for row, reason, where, detail in zip(refused, checked.rejected["reason"],
                                          checked.rejected["field"], checked.rejected["detail"]):
        rejected_rows.append({"owner": int(owner[row]), "index": int(index[row]),
                              "reason": reason, "field": where, "detail": detail,
                              "event": flat.rows[row]})
    kept = np.setdiff1d(np.arange(len(flat.rows)), refused)
    return CheckedGroup(checked.valid, owner[kept], _results_with_rejections(group, rejected_rows),
                        _dead_letter_frame(rejected_rows))


def validate_isolating(frame: pd.DataFrame, *, now: pd.Timestamp, max_future_seconds: int,
                       first_row: int = 0, timestamps: TimestampRules | None = None
                       ) -> ValidationResult:
    """`validate_events`, but an unexpected error inside the check costs only the rows causing it.

    The check is meant never to raise on bad rows; should some odd value still make it
    raise, the rows are halved until the culprits are alone, and those are rejected as
    malformed. Without this, one hostile event would fail every batch validated with it.
    """
    try:
        return validate_events(frame, now=now, max_future_seconds=max_future_seconds,
                               first_row_number=first_row, timestamps=timestamps)
    except Exception as error:
        if len(frame) > 1:
            half = len(frame) // 2
            parts = [validate_isolating(frame.iloc[:half], now=now, first_row=first_row,
                                        max_future_seconds=max_future_seconds,
                                        timestamps=timestamps),
                     validate_isolating(frame.iloc[half:], now=now, first_row=first_row + half,
                                        max_future_seconds=max_future_seconds,
                                        timestamps=timestamps)]
            valid = [part.valid for part in parts if len(part.valid)]
            return ValidationResult(
                valid=pd.concat(valid, ignore_index=True) if valid else parts[0].valid,
                rejected=pd.concat([part.rejected for part in parts], ignore_index=True))
        log.warning("collector: the contract check raised %s on one event; rejecting it",
                    type(error).__name__)
        return ValidationResult(
            valid=pd.DataFrame(columns=list(EVENT_COLUMNS)),
            rejected=pd.DataFrame({"row_number": [first_row], "reason": [MALFORMED_ROW],
                                   "field": ["event"], "raw": [""], "detail": [
                                       f"event: could not be checked ({type(error).__name__}: "
                                       f"{str(error)[:80]})"]}))


def commit_events(store: EventStore, valid: pd.DataFrame, owner: np.ndarray, n_batches: int,
                  batch_id: str) -> np.ndarray:
    """Store the valid events of a group in one commit; returns how many were new per batch.

    The store only says how many rows were new in all. When that is fewer than sent
    (a retry, usually), the new rows are read back: they are the ones above the `seq`
    watermark taken before the insert. An event id sent twice in one group counts as
    new for the first batch that sent it.
    """
    if valid.empty:
        return np.zeros(n_batches, dtype="int64")
    watermark = store.max_seq()
    new = store.insert_events(valid, batch_id)
    if new == len(valid):
        return np.bincount(owner, minlength=n_batches)
    ours, seq = set(valid["event_id"]), watermark
    fresh: set[str] = set()
    while len(fresh) < new:
        page = store.events_after(seq, 10_000)
        if page.empty:
            break
        fresh |= ours.intersection(page["event_id"])
        seq = int(page["seq"].max())
    is_new = valid["event_id"].isin(fresh).to_numpy() & ~valid["event_id"].duplicated().to_numpy()
    return np.bincount(owner[is_new], minlength=n_batches)


def _results_with_rejections(group: Sequence[Submission],
                             rejected_rows: Iterable[dict[str, Any]]) -> list[BatchResult]:
    """One result per submission, listing its rejected events in batch order."""
    results = [BatchResult() for _ in group]
    for item in sorted(rejected_rows, key=lambda item: (item["owner"], item["index"])):
        results[item["owner"]].rejected.append(
            {"index": item["index"], "reason": item["reason"], "field": item["field"],
             "detail": item["detail"]})
    return results


def _dead_letter_frame(rejected_rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rejected events as dead-letter rows; `raw` is the event exactly as the client sent it."""
    return pd.DataFrame({
        "row_number": [item["index"] for item in rejected_rows],
        "reason": [item["reason"] for item in rejected_rows],
        "field": [item["field"] for item in rejected_rows],
        "detail": [item["detail"] for item in rejected_rows],
        "raw": [json.dumps(item["event"], default=str) for item in rejected_rows],
    })


# -- keys, origins and CORS ------------------------------------------------------------------------


def parse_origins(text: str) -> frozenset[str]:
    """Comma-separated origins, normalised (lower case, no trailing slash)."""
    return frozenset(part.strip().rstrip("/").lower() for part in text.split(",") if part.strip())


def bound_origins(host: str, port: int) -> frozenset[str]:
    """The origins a browser uses for a server bound to `host:port` (plain HTTP).

    A loopback or wildcard address gives the loopback names (127.0.0.1, localhost, [::1]);
    pages reached through any other name must be listed in `collector.allowed_origins`.
    """
    host = host.strip().lower()
    if host in ("", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1", "[::1]"):
        return frozenset(f"http://{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))
    return frozenset({f"http://{host}:{port}"})


@dataclass
class CollectorContext:
    """Everything the routes share: limits, keys, allowed origins, metrics and the writer."""

    settings: Settings
    key_ring: KeyRing
    allowed_origins: frozenset[str]
    metrics: CollectorMetrics
    writer: BatchWriter
    demo_shop_key: str | None = None
    identity: IdentityCheck | None = None  # signed customer ids (tailor.events.identity)
    shop_origins: frozenset[str] = frozenset()  # where the demo shop's own pages are served
    log_limiter: ThrottledLog = field(default_factory=lambda: ThrottledLog(log))

    def authenticate(self, request: Request) -> str:
        """The kind of the request's key (`public` or `secret`).

        The key comes from the `X-Tailor-Key` header, `Authorization: Bearer`, or (public
        keys only, for sendBeacon, which cannot set headers) the `key` query parameter.

        Raises:
            RequestError: 401 without a key, 403 for an unknown key or a secret key in a URL.
        """
        header_key = request.headers.get(KEY_HEADER, "").strip()
        authorization = request.headers.get("authorization", "")
        if not header_key and authorization.lower().startswith("bearer "):
            header_key = authorization[7:].strip()
        query_key = request.query_params.get("key", "").strip()
        if query_key and self.key_ring.kind_of(query_key) == "secret":
            # Refused whatever else the request carries: the key is in URLs and logs now,
            # and a silent success would leave nobody knowing it must be rotated.
            self.log_limiter.log(logging.WARNING, "secret key in URL",
                                 "collector: refused a secret key sent in a URL (?key=); "
                                 "rotate that key")
            raise RequestError(403, SECRET_KEY_IN_URL)
        plain_key = header_key or query_key
        if not plain_key:
            raise RequestError(401, "missing key: send it in the X-Tailor-Key header (or as "
                                    "?key= for a public key from sendBeacon)")
        kind = self.key_ring.kind_of(plain_key)
        if kind is None:
            raise RequestError(403, "unknown key: create one with `tailor keys create public`")
        return kind

    def origin_allowed(self, request: Request) -> bool:
        """Whether the request's Origin may use a public key (and see CORS headers)."""
        origin = request.headers.get("origin", "").rstrip("/").lower()
        if not origin:
            return False
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        # The demo shop is served by the collector itself, at the origins it is bound to
        # (never the request's Host header, which the sender chooses).
        return self.demo_shop_key is not None and origin in self.shop_origins

    def check_origin(self, request: Request, kind: str) -> None:
        """Refuse (403) a public key used from a page whose origin is not configured."""
        origin = request.headers.get("origin")
        if kind == "public" and origin is not None and not self.origin_allowed(request):
            raise RequestError(403, f"origin {origin[:100]!r} may not send events with a public "
                                    "key; add it to collector.allowed_origins")


def cors_headers(origin: str) -> dict[str, str]:
    """Headers that let a browser page at `origin` read the collector's answer."""
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


# -- routes ----------------------------------------------------------------------------------------


async def post_events(request: Request) -> Response:
    """`POST /v1/events`: authenticate, check limits, store the batch, answer after commit."""
    context: CollectorContext = request.app.state.collector
    started = time.perf_counter()
    browser_origin = request.headers.get("origin") if context.origin_allowed(request) else None
    try:
        kind = context.authenticate(request)
        context.check_origin(request, kind)
        if kind == "secret":
            browser_origin = None  # secret keys are for servers: no CORS
        response = await _store_batch(request, context, kind)
    except RequestError as error:
        response = JSONResponse({"error": error.message}, status_code=error.status)
    except Exception as error:  # the store failed: nothing acknowledged, the client retries
        context.log_limiter.log(logging.WARNING, "503 " + error_key(error),
                                "collector: answering 503 after a store error: %s",
                                type(error).__name__)
        response = JSONResponse({"error": "event store unavailable; nothing from this batch "
                                          "was acknowledged, retry it"},
                                status_code=503, headers={"Retry-After": "1"})
    if browser_origin:
        response.headers.update(cors_headers(browser_origin))
    context.metrics.requests.labels(status=str(response.status_code)).inc()
    context.metrics.latency.observe(time.perf_counter() - started)
    return response


async def _store_batch(request: Request, context: CollectorContext, kind: str) -> Response:
    """Read and parse an authenticated request, hand it to the writer, await the commit."""
    settings = context.settings
    check_content_type(request)
    body = await read_capped_body(request, int(settings.collector_max_batch_bytes))
    received_at = datetime.now(timezone.utc)
    sent_at, events = parse_batch(body, int(settings.collector_max_batch_events))
    if context.identity is not None:
        events = context.identity.bind(events, kind)
    if not events:
        return JSONResponse(BatchResult().to_dict())
    submission = Submission(
        events=events, received_at=received_at,
        skew_seconds=clock_skew_seconds(sent_at, received_at),
        # A server's own User-Agent says nothing about the shopper's device.
        device_type=(device_type_from_user_agent(request.headers.get("user-agent", ""))
                     if kind == "public" else None),
        region=region_from_headers(request.headers))
    result = await asyncio.wrap_future(context.writer.submit(submission))
    return JSONResponse(result.to_dict())


async def preflight_events(request: Request) -> Response:
    """`OPTIONS /v1/events`: the CORS preflight, answered for configured origins only."""
    context: CollectorContext = request.app.state.collector
    origin = request.headers.get("origin")
    if not origin or not context.origin_allowed(request):
        return JSONResponse({"error": f"origin {str(origin)[:100]!r} is not allowed; add it to "
                                      "collector.allowed_origins"}, status_code=403)
    return Response(status_code=204, headers={
        **cors_headers(origin),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": CORS_ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS),
    })


async def healthz(request: Request) -> Response:
    """`GET /healthz` (and `/readyz`): 200 while the event store takes writes (or has not
    been needed yet); 503 with the reason while it cannot be opened or its last write failed."""
    problem = request.app.state.collector.writer.health_problem()
    if problem is not None:
        return JSONResponse({"status": "error", "error": problem}, status_code=503)
    return JSONResponse({"status": "ok"})


async def livez(request: Request) -> Response:
    """`GET /livez`: 200 while the process answers (liveness only, the store is not asked)."""
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    """`GET /metrics`: this app's counters in the Prometheus text format; a secret key is
    needed unless `collector.metrics_without_key` is on."""
    context: CollectorContext = request.app.state.collector
    if not context.settings.collector_metrics_without_key:
        try:
            if context.authenticate(request) != "secret":
                raise RequestError(403, "metrics need a secret key (a public key only sends "
                                        "events); create one with `tailor keys create secret`")
        except RequestError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
    registry = context.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def tracker_script(request: Request) -> Response:
    """`GET /tailor.js`: the JavaScript tracker."""
    return FileResponse(STATIC_DIR / "tailor.js", media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300"})


async def shop_config(request: Request) -> Response:
    """`GET /shop/config.js`: the demo shop's endpoint and its throw-away public key."""
    key = request.app.state.collector.demo_shop_key
    body = "window.TAILOR_SHOP = " + json.dumps({"endpoint": EVENTS_PATH, "key": key}) + ";\n"
    return Response(body, media_type="application/javascript",
                    headers={"Cache-Control": "no-store"})


async def shop_home(request: Request) -> Response:
    """`GET /shop`: on to the demo shop's home page."""
    return RedirectResponse("/shop/")


def _routes(demo_shop: bool) -> list[Any]:
    routes: list[Any] = [
        Route(EVENTS_PATH, post_events, methods=["POST"]),
        Route(EVENTS_PATH, preflight_events, methods=["OPTIONS"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", healthz, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/tailor.js", tracker_script, methods=["GET"]),
    ]
    if demo_shop:
        routes += [
            Route("/shop/config.js", shop_config, methods=["GET"]),
            Route("/shop", shop_home, methods=["GET"]),
            Mount("/shop", app=StaticFiles(directory=SHOP_DIR, html=True), name="shop"),
        ]
    return routes


def create_collector_app(settings: Settings, *, demo_shop: bool | None = None,
                         shop_origins: frozenset[str] | None = None,
                         commit_hook: CommitHook = NO_COMMIT_HOOK) -> Starlette:
    """The collector as an ASGI app (also mounted inside the BentoML service).

    Args:
        settings: resolved settings; the `collector` section, the event store URL and
            `ingest.max_future_seconds` are used.
        demo_shop: serve the demo shop under /shop/ with a throw-away public key that
            lives in this process only; None follows `collector.demo_shop`.
        shop_origins: the origins the demo shop's pages are served from, which may use its
            key without being in `collector.allowed_origins` (default: the loopback origins
            of `serving.host`/`serving.port`, where the BentoML service mounts it).
        commit_hook: told of every group of committed events (the session-feature pusher
            of `tailor.features.collector_hook`); by default nobody is.

    Returns:
        A Starlette app. Its writer thread starts with the app's lifespan, or on the first
        batch when the host does not run lifespans.

    Raises:
        ValueError: the keys file or a configured key hash is malformed.
    """
    demo_shop = bool(settings.collector_demo_shop) if demo_shop is None else demo_shop
    metrics_ = CollectorMetrics()
    context = CollectorContext(
        settings=settings, key_ring=load_key_ring(settings),
        allowed_origins=parse_origins(settings.collector_allowed_origins),
        metrics=metrics_, writer=BatchWriter(settings, metrics_, commit_hook),
        identity=IdentityCheck.from_settings(settings))
    if demo_shop:
        context.demo_shop_key = generate_key("public")
        context.key_ring.add(context.demo_shop_key, "public")
        context.shop_origins = shop_origins if shop_origins is not None else bound_origins(
            settings.serving_host, int(settings.serving_port))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(context.writer.start)
        except Exception as error:  # keep serving: 503s and /healthz say why until it opens
            log.warning("collector: starting without an event store (%s); batches get 503 "
                        "and /healthz says why until it can be opened", error_key(error))
        if context.key_ring.count() == 0:
            log.warning("collector: no keys yet; every batch gets 401/403 until one is made "
                        "with `tailor keys create public` (or secret)")
        yield
        await run_in_threadpool(context.writer.stop)

    app = Starlette(routes=_routes(demo_shop), lifespan=lifespan,
                    middleware=[Middleware(SecurityHeadersMiddleware, page_prefixes=("/shop",))])
    app.state.collector = context
    return app


def serve_collector(settings: Settings, *, host: str, port: int,
                    demo_shop: bool | None = None,
                    commit_hook: CommitHook = NO_COMMIT_HOOK) -> None:
    """Run the collector with uvicorn until interrupted (access log off: it would hold IPs;
    request heads capped at `collector.max_header_bytes` and `collector.max_header_count`).
    `commit_hook` is passed on to `create_collector_app`."""
    import uvicorn

    app = create_collector_app(settings, demo_shop=demo_shop,
                               shop_origins=bound_origins(host, port), commit_hook=commit_hook)
    log.info("collector on http://%s:%d%s -> %s", host, port, EVENTS_PATH,
             redact_url(settings.event_store_url))
    if app.state.collector.demo_shop_key:
        log.info("demo shop: http://%s:%d/shop/", host, port)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info",
                server_header=False,
                http=header_limited_protocol(int(settings.collector_max_header_bytes),
                                             int(settings.collector_max_header_count)))
