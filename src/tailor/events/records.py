"""Validation of events given as JSON objects: the collector's fast path for small batches.

Reads and writes nothing. `validate_records` turns a list of dicts (a collector batch
after enrichment) into the `ValidationResult` that `validate_events` gives for a frame of
the same rows, without paying the vectorised check's fixed cost (about 10 ms per call,
whatever the number of rows) on every 100-event batch.

A row takes the fast path when each of its values has a plain form (text ids; an
ISO 8601 time to the second with `Z` or `±HH:MM` inside the plausibility window, or epoch
seconds or milliseconds (from 1e11) as a JSON number; a zone-less time goes to the frame
path, which reads it in `events.naive_timezone` and counts it;
numbers as JSON numbers or plain decimal text; properties as an object) and it passes
every rule of the contract. Every other row, that is any row that is rejected and any
value only the lenient parsers read, goes to `validate_events` with the others like it,
so rejection reasons and details come from that one place.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from tailor.events.schema import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    MAX_STRING_LENGTH,
    NUL,
    PRODUCT_EVENT_TYPES,
    STRING_COLUMNS,
    TimestampRules,
    ValidationResult,
    derive_event_ids,
    from_epoch,
    validate_events,
)
from tailor.events.value_limits import MAX_PRICE, MAX_QUANTITY, is_storable_text, json_object_text

FrameCheck = Callable[[pd.DataFrame], ValidationResult]

_ISO_SECONDS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?",
    re.ASCII)
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_EVENT_TYPES = frozenset(EVENT_TYPES)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NANOS = 1_000_000_000
# Years whose times fit pandas' nanosecond range whatever the zone offset.
_FIRST_YEAR, _LAST_YEAR = 1678, 2261
_EXACT_INT = 2 ** 53  # larger JSON integers lose digits as float64: the frame path decides
_STRING_POSITIONS = tuple(EVENT_COLUMNS.index(name) for name in STRING_COLUMNS)
(_CUSTOMER, _TYPE, _PRODUCT, _TIME, _PRICE, _QUANTITY, _PROPERTIES) = (
    EVENT_COLUMNS.index(name) for name in
    ("customer_id", "event_type", "product_id", "timestamp", "price", "quantity", "properties"))


class _FramePath(Exception):
    """A value outside the plain forms, or a broken rule: the frame path checks the row."""


def _text(value: Any) -> str | None:
    """A string-column value as `validate_events` cleans it (stripped, empty as None)."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        text = value.strip()
        if len(text) > MAX_STRING_LENGTH or NUL in text or not is_storable_text(text):
            raise _FramePath
        return text or None
    if kind is int and -_EXACT_INT < value < _EXACT_INT:
        return str(value)
    raise _FramePath


def _number(value: Any) -> float:
    """A price or quantity as float (NaN when absent)."""
    if value is None:
        return math.nan
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int and -_EXACT_INT < value < _EXACT_INT:
        number = float(value)
    elif kind is str:
        text = value.strip()
        if not text:
            return math.nan
        if not _PLAIN_NUMBER.fullmatch(text):
            raise _FramePath
        number = float(text)
    else:
        raise _FramePath
    if not math.isfinite(number):
        raise _FramePath
    return number


def _properties(value: Any) -> str | None:
    """Properties as compact, key-sorted JSON object text (None when absent)."""
    if value is None:
        return None
    if type(value) is str:
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError:
            raise _FramePath from None
    if type(value) is not dict:
        raise _FramePath
    text, problem = json_object_text(value)
    if problem is not None:
        raise _FramePath
    return text


def iso_nanos(text: str) -> int:
    """Epoch nanoseconds of an ISO 8601 time with seconds and a zone (`Z` or `±HH:MM`).

    Raises:
        _FramePath: another form, no zone (the frame path applies `events.naive_timezone`
            and counts it), an impossible date or time, or a year out of range.
    """
    match = _ISO_SECONDS.fullmatch(text)
    if match is None:
        raise _FramePath
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone is None:
        raise _FramePath
    if not _FIRST_YEAR <= int(year) <= _LAST_YEAR or int(hour) > 23 or int(minute) > 59 \
            or int(second) > 59:
        raise _FramePath
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise _FramePath from None
    offset = 0
    if zone and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise _FramePath
        offset = (hours * 3600 + minutes * 60) * (1 if zone[0] == "+" else -1)
    seconds = days * 86_400 + int(hour) * 3600 + int(minute) * 60 + int(second) - offset
    return seconds * _NANOS + (int(fraction.ljust(9, "0")) if fraction else 0)


