"""Conversions between data frames and database rows, shared by both event store backends.

Reads and writes nothing itself: the SQLite and PostgreSQL stores call these to turn
validated frames into column lists for bulk writes, and query results back into
frames with the contract's column names and dtypes (timestamps tz-aware UTC).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from tailor.events.schema import (
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    PII_COLUMNS,
    PRODUCT_COLUMNS,
    derive_event_ids,
    parse_timestamps,
)
from tailor.events.value_limits import storable

MICROS_PER_DAY = 86_400_000_000
# Column order of the `events` table after `seq`; the bulk paths write in this order.
EVENT_TABLE_COLUMNS: tuple[str, ...] = EVENT_COLUMNS + ("received_at", "batch_id")
REJECTED_COLUMNS: tuple[str, ...] = (
    "id", "batch_id", "source", "received_at", "row_number", "reason", "field", "detail", "raw",
)
INGEST_RUN_COLUMNS: tuple[str, ...] = (
    "batch_id", "source", "started_at", "finished_at", "received", "accepted", "duplicates",
    "rejected", "status", "abort_reason",
)
EVENT_FLOAT_COLUMNS = ("price", "quantity")
PRODUCT_FLOAT_COLUMNS = ("price", "rating")


def utc_now() -> pd.Timestamp:
    """The current time as a tz-aware UTC timestamp."""
    return pd.Timestamp.now(tz="UTC")


def as_utc(values: pd.Series) -> pd.Series:
    """Any timestamp-like series as datetime64[ns, UTC] (naive means UTC; text is parsed)."""
    return parse_timestamps(values)


def timestamp_micros(value: pd.Timestamp) -> int:
    """One timestamp (naive means UTC) as integer epoch microseconds."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.value // 1000


def series_micros(values: pd.Series) -> list[int | None]:
    """A timestamp series as epoch microseconds, None where missing."""
    stamps = as_utc(values)
    micros = stamps.to_numpy(dtype="datetime64[us]").astype("int64")
    missing = stamps.isna().to_numpy()
    if not missing.any():
        return micros.tolist()
    return [None if gone else int(value) for value, gone in zip(micros, missing)]


def micros_to_timestamps(values: Iterable[int | None]) -> pd.Series:
    """Epoch microseconds (None allowed) as a datetime64[ns, UTC] series."""
    values = values if isinstance(values, (list, tuple)) else list(values)
    try:
        micros = np.array(values, dtype="int64")  # the common case: no missing value
    except (TypeError, ValueError):  # None (or NaN) somewhere
        stamps = pd.to_datetime(pd.array(values, dtype="Int64"), unit="us", utc=True)
        return pd.Series(stamps).astype("datetime64[ns, UTC]")
    return pd.Series(micros * 1000, dtype="int64").astype("datetime64[ns, UTC]")


def object_list(values: pd.Series) -> list[Any]:
    """A series as a Python list with None for every missing value (what drivers bind as NULL)."""
    if values.dtype.kind in "iub":
        return values.tolist()
    return object_array(values).tolist()


def object_array(values: pd.Series) -> np.ndarray:
    """A series as an object array of Python values, None for every missing value."""
    objects = values.to_numpy(dtype=object)
    missing = pd.isna(objects)  # on the array: far cheaper than Series.isna for small frames
    if missing.any():
        objects = objects.copy()
        objects[missing] = None
    return objects


