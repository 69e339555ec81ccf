"""Real-time session features: fold newly committed events into each customer's session state
and push it to the online store through the `session_push` push source.

Reads the customer's current session state, first-seen time and the categories of the
viewed products from the online store; writes the new state with Feast's
`FeatureStore.push` (online only: the offline history is rebuilt from the events by
`tailor features`, so the events stay the one source of truth).

The fold applies the rules of `sql/session_features.sql` to the arriving events: the
same session key (a new derived session after `events.session_gap_minutes` without an
event when the shop sends no session id), counts, cart value and categories, the row stamped one
microsecond after the newest event. Late events older than the stored state are folded
in, but the stamp never moves backwards (Feast keeps the newer row).

The collector calls `notify_events_committed` after each commit, through the commit hook
of `tailor.features.collector_hook`. It only queues the
events for a background thread and never raises, so a feature-store problem can never
fail an event acknowledgement; the thread pushes within milliseconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import pandas as pd

from tailor.config import Settings
from tailor.features import specs as catalogue

log = logging.getLogger(__name__)

PUSH_SOURCE = "session_push"
DEFAULT_SESSION_GAP = timedelta(minutes=30)  # events.session_gap_minutes' default
STAMP_OFFSET = timedelta(microseconds=1)
EMAIL_EVENTS = frozenset({"email_open", "email_click"})
QUEUE_LIMIT = 10_000
REOPEN_SECONDS = 60  # how often a pusher without a feature store tries to open it again
SEEN_EVENT_IDS = 200_000  # recent event ids remembered to ignore re-sent duplicates
SESSION_FEATURES: tuple[str, ...] = tuple(
    spec.name for spec in catalogue.specs_for_view(catalogue.SESSION_CONTEXT))


@dataclass
class SessionState:
    """One customer's current session, as stored in the session_context view."""

    session_id: str
    started_at: datetime
    last_event_at: datetime
    events: int = 0
    page_views: int = 0
    product_views: int = 0
    searches: int = 0
    cart_items: float = 0.0
    cart_value: float = 0.0
    categories: set[str] = field(default_factory=set)
    checkout_started: bool = False
    device_type: str | None = None
    is_returning_visitor: bool = False

    def to_row(self, customer_id: str) -> dict[str, Any]:
        """The push row: customer_id, event_timestamp and every session_context feature."""
        started = self.started_at.replace(microsecond=0)
        return {
            "customer_id": customer_id,
            "event_timestamp": self.last_event_at + STAMP_OFFSET,
            "session_id": self.session_id,
            "session_started_at": started,
            "session_length_seconds": (self.last_event_at - started).total_seconds(),
            "session_events": self.events,
            "session_page_views": self.page_views,
            "session_product_views": self.product_views,
            "session_searches": self.searches,
            "session_cart_items": float(self.cart_items),
            "session_cart_value": float(self.cart_value),
            "session_categories_viewed": len(self.categories),
            "session_viewed_categories": sorted(self.categories),
            "session_checkout_started": self.checkout_started,
            "session_device_type": self.device_type or catalogue.UNKNOWN,
            "session_is_returning_visitor": self.is_returning_visitor,
        }


def _number(value: Any, default: float) -> float:
    return default if value is None or pd.isna(value) else float(value)


def _row_stamps(response: Any, feature: str) -> list[datetime | None]:
    """The exact row timestamps of one feature in a Feast online response (None: no row).

    `to_dict` keeps whole seconds only; the response's protobuf has the nanoseconds the
    store kept, which the fold needs to recover the newest event's time exactly.
    """
    names = list(response.proto.metadata.feature_names.val)
    stamps = response.proto.results[names.index(feature)].event_timestamps
    return [stamp.ToDatetime(tzinfo=timezone.utc) if stamp.seconds > 0 else None
            for stamp in stamps]


def state_from_online(row: dict[str, Any], stamp: datetime | None) -> SessionState | None:
    """The stored session state of one customer (its row stamped `stamp`), or None."""
    if not row.get("session_id") or stamp is None:
        return None
    started = row.get("session_started_at")
    last = stamp - STAMP_OFFSET
    device = row.get("session_device_type")
    return SessionState(
        session_id=row["session_id"], started_at=started or last, last_event_at=last,
        events=int(row.get("session_events") or 0),
        page_views=int(row.get("session_page_views") or 0),
        product_views=int(row.get("session_product_views") or 0),
        searches=int(row.get("session_searches") or 0),
        cart_items=_number(row.get("session_cart_items"), 0.0),
        cart_value=_number(row.get("session_cart_value"), 0.0),
        categories=set(row.get("session_viewed_categories") or ()),
        checkout_started=bool(row.get("session_checkout_started")),
        device_type=None if device in (None, catalogue.UNKNOWN) else device,
        is_returning_visitor=bool(row.get("session_is_returning_visitor")))