def _time(value: Any) -> int | float:
    """Epoch nanoseconds (int) of an ISO text, or the epoch number (float: seconds or
    milliseconds, as `from_epoch` reads them) of a JSON number.

    Epoch numbers are converted later, all at once, by the frame path's own function.
    """
    kind = type(value)
    if kind is str:
        return iso_nanos(value.strip())
    if kind is float or (kind is int and -_EXACT_INT < value < _EXACT_INT):
        return float(value)
    raise _FramePath


def _plain_row(record: Any) -> list[Any]:
    """The row's contract values, normalised, in `EVENT_COLUMNS` order.

    The time is epoch nanoseconds, or an epoch number (float) still to be converted; the
    future-time rule is checked once it is converted.

    Raises:
        _FramePath: a value outside the plain forms, or a rule of the contract is broken.
    """
    get = record.get
    row: list[Any] = [None] * len(EVENT_COLUMNS)
    for position in _STRING_POSITIONS:
        row[position] = _text(get(EVENT_COLUMNS[position]))
    event_type = row[_TYPE]
    if row[_CUSTOMER] is None or event_type not in _EVENT_TYPES:
        raise _FramePath
    if row[_PRODUCT] is None and event_type in PRODUCT_EVENT_TYPES:
        raise _FramePath
    row[_TIME] = _time(get("timestamp"))
    price, quantity = _number(get("price")), _number(get("quantity"))
    if price <= 0 or quantity <= 0 or quantity % 1 > 0:  # NaN (absent) passes each test
        raise _FramePath
    if price > MAX_PRICE or quantity > MAX_QUANTITY:
        raise _FramePath
    row[_PRICE], row[_QUANTITY] = price, quantity
    row[_PROPERTIES] = _properties(get("properties"))
    return row


def _epoch_to_nanos(rows: list[list[Any]]) -> None:
    """Replace epoch numbers by nanoseconds in place, through `from_epoch` (so the
    rounding is the frame path's); values out of its range become None."""
    pending = [row for row in rows if type(row[_TIME]) is float]
    if not pending:
        return
    converted = from_epoch(np.array([row[_TIME] for row in pending], dtype="float64"))
    for row, stamp in zip(pending, converted):
        row[_TIME] = None if stamp is pd.NaT else stamp.value


def _fast_frame(rows: list[list[Any]]) -> pd.DataFrame:
    """Normalised rows as the frame `validate_events` returns (dtypes included)."""
    matrix = np.empty((len(rows), len(EVENT_COLUMNS)), dtype=object)
    if rows:
        matrix[:] = rows
    data: dict[str, Any] = {}
    for position, name in enumerate(EVENT_COLUMNS):
        values = matrix[:, position]
        if position == _TIME:
            nanos = values.astype("int64").view("datetime64[ns]")
            data[name] = pd.DatetimeIndex(nanos).tz_localize("UTC")
        elif position in (_PRICE, _QUANTITY):
            data[name] = values.astype("float64")
        else:
            data[name] = values
    frame = pd.DataFrame(data, copy=False)
    missing_id = frame["event_id"].isna()
    if missing_id.any():
        frame.loc[missing_id, "event_id"] = derive_event_ids(frame.loc[missing_id])
    return frame