def complete_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events with every contract column, UTC timestamps and an event_id on each row.

    Frames from `validate_events` already satisfy this; other writers (tests, the
    collector) may leave optional columns out.

    Raises:
        ValueError: a timestamp missing or unparseable, or an infinite price or quantity
            (`validate_events` turns such rows into dead letters; neither store keeps them).
    """
    # A shallow copy when the index is already 0..n-1: columns below are replaced, never
    # written into, so the caller's frame stays as it was without copying every column.
    frame = (events.copy(deep=False) if events.index.equals(pd.RangeIndex(len(events)))
             else events.reset_index(drop=True))
    missing = [name for name in EVENT_COLUMNS if name not in frame.columns]
    if missing:
        frame = frame.assign(**{name: None for name in missing})
    if str(frame["timestamp"].dtype) != "datetime64[ns, UTC]":
        frame["timestamp"] = as_utc(frame["timestamp"])
    if frame["timestamp"].isna().any():
        raise ValueError("insert_events: timestamp missing or unparseable; validate events first")
    for name in EVENT_FLOAT_COLUMNS:
        if frame[name].dtype.kind != "f":
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        if np.isinf(frame[name].to_numpy()).any():  # validate_events refuses these rows
            raise ValueError(f"insert_events: {name} holds a number that is not finite "
                             "(infinity); validate events first")
    no_id = frame["event_id"].isna().to_numpy()
    if no_id.any():
        event_ids = frame["event_id"].to_numpy(dtype=object, copy=True)
        event_ids[no_id] = derive_event_ids(frame[no_id]).to_numpy()
        frame["event_id"] = event_ids
    return frame


def event_matrix(events: pd.DataFrame, *constants: Any) -> np.ndarray:
    """Complete events as an object matrix of Python values, one row per event.

    Columns are `EVENT_COLUMNS` (timestamp as epoch microseconds, None for missing
    values) followed by one column per constant (e.g. the receive time and batch id).
    """
    matrix = np.empty((len(events), len(EVENT_COLUMNS) + len(constants)), dtype=object)
    for position, name in enumerate(EVENT_COLUMNS):
        if name == "timestamp":
            matrix[:, position] = events[name].to_numpy(dtype="datetime64[us]").astype("int64")
        else:
            matrix[:, position] = object_array(events[name])
    for position, value in enumerate(constants, start=len(EVENT_COLUMNS)):
        matrix[:, position] = value
    return matrix


def events_frame(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Rows of `events` (timestamps as epoch microseconds) as a typed frame.

    One 2-D object array, then typed columns cut from it: faster than `from_records`
    for the million-row pages the lake export reads.
    """
    names = list(columns)
    matrix = np.empty((len(rows), len(names)), dtype=object)
    if rows:
        matrix[:] = rows
    frame = pd.DataFrame(matrix, columns=names)
    for position, name in enumerate(names):
        if name in ("timestamp", "received_at"):
            frame[name] = micros_to_timestamps(matrix[:, position].tolist())
        elif name in EVENT_FLOAT_COLUMNS:
            frame[name] = matrix[:, position].astype("float64")  # None becomes NaN
        elif name == "seq":
            frame[name] = matrix[:, position].astype("int64")
    return frame


def _timestamps_column(values: pd.Series) -> pd.Series:
    """A result column of epoch microseconds or datetimes as datetime64[ns, UTC]."""
    first = values.iloc[0] if len(values) else None
    if values.dtype.kind in "iuf" or isinstance(first, (int, np.integer)):
        return micros_to_timestamps(values.tolist()).set_axis(values.index)
    if len(values) == 0:
        return pd.Series([], index=values.index, dtype="datetime64[ns, UTC]")
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def check_no_pii(columns: Iterable[str]) -> None:
    """Raise ValueError naming any PII column: those belong in the PII store only."""
    found = [name for name in columns if str(name).strip().lower() in PII_COLUMNS]
    if found:
        raise ValueError(
            "upsert_customers: PII column(s) " + ", ".join(found)
            + " must be split off into the PII store before writing customers"
        )


def extra_json(frame: pd.DataFrame, known: Sequence[str]) -> list[str]:
    """Columns beyond `known`, per row, as compact JSON text ('{}' when there are none)."""
    extras = [name for name in frame.columns if name not in known]
    if not extras:
        return ["{}"] * len(frame)
    records = frame[extras].astype(object).where(frame[extras].notna(), None).to_dict("records")
    return [json.dumps({str(k): _plain(v) for k, v in record.items()}, sort_keys=True,
                       separators=(",", ":")) for record in records]


def _plain(value: Any) -> Any:
    """A value JSON can hold: numpy scalars unwrapped, timestamps as ISO text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return value


def last_per_key(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Rows with a key, one per key (the last wins, as a later line overrides an earlier one)."""
    keys = frame[key].astype(object).where(frame[key].notna(), None)
    keys = keys.map(lambda value: None if value is None else str(value).strip() or None)
    kept = frame.assign(**{key: keys})
    kept = kept[kept[key].notna()]
    return kept.drop_duplicates(subset=[key], keep="last").reset_index(drop=True)


def parse_flags(values: pd.Series) -> list[bool | None]:
    """true/false, yes/no, 1/0 (any case) as booleans; anything else None."""
    truthy = {"true", "t", "yes", "y", "1", "1.0"}
    falsy = {"false", "f", "no", "n", "0", "0.0"}

    def one(value: Any) -> bool | None:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        text = str(value).strip().lower()
        return True if text in truthy else False if text in falsy else None

    return [one(value) for value in values.astype(object).tolist()]


