"""The shop's history as frames for the models, and the train/test splits of the protocol.

Reads: the DuckDB warehouse (`events`, `products`, `customers`), minus the customers the
privacy hook excludes. Writes nothing. Every model fits on a `ShopData`, so tests can build
one from plain rows and the warehouse stays the single source in production.

Session and order keys follow the warehouse's rules (`warehouse/sql/sessions.sql` and
`orders.sql`): a missing session id means a new session after `events.session_gap_minutes`
(30) without an event; a missing order id means one order per customer and session (or per
customer and day).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import numpy as np
import pandas as pd

from tailor.config import Settings
from tailor.errors import InputError
from tailor.models.constants import DEFAULT_TEST_SHARE

log = logging.getLogger(__name__)

DEFAULT_SESSION_GAP = pd.Timedelta(minutes=30)  # events.session_gap_minutes' default
EVENT_FRAME_COLUMNS: tuple[str, ...] = (
    "customer_id", "event_type", "product_id", "timestamp", "session_key", "order_key",
    "price", "quantity", "device_type", "incentive",
)
PRODUCT_FRAME_COLUMNS: tuple[str, ...] = ("product_id", "name", "category", "price", "rating",
                                          "inventory")

EVENTS_SQL = """
SELECT customer_id, event_type, product_id, "timestamp", session_id, order_id, price, quantity,
       device_type,
       CASE WHEN event_type IN ('checkout_start', 'purchase')
            THEN json_extract_string(properties, '$.incentive') END AS incentive
FROM events
WHERE customer_id IS NOT NULL AND "timestamp" IS NOT NULL
  AND customer_id NOT IN (SELECT customer_id FROM excluded_customers)
ORDER BY "timestamp", seq
"""


class NotEnoughData(InputError):
    """The history is too thin for the asked-for job; the message says what is missing."""


@dataclass(frozen=True)
class ShopData:
    """A shop's history: events (time-ordered), catalogue and customers, as pandas frames.

    Attributes:
        events: `EVENT_FRAME_COLUMNS`; timestamps in UTC; one row per event.
        products: `PRODUCT_FRAME_COLUMNS` (missing columns are filled with nulls).
        customers: customer_id, signup_date (may be empty).
        warehouse_settings: the settings of the warehouse this history was read from, and so
            of the Feast store built from it (None for frames built in memory: features are
            then computed locally, and tuning cannot reload the data in worker processes).
        cache: frames derived from this exact history (feature frames that do not change
            between Optuna trials); a cut-down copy starts with an empty one.
    """

    events: pd.DataFrame
    products: pd.DataFrame
    customers: pd.DataFrame
    warehouse_settings: Settings | None = None
    cache: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def start(self) -> pd.Timestamp:
        """Time of the first event."""
        return self.events["timestamp"].iloc[0]

    @property
    def end(self) -> pd.Timestamp:
        """Time of the last event."""
        return self.events["timestamp"].iloc[-1]

    def before(self, cutoff: pd.Timestamp) -> "ShopData":
        """The same shop with only the events strictly before `cutoff`."""
        return replace(self, events=self.events[self.events["timestamp"] < cutoff])

    def purchases(self) -> pd.DataFrame:
        """The purchase events."""
        return self.events[self.events["event_type"] == "purchase"]


def build_shop_data(events: pd.DataFrame, products: pd.DataFrame | None = None,
                    customers: pd.DataFrame | None = None,
                    session_gap: pd.Timedelta = DEFAULT_SESSION_GAP) -> ShopData:
    """A `ShopData` from frames in the data contract (event rows as the warehouse holds them).

    Args:
        events: at least customer_id, event_type, timestamp; product_id, session_id, order_id,
            price, quantity, device_type and incentive are optional.
        products: the catalogue (product_id plus any of category, price, rating, inventory, name).
        customers: customer_id and optionally signup_date.
        session_gap: time without an event that ends a derived session.

    Returns:
        The shop, events sorted by time, session and order keys derived where missing.

    Raises:
        NotEnoughData: there are no events.
    """
    frame = events.copy()
    if frame.empty:
        raise NotEnoughData("no events: ingest events, export the lake and refresh the warehouse")
    for column in ("product_id", "session_id", "order_id", "device_type", "incentive"):
        if column not in frame:
            frame[column] = None
    for column in ("price", "quantity"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else np.nan
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame["session_key"] = session_keys(frame, session_gap)
    frame["order_key"] = order_keys(frame)
    return ShopData(frame[list(EVENT_FRAME_COLUMNS)], _catalogue(products, frame),
                    _customers(customers))


def session_keys(events: pd.DataFrame, gap: pd.Timedelta = DEFAULT_SESSION_GAP) -> pd.Series:
    """Session id per event; missing ids become 'derived:<customer>:<n>', a new n after a gap
    longer than `gap` (`events.session_gap_minutes`)."""
    keys = events["session_id"].astype(object).copy()
    missing = keys.isna()
    if missing.any():
        unsessioned = events.loc[missing, ["customer_id", "timestamp"]]
        gaps = unsessioned.groupby("customer_id", sort=False)["timestamp"].diff()
        starts = (gaps.isna() | (gaps > gap)).astype(int)
        number = starts.groupby(unsessioned["customer_id"], sort=False).cumsum()
        keys[missing] = ("derived:" + unsessioned["customer_id"].astype(str) + ":"
                         + number.astype(str))
    return keys


def order_keys(events: pd.DataFrame) -> pd.Series:
    """Order id per purchase (null for other events); derived like the warehouse's orders."""
    is_purchase = events["event_type"] == "purchase"
    keys = events["order_id"].astype(object).where(is_purchase, None)
    missing = is_purchase & events["order_id"].isna()
    if missing.any():
        rows = events.loc[missing]
        day = rows["timestamp"].dt.strftime("%Y-%m-%d")
        basket = rows["session_id"].astype(object).where(rows["session_id"].notna(), day)
        keys[missing] = "derived:" + rows["customer_id"].astype(str) + ":" + basket.astype(str)
    return keys