def session_key(event: dict[str, Any], state: SessionState | None, customer_id: str,
                gap: timedelta = DEFAULT_SESSION_GAP) -> str:
    """The event's session: its session_id, else the stored session if within `gap`."""
    if event.get("session_id"):
        return str(event["session_id"])
    if state is not None and event["timestamp"] <= state.last_event_at + gap:
        return state.session_id
    return f"derived:{customer_id}:{int(event['timestamp'].timestamp())}"


def fold_event(state: SessionState | None, event: dict[str, Any], customer_id: str,
               category: str | None, seen_before: bool,
               gap: timedelta = DEFAULT_SESSION_GAP) -> SessionState:
    """The session state after one more site event (the rules of session_features.sql).

    Args:
        state: the state before the event (None: the customer has no stored session).
        event: `timestamp` (UTC), `event_type`, `session_id`, `price`, `quantity`,
            `device_type`.
        customer_id: the event's customer.
        category: the category of the event's product, if known.
        seen_before: whether the customer had any event before this one (stored state or
            a batch snapshot row); makes a new session a returning visit.
        gap: time without an event that ends a derived session (`events.session_gap_minutes`).
    """
    key = session_key(event, state, customer_id, gap)
    moment = event["timestamp"]
    if state is None or state.session_id != key:
        state = SessionState(session_id=key, started_at=moment, last_event_at=moment,
                             is_returning_visitor=seen_before)
    kind = event["event_type"]
    quantity = _number(event.get("quantity"), 1.0)
    value = _number(event.get("price"), 0.0) * quantity
    state.events += 1
    state.page_views += kind in ("page_view", "product_view")
    state.product_views += kind == "product_view"
    state.searches += kind == "search"
    sign = {"add_to_cart": 1.0, "remove_from_cart": -1.0}.get(kind, 0.0)
    state.cart_items += sign * quantity
    state.cart_value += sign * value
    if kind == "product_view" and category:
        state.categories.add(category)
    state.checkout_started = state.checkout_started or kind == "checkout_start"
    if state.device_type is None and event.get("device_type"):
        state.device_type = str(event["device_type"])
    state.started_at = min(state.started_at, moment)
    state.last_event_at = max(state.last_event_at, moment)
    return state