def split_plain(records: Sequence[Any], *, now: pd.Timestamp, max_future_seconds: int,
                known_products: set[str] | None, timestamps: TimestampRules | None = None
                ) -> tuple[list[int], list[list[Any]], list[int]]:
    """Split rows into those the fast path accepts and those the frame path must check.

    Rows stamped outside [`timestamps.earliest`, now + max_future_seconds] go to the frame
    path, which rejects them with the reason.

    Returns:
        The positions of the accepted rows, their normalised values, and the positions of
        the other rows.
    """
    checked: list[tuple[int, list[Any]]] = []
    others: list[int] = []
    for position, record in enumerate(records):
        try:
            row = _plain_row(record)
        except Exception:  # _FramePath, or an object odder than JSON gives: the frame path
            others.append(position)
            continue
        if known_products and row[_PRODUCT] is not None and row[_PRODUCT] not in known_products:
            others.append(position)
        else:
            checked.append((position, row))
    _epoch_to_nanos([row for _, row in checked])
    limit = (now + pd.Timedelta(seconds=max_future_seconds)).value
    earliest = (timestamps or TimestampRules()).earliest.value
    accepted = [(position, row) for position, row in checked
                if row[_TIME] is not None and earliest <= row[_TIME] <= limit]
    if len(accepted) < len(checked):  # implausible or future: the frame path says why
        taken = {position for position, _ in accepted}
        others = sorted(others + [position for position, _ in checked if position not in taken])
    return [position for position, _ in accepted], [row for _, row in accepted], others


def validate_records(records: Sequence[Any], *, now: pd.Timestamp,
                     known_products: set[str] | None = None, max_future_seconds: int = 300,
                     first_row_number: int = 0,
                     check_frame: FrameCheck | None = None,
                     timestamps: TimestampRules | None = None) -> ValidationResult:
    """`validate_events` for rows given as dicts, with plain valid rows checked in Python.

    Args:
        records: one dict per event (contract keys; others are ignored).
        now, known_products, max_future_seconds, first_row_number: as for `validate_events`.
        check_frame: checks the rows that leave the fast path, given as a frame with
            `EVENT_COLUMNS` (default: `validate_events` with these arguments).
        timestamps: the plausibility window and naive zone, as for `validate_events`
            (a `check_frame` given should apply the same).

    Returns:
        The `ValidationResult` of all rows, valid rows in input order.
    """
    if check_frame is None:
        def check_frame(frame: pd.DataFrame) -> ValidationResult:
            return validate_events(frame, now=now, known_products=known_products,
                                   max_future_seconds=max_future_seconds, timestamps=timestamps)
    positions, rows, others = split_plain(records, now=now, max_future_seconds=max_future_seconds,
                                          known_products=known_products, timestamps=timestamps)
    fast = _fast_frame(rows)
    zone = (timestamps or TimestampRules()).naive_timezone
    if not others:
        return ValidationResult(valid=fast, rejected=_no_rejections(), naive_timezone=zone)
    slow_frame = records_frame([records[position] for position in others])
    slow = check_frame(slow_frame)
    others_array = np.array(others, dtype="int64")
    refused = slow.rejected["row_number"].to_numpy(dtype="int64")
    rejected = slow.rejected.assign(row_number=others_array[refused] + first_row_number)
    slow_kept = others_array[np.setdiff1d(np.arange(len(others)), refused)]
    return ValidationResult(valid=_merged(fast, positions, slow.valid, slow_kept),
                            rejected=rejected.reset_index(drop=True),
                            naive_timestamps=slow.naive_timestamps, naive_timezone=zone)


def records_frame(records: Sequence[Any]) -> pd.DataFrame:
    """Rows given as dicts as a frame with `EVENT_COLUMNS`, types inferred as pandas does;
    columns holding an integer too large for float64 stay Python objects."""
    try:
        return pd.DataFrame.from_records(records, columns=list(EVENT_COLUMNS))
    except OverflowError:
        return pd.DataFrame({name: pd.Series([record.get(name) for record in records],
                                             dtype=object)
                             for name in EVENT_COLUMNS})


def _merged(fast: pd.DataFrame, fast_positions: list[int], slow: pd.DataFrame,
            slow_positions: np.ndarray) -> pd.DataFrame:
    """The valid rows of both paths in input order."""
    if slow.empty:
        return fast
    if fast.empty:
        return slow.reset_index(drop=True)
    order = np.argsort(np.concatenate([np.array(fast_positions, dtype="int64"), slow_positions]),
                       kind="stable")
    both = pd.concat([fast, slow], ignore_index=True)
    return both.iloc[order].reset_index(drop=True)


def _no_rejections() -> pd.DataFrame:
    """An empty rejected frame with `validate_events`' columns and dtypes."""
    return pd.DataFrame({"row_number": np.array([], dtype="int64"),
                         **{name: np.array([], dtype=object)
                            for name in ("reason", "field", "detail", "raw")}})