def _catalogue(products: pd.DataFrame | None, events: pd.DataFrame) -> pd.DataFrame:
    """The catalogue with every product seen in events, missing columns as nulls."""
    catalogue = pd.DataFrame(columns=list(PRODUCT_FRAME_COLUMNS)) if products is None \
        else products.copy()
    for column in PRODUCT_FRAME_COLUMNS:
        if column not in catalogue:
            catalogue[column] = None
    catalogue = catalogue[list(PRODUCT_FRAME_COLUMNS)].dropna(subset=["product_id"])
    catalogue["product_id"] = catalogue["product_id"].astype(str)
    seen = pd.Series(events["product_id"].dropna().unique(), dtype=object)
    unseen = seen[~seen.isin(catalogue["product_id"])]
    if len(unseen):
        catalogue = pd.concat([catalogue, pd.DataFrame({"product_id": unseen})], ignore_index=True)
    for column in ("price", "rating", "inventory"):
        catalogue[column] = pd.to_numeric(catalogue[column], errors="coerce")
    catalogue["category"] = catalogue["category"].astype(object)
    return catalogue.drop_duplicates("product_id").reset_index(drop=True)


def _customers(customers: pd.DataFrame | None) -> pd.DataFrame:
    if customers is None or customers.empty:
        return pd.DataFrame({"customer_id": pd.Series(dtype=object),
                             "signup_date": pd.Series(dtype="datetime64[ns, UTC]")})
    frame = customers[[c for c in ("customer_id", "signup_date") if c in customers]].copy()
    if "signup_date" not in frame:
        frame["signup_date"] = pd.NaT
    frame["signup_date"] = pd.to_datetime(frame["signup_date"], utc=True, errors="coerce")
    return frame


def load_shop_data(settings: Settings, excluded_customers: Iterable[str] = ()) -> ShopData:
    """Read the shop's history from the warehouse.

    Args:
        settings: names the warehouse (`warehouse_file`, `lake_root`).
        excluded_customers: customer ids left out entirely (deleted or opted out).

    Returns:
        The `ShopData`.

    Raises:
        FileNotFoundError: the warehouse was never built.
        NotEnoughData: the warehouse holds no events.
    """
    from tailor.warehouse import open_warehouse

    connection = open_warehouse(settings, read_only=True)
    try:
        excluded = pd.DataFrame({"customer_id": pd.Series(sorted(excluded_customers),
                                                          dtype=object)})
        connection.register("excluded_customers", excluded)
        events = connection.execute(EVENTS_SQL).df()
        products = connection.execute("SELECT * FROM products").df()
        customers = connection.execute(
            "SELECT customer_id, signup_date FROM customers "
            "WHERE customer_id NOT IN (SELECT customer_id FROM excluded_customers)").df()
    finally:
        connection.close()
    events, customers = _without_forgotten(settings, events, customers)
    log.info("loaded %d events, %d products, %d customers from the warehouse",
             len(events), len(products), len(customers))
    gap = pd.Timedelta(minutes=settings.events_session_gap_minutes)
    return replace(build_shop_data(events, products, customers, gap), warehouse_settings=settings)