def site_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events that belong to sessions (not e-mail), with a customer, in time order."""
    if events.empty:
        return events
    frame = events[events["customer_id"].notna() & ~events["event_type"].isin(EMAIL_EVENTS)]
    frame = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))
    return frame.sort_values("timestamp", kind="stable")


class SessionFeaturePusher:
    """Folds committed events into session state and pushes it; synchronous, one thread.

    Args:
        settings: the Tailor settings.
        store: an open `feast.FeatureStore` (default: the home's, opened for serving).
    """

    def __init__(self, settings: Settings, store: Any | None = None) -> None:
        if store is None:
            from tailor.features.repo import open_feature_store

            store = open_feature_store(settings, serving=True)
        self.store = store
        self.session_gap = timedelta(minutes=settings.events_session_gap_minutes)
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _unseen(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Drop events folded before: the collector hands over duplicates it stored once
        (client retries), and counting them twice would inflate the session."""
        if "event_id" not in frame.columns:
            return frame
        ids = frame["event_id"].astype(str)
        return frame[~ids.isin(self._seen) & ~ids.duplicated()]

    def _remember(self, frame: pd.DataFrame) -> None:
        """Note the events just pushed (the newest SEEN_EVENT_IDS are kept)."""
        if "event_id" not in frame.columns:
            return
        for event_id in frame["event_id"].astype(str):
            self._seen[event_id] = None
        while len(self._seen) > SEEN_EVENT_IDS:
            self._seen.popitem(last=False)

    def push_events(self, events: pd.DataFrame) -> int:
        """Fold `events` (columns of the event contract) into their customers' sessions.

        Returns:
            How many customers' session rows were pushed.
        """
        frame = self._unseen(site_events(events))
        if frame.empty:
            return 0
        customers = list(dict.fromkeys(frame["customer_id"].astype(str)))
        stored = self._stored_states(customers)
        categories = self._categories(frame)
        rows = []
        for customer_id, group in frame.groupby(frame["customer_id"].astype(str), sort=False):
            state, seen_before = stored.get(customer_id, (None, False))
            for event in group.to_dict("records"):
                state = fold_event(state, event, customer_id,
                                   categories.get(event.get("product_id")),
                                   seen_before or state is not None, self.session_gap)
            if state is not None:  # always: the group has at least one event
                rows.append(state.to_row(customer_id))
        push_frame = pd.DataFrame(rows)
        from feast.data_source import PushMode

        self.store.push(PUSH_SOURCE, push_frame, to=PushMode.ONLINE)
        self._remember(frame)
        return len(rows)

    def _stored_states(self, customers: list[str]) -> dict[str, tuple[SessionState | None, bool]]:
        """Per customer: the stored session state and whether the customer was seen before."""
        refs = [f"{catalogue.SESSION_CONTEXT}:{name}" for name in SESSION_FEATURES]
        refs.append(f"{catalogue.CUSTOMER_ACTIVITY}:first_seen_at")
        response = self.store.get_online_features(
            features=refs, entity_rows=[{"customer_id": customer} for customer in customers])
        columns = response.to_dict()
        stamps = _row_stamps(response, "session_id")
        result = {}
        for index, customer in enumerate(customers):
            row = {name: values[index] for name, values in columns.items()}
            state = state_from_online(row, stamps[index])
            result[customer] = (state, state is not None or row.get("first_seen_at") is not None)
        return result

    def _categories(self, frame: pd.DataFrame) -> dict[str, str]:
        """Category of each viewed product, from the online product catalogue."""
        viewed = frame.loc[frame["event_type"] == "product_view", "product_id"].dropna()
        products = list(dict.fromkeys(viewed.astype(str)))
        if not products:
            return {}
        response = self.store.get_online_features(
            features=[f"{catalogue.PRODUCT_CATALOGUE}:product_category"],
            entity_rows=[{"product_id": product} for product in products])
        values = response.to_dict()["product_category"]
        return {product: category for product, category in zip(products, values) if category}


class BackgroundSessionPusher:
    """Runs a `SessionFeaturePusher` on a daemon thread fed by a bounded queue.

    The thread opens the feature store itself, so creating this object costs nothing on
    the caller's thread. When the queue is full, events are dropped with a warning
    (the session features catch up at the next batch; the events are safe in the store).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._queue: queue.Queue[pd.DataFrame | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._thread = threading.Thread(target=self._run, name="tailor-session-push", daemon=True)
        self.ready = threading.Event()
        self.pushed = 0
        self.failures = 0
        self._thread.start()

    def submit(self, events: pd.DataFrame) -> bool:
        """Queue committed events; returns False (and logs) when the queue is full."""
        try:
            self._queue.put_nowait(events)
            return True
        except queue.Full:
            log.warning("session features: push queue full, %d events not pushed", len(events))
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """Push what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _open(self) -> SessionFeaturePusher | None:
        """A pusher on the home's feature store, or None (logged) when it is not set up."""
        from tailor.features.repo import registry_path

        if not registry_path(self.settings).is_file():  # no `tailor features` yet: skip Feast
            log.warning("session features: not pushed, no feature store in %s yet (run `tailor "
                        "features`); looking again in %d s", self.settings.home_path,
                        REOPEN_SECONDS)
            return None
        try:
            pusher = SessionFeaturePusher(self.settings)
            pusher.store.get_data_source(PUSH_SOURCE)  # raises before `tailor features` ran
            return pusher
        except Exception as error:
            log.warning("session features: not pushed, the feature store is not ready (%s: %s); "
                        "retrying in %d s", type(error).__name__, error, REOPEN_SECONDS)
            return None

    def _run(self) -> None:
        pusher = self._open()
        next_attempt = time.monotonic() + REOPEN_SECONDS
        self.ready.set()
        while (events := self._queue.get()) is not None:
            if pusher is None and time.monotonic() >= next_attempt:
                pusher = self._open()
                next_attempt = time.monotonic() + REOPEN_SECONDS
            if pusher is None:
                continue
            try:
                self.pushed += pusher.push_events(events)
            except Exception:  # the next batch may succeed; events stay in the event store
                self.failures += 1
                log.exception("session features: push of %d events failed", len(events))


_PUSHERS: dict[tuple[str, str, str], BackgroundSessionPusher] = {}
_PUSHERS_LOCK = threading.Lock()


def background_pusher(settings: Settings) -> BackgroundSessionPusher:
    """The process's background pusher for these settings' store (created on first use)."""
    key = (str(settings.home_path.resolve()), settings.features_project, settings.redis_url)
    with _PUSHERS_LOCK:
        if key not in _PUSHERS:
            _PUSHERS[key] = BackgroundSessionPusher(settings)
        return _PUSHERS[key]


def notify_events_committed(settings: Settings, events: pd.DataFrame) -> None:
    """Hand committed events to the session-feature pusher; never raises, never blocks.

    Args:
        settings: the collector's settings.
        events: the events just committed (columns of the event contract).
    """
    try:
        if events is not None and len(events):
            background_pusher(settings).submit(events.copy())
    except Exception:  # acknowledging events must never depend on the feature store
        log.exception("session features: could not queue %d events", len(events))


def stop_background_pushers(pushers: Iterable[BackgroundSessionPusher] | None = None) -> None:
    """Stop the background pushers (tests and shutdown)."""
    with _PUSHERS_LOCK:
        targets = list(pushers) if pushers is not None else list(_PUSHERS.values())
        for key in [key for key, value in _PUSHERS.items() if value in targets]:
            del _PUSHERS[key]
    for pusher in targets:
        pusher.stop()