def finite_numbers(values: pd.Series) -> pd.Series:
    """Catalogue numbers as float64, with NaN for anything that is not a finite number
    (text, `inf`, `nan`, overflows): a catalogue value a store would keep as Infinity."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers.to_numpy()), np.nan)


def product_column_lists(products: pd.DataFrame) -> list[list[Any]]:
    """Catalogue rows as column lists in `PRODUCT_COLUMNS` order plus `extra` JSON."""
    frame = last_per_key(products, "product_id")
    full = frame.assign(**{name: None for name in PRODUCT_COLUMNS if name not in frame.columns})
    lists: list[list[Any]] = [object_list(full["product_id"].astype(object))]
    for name in ("name", "category"):
        text = full[name].astype(object).where(full[name].notna(), None)
        lists.append([None if value is None else str(value) for value in text.tolist()])
    for name in PRODUCT_FLOAT_COLUMNS:
        lists.append(object_list(finite_numbers(full[name])))
    inventory = finite_numbers(full["inventory"])
    lists.append([None if np.isnan(value) else int(value) for value in inventory.tolist()])
    lists.append(parse_flags(full["seasonal"]))
    lists.append(extra_json(frame, PRODUCT_COLUMNS))
    return lists


def products_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Catalogue rows (PRODUCT_COLUMNS + extra) as a typed frame."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(PRODUCT_COLUMNS) + ["extra"])
    for name in ("product_id", "name", "category", "extra"):
        frame[name] = frame[name].astype(object)
    for name in PRODUCT_FLOAT_COLUMNS:
        frame[name] = pd.to_numeric(frame[name]).astype("float64")
    frame["inventory"] = pd.array(frame["inventory"].tolist(), dtype="Int64")
    frame["seasonal"] = pd.array(
        [None if pd.isna(value) else bool(value) for value in frame["seasonal"].tolist()],
        dtype="boolean")
    return frame


def customer_column_lists(customers: pd.DataFrame) -> list[list[Any]]:
    """Pseudonymous customer rows as column lists in `CUSTOMER_COLUMNS` order plus `extra`.

    `signup_date` becomes epoch microseconds (None when missing or unparseable).
    """
    check_no_pii(customers.columns)
    frame = last_per_key(customers, "customer_id")
    full = frame.assign(**{name: None for name in CUSTOMER_COLUMNS if name not in frame.columns})
    lists: list[list[Any]] = [full["customer_id"].astype(object).tolist()]
    lists.append(series_micros(full["signup_date"]))
    for name in ("location", "device_type"):
        text = full[name].astype(object).where(full[name].notna(), None)
        lists.append([None if value is None else str(value) for value in text.tolist()])
    lists.append(extra_json(frame, CUSTOMER_COLUMNS))
    return lists


def customers_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Customer rows (CUSTOMER_COLUMNS + extra) as a typed frame, signup_date tz-aware UTC."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(CUSTOMER_COLUMNS) + ["extra"])
    frame["signup_date"] = _timestamps_column(frame["signup_date"])
    for name in ("customer_id", "location", "device_type", "extra"):
        frame[name] = frame[name].astype(object)
    return frame


def rejected_column_lists(rejected: pd.DataFrame) -> list[list[Any]]:
    """Dead-letter rows as column lists: row_number, reason, field, detail, raw, customer_id.

    `customer_id` (for deletion requests) comes from the frame's own column when it
    has one, else from `raw` when that is a JSON object naming one.
    """
    full = rejected.reset_index(drop=True)
    full = full.assign(**{name: None for name in ("row_number", "reason", "field", "detail", "raw")
                          if name not in full.columns})
    row_numbers = [None if value is None or (isinstance(value, float) and np.isnan(value))
                   else int(value) for value in full["row_number"].astype(object).tolist()]
    lists: list[list[Any]] = [row_numbers]
    for name in ("reason", "field", "detail", "raw"):
        lists.append([None if value is None else storable(str(value))
                      for value in object_list(full[name].astype(object))])
    if "customer_id" in full.columns:
        lists.append([None if value is None else storable(str(value))
                      for value in object_list(full["customer_id"].astype(object))])
    else:
        lists.append([_raw_customer_id(raw) for raw in lists[4]])
    return lists


def _raw_customer_id(raw: str | None) -> str | None:
    """The customer_id a raw JSON row names, if any."""
    if not raw or not raw.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(raw).get("customer_id")
    except (ValueError, AttributeError):
        return None
    return None if value is None else storable(str(value))


def rejected_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Dead-letter rows as a frame (received_at tz-aware UTC)."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(REJECTED_COLUMNS))
    frame["received_at"] = _timestamps_column(frame["received_at"])
    frame["id"] = frame["id"].astype("int64")
    frame["row_number"] = pd.array(frame["row_number"].tolist(), dtype="Int64")
    return frame


def ingest_runs_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Ingest runs as a frame: times tz-aware UTC, `rejected` a dict per row, `status`
    (finished or aborted) and `abort_reason` as text."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(INGEST_RUN_COLUMNS))
    for name in ("started_at", "finished_at"):
        frame[name] = _timestamps_column(frame[name])
    for name in ("received", "accepted", "duplicates"):
        frame[name] = frame[name].astype("int64")
    frame["rejected"] = [value if isinstance(value, dict) else json.loads(value or "{}")
                         for value in frame["rejected"].tolist()]
    return frame


def daily_counts_frame(rows: Sequence[tuple[Any, int]]) -> pd.DataFrame:
    """(date, events) rows as a frame with `date` as datetime.date."""
    frame = pd.DataFrame.from_records(list(rows), columns=["date", "events"])
    frame["events"] = frame["events"].astype("int64")
    frame["date"] = frame["date"].astype(object)
    return frame