def _without_forgotten(settings: Settings, events: pd.DataFrame, customers: pd.DataFrame
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events and customers without the forgotten ones (`tailor forget`'s tombstones): their
    rows are gone from the lake already; this keeps a copy restored from a backup out too."""
    from tailor.events.tombstones import TombstoneSet

    tombstones = TombstoneSet(settings.home_path)
    if not tombstones.current():
        return events, customers
    gone = tombstones.forgotten_among(pd.unique(pd.concat(
        [events["customer_id"], customers["customer_id"]]).dropna()))
    if not gone:
        return events, customers
    return events[~events["customer_id"].isin(gone)].reset_index(drop=True), \
        customers[~customers["customer_id"].isin(gone)].reset_index(drop=True)


def data_version(data: ShopData) -> str:
    """A short fingerprint of the history (event count, time range, catalogue size)."""
    text = (f"{len(data.events)}|{data.start.isoformat()}|{data.end.isoformat()}|"
            f"{len(data.products)}")
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- splits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """A train/test split of one shop.

    Attributes:
        kind: "time" (one cutoff for everyone) or "user" (each customer's last events).
        train: the shop as known at training time.
        test_events: the held-out events.
        cutoff: the split time for kind "time"; for "user", the median per-customer cut.
    """

    kind: str
    train: ShopData
    test_events: pd.DataFrame
    cutoff: pd.Timestamp

    @property
    def test_window_days(self) -> float:
        """Days from the cutoff to the last test event."""
        if self.test_events.empty:
            return 0.0
        return (self.test_events["timestamp"].max() - self.cutoff) / pd.Timedelta(days=1)


def default_cutoff(data: ShopData, test_share: float = DEFAULT_TEST_SHARE) -> pd.Timestamp:
    """The time that leaves the last `test_share` of the time range for testing."""
    return data.start + (data.end - data.start) * (1.0 - test_share)


def parse_cutoff(text: str | None, data: ShopData) -> pd.Timestamp:
    """An ISO cutoff (naive means UTC), or the default; must fall inside the history.

    Raises:
        InputError: the text is not a time, or leaves no events on one side.
    """
    if not text:
        return default_cutoff(data)
    try:
        cutoff = pd.Timestamp(text)
    except ValueError:
        raise InputError(f"cutoff: {text!r} is not an ISO 8601 time") from None
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    if not data.start < cutoff <= data.end:
        raise InputError(f"cutoff: {cutoff.isoformat()} is outside the history "
                         f"({data.start.isoformat()} .. {data.end.isoformat()})")
    return cutoff


def split_by_time(data: ShopData, cutoff: pd.Timestamp) -> Split:
    """Events before `cutoff` train; events at or after it test."""
    is_test = data.events["timestamp"] >= cutoff
    return Split("time", replace(data, events=data.events[~is_test]), data.events[is_test], cutoff)


def split_by_user(data: ShopData, test_share: float = DEFAULT_TEST_SHARE) -> Split:
    """Each customer's last `test_share` of events (by time) test; the rest train.

    Customers with fewer than 2 events stay wholly in training.
    """
    events = data.events
    position = events.groupby("customer_id", sort=False).cumcount()
    count = events.groupby("customer_id", sort=False)["customer_id"].transform("size")
    first_test = np.ceil(count * (1.0 - test_share)).clip(lower=1)
    is_test = (position >= first_test) & (count >= 2)
    test_events = events[is_test]
    cutoff = test_events.groupby("customer_id")["timestamp"].min().median() \
        if len(test_events) else data.end
    return Split("user", replace(data, events=events[~is_test]), test_events, cutoff)


def make_split(data: ShopData, kind: str = "time",
               cutoff: str | pd.Timestamp | None = None) -> Split:
    """The protocol's split: "time" at `cutoff` (default: last 20%), or "user".

    Raises:
        InputError: an unknown kind, a bad cutoff, or an empty side.
    """
    if kind == "user":
        if cutoff is not None:
            raise InputError("cutoff: applies to --split time only")
        split = split_by_user(data)
    elif kind == "time":
        moment = cutoff if isinstance(cutoff, pd.Timestamp) else parse_cutoff(cutoff, data)
        split = split_by_time(data, moment)
    else:
        raise InputError(f"split: must be 'time' or 'user', got {kind!r}")
    if split.train.events.empty or split.test_events.empty:
        raise NotEnoughData(f"the {kind} split leaves no events on one side; use a cutoff "
                            "inside the history or more data")
    return split
