"""The event data contract: column names, event types, rejection reasons and row validation.

One place for the contract of ARCHITECTURE.md, shared by file import, the HTTP
collector and the simulator. `validate_events` is vectorised (pandas) so that it
keeps up with bulk import; it never raises on bad rows, it sorts them out.

Timestamps (`TimestampRules`, from the `events.*` settings and the import's flags; read by
`tailor.events.timestamps`): a time before `events.min_timestamp` (default 2000-01-01 UTC),
or one outside the range a timestamp can be stored in at all (years before 1678 or after
2261, e.g. 0001-01-01), is rejected as `implausible_timestamp`; one after the receive time
plus the tolerated skew as `future_timestamp`; one in no form that may be read (e.g. a
day/month date without `dayfirst`) as `malformed_row`. Zone-less values are read in
`naive_timezone` and counted (`ValidationResult.naive_timestamps`), and each form read is
counted (`ValidationResult.timestamp_forms`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tailor.errors import InputError
from tailor.events.arrow_text import (
    NUMBER_PATTERN,
    number_or_nan,
    object_series,
    text_array,
    trimmed,
)
from tailor.events.timestamps import (  # noqa: F401 (TimestampRules and the parsers: re-exported)
    DEFAULT_MIN_TIMESTAMP,
    DEFAULT_NAIVE_TIMEZONE,
    TimestampRules,
    from_epoch,
    out_of_range_times,
    parse_event_timestamps,
    parse_timestamps,
    read_timestamps,
    unreadable_detail,
)
from tailor.events.value_limits import (
    MAX_ID_DIGITS,
    MAX_PRICE,
    MAX_QUANTITY,
    NOT_UNICODE,
    as_float,
    id_number_problem,
    is_storable_text,
    json_object_text,
    shown_number,
)

EVENT_TYPES: tuple[str, ...] = (
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
    "checkout_start", "purchase", "click", "email_open", "email_click",
)
# Event types that are about one product and so must name it.
PRODUCT_EVENT_TYPES: frozenset[str] = frozenset(
    {"product_view", "add_to_cart", "remove_from_cart", "purchase"}
)

REQUIRED_EVENT_COLUMNS: tuple[str, ...] = ("customer_id", "event_type", "timestamp")
STRING_COLUMNS: tuple[str, ...] = (
    "event_id", "customer_id", "event_type", "product_id", "session_id", "order_id",
    "device_type", "query",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "customer_id", "event_type", "product_id", "timestamp", "session_id",
    "price", "quantity", "order_id", "device_type", "query", "properties",
)

PRODUCT_COLUMNS: tuple[str, ...] = (
    "product_id", "name", "category", "price", "rating", "inventory", "seasonal",
)
CUSTOMER_COLUMNS: tuple[str, ...] = ("customer_id", "signup_date", "location", "device_type")
# Personally identifying columns: kept in the PII store only, never in events,
# features, models, logs or reports.
PII_COLUMNS: tuple[str, ...] = ("email", "name", "first_name", "last_name", "phone", "address")

# Rejection reasons, in the order they are checked: a row with several problems is
# rejected for the first. Duplicates are not rejections (they are counted and stored once).
MALFORMED_ROW = "malformed_row"
IMPLAUSIBLE_TIMESTAMP = "implausible_timestamp"
MISSING_CUSTOMER_ID = "missing_customer_id"
MISSING_PRODUCT_ID = "missing_product_id"
FUTURE_TIMESTAMP = "future_timestamp"
NONPOSITIVE_PRICE = "nonpositive_price"
UNKNOWN_PRODUCT = "unknown_product"
REJECT_REASONS: tuple[str, ...] = (
    MALFORMED_ROW, IMPLAUSIBLE_TIMESTAMP, MISSING_CUSTOMER_ID, MISSING_PRODUCT_ID, FUTURE_TIMESTAMP,
    NONPOSITIVE_PRICE, UNKNOWN_PRODUCT,
)
DUPLICATE_EVENT_ID = "duplicate_event_id"

MAX_STRING_LENGTH = 512  # longer ids or queries are malformed, not truncated
NUL = "\x00"


class ContractError(InputError):
    """The input as a whole breaks the contract (e.g. a required column is missing)."""


@dataclass
class ValidationResult:
    """Rows of one chunk split into those that pass the contract and those that do not.

    `valid` has exactly `EVENT_COLUMNS` with normalised types (timestamp UTC,
    price float, quantity float, properties JSON text). `rejected` has
    `row_number` (position in the input), `reason`, `field`, `detail` and `raw`
    (the original row as JSON text, so nothing is lost). `naive_timestamps` counts the
    zone-less timestamps read (valid or not), each taken in `naive_timezone`;
    `timestamp_forms` the values read per form (`tailor.events.timestamps`).
    """

    valid: pd.DataFrame
    rejected: pd.DataFrame
    naive_timestamps: int = 0
    naive_timezone: str = DEFAULT_NAIVE_TIMEZONE
    timestamp_forms: dict[str, int] = field(default_factory=dict)


def check_event_columns(columns: Iterable[str]) -> None:
    """Raise ContractError naming every required column the input lacks."""
    present = set(columns)
    missing = [column for column in REQUIRED_EVENT_COLUMNS if column not in present]
    if missing:
        raise ContractError(
            "missing required column(s): " + ", ".join(missing)
            + f" (required: {', '.join(REQUIRED_EVENT_COLUMNS)}; found: {', '.join(sorted(present)) or 'none'})"
        )


def _clean_strings(values: pd.Series) -> pd.Series:
    """Strings stripped, empty and null-like values as None; numbers rendered without '.0'."""
    return _clean_text_column(values)[0]


def _clean_text_column(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """`_clean_strings` of the values, and per value what makes it unstorable (or None).

    The problems, first found first: longer than MAX_STRING_LENGTH, a NUL character
    (PostgreSQL text cannot hold one), a lone surrogate (no UTF-8 store can), a number
    too large to be an id.
    """
    if values.dtype.kind in "iuf":  # numbers as ids: rendered as text, if not too large
        numbers = values.to_numpy(dtype="float64")
        too_big = ~np.isnan(numbers) & ~(np.abs(numbers) < 10.0 ** MAX_ID_DIGITS)
        if values.dtype.kind == "f":
            cleaned = values.map(lambda v: None if pd.isna(v) or not math.isfinite(v) else (
                str(int(v)) if float(v).is_integer() else str(v))).astype(object)
        else:
            cleaned = values.astype(str).astype(object)
        problems = np.full(len(values), None, dtype=object)
        if too_big.any():
            problems[too_big] = [id_number_problem(value) for value in values[too_big]]
        return cleaned, problems
    text = text_array(values)
    if text is not None:
        stripped = trimmed(text)
        too_long = np.asarray(pc.utf8_length(stripped).fill_null(0)) > MAX_STRING_LENGTH
        has_nul = np.asarray(pc.match_substring(stripped, NUL).fill_null(False))
        problems = np.full(len(values), None, dtype=object)
        problems[has_nul] = "contains a NUL character"
        problems[too_long] = f"longer than {MAX_STRING_LENGTH} characters"
        return object_series(stripped, values.index), problems
    pairs = [_one_text(value) for value in values.astype(object).tolist()]
    cleaned = pd.Series([pair[0] for pair in pairs], index=values.index, dtype=object)
    return cleaned, np.array([pair[1] for pair in pairs], dtype=object)


def _one_text(value: object) -> tuple[str | None, str | None]:
    """One value of a text column that is not all text: (cleaned text or None, problem)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None, None
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None, None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        problem = id_number_problem(value)
        if problem is not None:
            return None, problem
    text = (value if isinstance(value, str) else str(value)).strip()
    if not text:
        return None, None
    if len(text) > MAX_STRING_LENGTH:
        return text, f"longer than {MAX_STRING_LENGTH} characters"
    if NUL in text:
        return text, "contains a NUL character"
    if not is_storable_text(text):
        return text, NOT_UNICODE
    return text, None



def _parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers as float and a mask of present values that are not numbers."""
    if values.dtype.kind in "iuf":
        return values.astype("float64"), pd.Series(False, index=values.index)
    text = text_array(values)
    if text is None:  # JSON numbers beside text, or integers too large for float64
        numbers = np.array([number_or_nan(value) for value in values.astype(object).tolist()],
                           dtype="float64")
        present = np.array([_present(value) for value in values.astype(object).tolist()],
                           dtype=bool)
        return (pd.Series(numbers, index=values.index, dtype="float64"),
                pd.Series(present & np.isnan(numbers), index=values.index))
    text = trimmed(text)
    present = np.asarray(text.is_valid())
    plain = np.asarray(pc.match_substring_regex(text, NUMBER_PATTERN).fill_null(False))
    numbers = np.full(len(values), np.nan)
    if plain.any():
        plain_text = text.filter(pa.array(plain))
        numbers[plain] = pc.cast(plain_text, pa.float64()).to_numpy(zero_copy_only=False)
    others = present & ~plain
    if others.any():  # forms only pandas reads ("inf", "1_000"), or not a number at all
        other_text = object_series(text.filter(pa.array(others)), pd.RangeIndex(others.sum()))
        numbers[others] = pd.to_numeric(other_text, errors="coerce").to_numpy(dtype="float64")
    result = pd.Series(numbers, index=values.index, dtype="float64")
    return result, pd.Series(present & np.isnan(numbers), index=values.index)


def _present(value: object) -> bool:
    """Whether a raw value is given: not None, NaN or blank text."""
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float):
        return not math.isnan(value)
    return not (isinstance(value, str) and not value.strip())


def _out_of_range(numbers: pd.Series, limit: float) -> np.ndarray:
    """Mask of numbers beyond ±limit (infinities included; NaN is not)."""
    values = numbers.to_numpy(dtype="float64")
    return ~np.isnan(values) & ~(np.abs(values) <= limit)


def _range_detail(name: str, raw: pd.Series, limit: float) -> Callable[[np.ndarray], pd.Series]:
    """The detail builder for values of `name` beyond `limit`, showing each as sent."""
    return lambda rows: (name + ": " + raw[rows].map(shown_number)
                         + f" is out of range (at most {limit:,.0f})")


def _not_finite(numbers: pd.Series, not_numbers: pd.Series, raw: pd.Series) -> np.ndarray:
    """Mask of values that are infinite (`inf`, `-inf`, `1e309` and other overflows) or
    spell NaN (`nan` text; a file reader turns a NaN float into that text, since in a
    float column NaN and absent look alike): not absent, and not a number to keep."""
    found = np.isinf(numbers.to_numpy(dtype="float64"))
    candidates = np.asarray(not_numbers, dtype=bool)
    if candidates.any():
        found[candidates] = [_is_nan(value) for value in raw[candidates].tolist()]
    return found


def _is_nan(value: object) -> bool:
    """Whether a raw value is text that spells NaN (`nan`, `NaN`, `-nan`)."""
    return isinstance(value, str) and value.strip().lstrip("+-").lower() == "nan"


def _not_finite_detail(name: str, raw: pd.Series) -> Callable[[np.ndarray], pd.Series]:
    """The detail builder for non-finite values of `name`, showing each as sent."""
    return lambda rows: (name + ": " + raw[rows].map(shown_number)
                         + " is not a finite number (NaN and infinities are refused)")



def _properties_text(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Properties as compact JSON-object text, and per value why it cannot be (or None)."""
    not_object = "properties: must be a JSON object"

    def one(value: object) -> tuple[str | None, str | None]:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None, None
        if isinstance(value, str):
            if not value.strip():
                return None, None
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                return None, not_object
        if isinstance(value, dict):
            return json_object_text(value)
        return None, not_object

    text = np.full(len(values), None, dtype=object)  # numpy keeps None (a Series makes NaN)
    problems = np.full(len(values), None, dtype=object)
    present = values.notna().to_numpy()
    if present.any():  # most events carry no properties: only present values are parsed
        pairs = [one(value) for value in values[present].astype(object)]
        text[present] = [pair[0] for pair in pairs]
        problems[present] = [pair[1] for pair in pairs]
    return pd.Series(text, index=values.index, dtype=object), problems


def derive_event_ids(frame: pd.DataFrame) -> pd.Series:
    """A deterministic id from the row's identifying fields, for inputs without event_id.

    The same row always gets the same id, so re-importing a file stores nothing twice.
    """
    keys = frame[["customer_id", "event_type", "product_id", "session_id", "order_id"]].astype(object)
    keys = keys.where(keys.notna(), "")
    keys["timestamp"] = frame["timestamp"].astype("int64").astype(str)
    hashed = pd.util.hash_pandas_object(keys, index=False, hash_key="tailor-events-v1")
    return "d-" + pd.Series(hashed.to_numpy().astype("uint64"), index=frame.index).map("{:016x}".format)


def validate_events(
    chunk: pd.DataFrame,
    *,
    now: pd.Timestamp,
    known_products: set[str] | None = None,
    max_future_seconds: int = 300,
    first_row_number: int = 0,
    timestamps: TimestampRules | None = None,
) -> ValidationResult:
    """Split a chunk of raw events into valid, normalised rows and rejected rows with reasons.

    Args:
        chunk: raw rows; columns beyond the contract are ignored, optional ones may be absent.
        now: the receive time; timestamps beyond `now + max_future_seconds` are future.
        known_products: the catalogue's product ids; None (or empty) skips that check,
            for shops that import events without a catalogue.
        max_future_seconds: tolerated clock skew.
        first_row_number: row number of the chunk's first row in the whole input.
        timestamps: the plausibility window's start and the zone of zone-less times
            (default: `TimestampRules()`, 2000-01-01 UTC and UTC).

    Returns:
        A `ValidationResult`; every input row is in exactly one of its two frames.

    Raises:
        ContractError: a required column is missing from the chunk.
    """
    check_event_columns(chunk.columns)
    if not chunk.index.equals(pd.RangeIndex(len(chunk))):
        chunk = chunk.reset_index(drop=True)
    n_rows = len(chunk)
    absent = pd.Series(np.full(n_rows, None, dtype=object), index=chunk.index)
    column = {name: (chunk[name] if name in chunk.columns else absent) for name in EVENT_COLUMNS}
    out = pd.DataFrame(index=chunk.index)
    text_problems = {}
    for name in STRING_COLUMNS:
        out[name], text_problems[name] = _clean_text_column(column[name])
    rules = timestamps or TimestampRules()
    times = read_timestamps(column["timestamp"], rules)
    out["timestamp"], naive = times.parsed, times.naive
    out["price"], bad_price = _parse_numbers(column["price"])
    out["quantity"], bad_quantity = _parse_numbers(column["quantity"])
    out["properties"], properties_problems = _properties_text(column["properties"])

    found = _Rejections(n_rows)
    reject = found.reject
    for name in STRING_COLUMNS:
        # Text no store can hold (NUL for PostgreSQL, lone surrogates for any UTF-8 store)
        # would fail the whole transaction at every retry: the row alone is refused.
        problems = text_problems[name]
        reject(pd.notna(problems), MALFORMED_ROW, name,
               lambda rows, problems=problems, name=name: f"{name}: " + pd.Series(problems[rows]))
    event_type = out["event_type"]
    unknown_type = event_type.notna() & ~event_type.isin(EVENT_TYPES)
    reject(unknown_type, MALFORMED_ROW, "event_type",
           lambda rows: "event_type: " + event_type[rows].astype(str).str.slice(0, 40).map(repr)
           + " is not one of " + ", ".join(EVENT_TYPES))
    reject(event_type.isna(), MALFORMED_ROW, "event_type", "event_type: missing")
    raw_timestamp = column["timestamp"]
    _reject_implausible(found, out["timestamp"], raw_timestamp, rules)
    reject(out["timestamp"].isna() & raw_timestamp.notna(), MALFORMED_ROW, "timestamp",
           unreadable_detail(raw_timestamp, rules))
    reject(out["timestamp"].isna(), MALFORMED_ROW, "timestamp", "timestamp: missing")
    for name, bad in (("price", bad_price), ("quantity", bad_quantity)):
        reject(_not_finite(out[name], bad, column[name]), MALFORMED_ROW, name,
               _not_finite_detail(name, column[name]))
    reject(bad_price, MALFORMED_ROW, "price", "price: not a number")
    reject(_out_of_range(out["price"], MAX_PRICE), MALFORMED_ROW, "price",
           _range_detail("price", column["price"], MAX_PRICE))
    reject(bad_quantity | (out["quantity"] <= 0) | (out["quantity"] % 1 > 0), MALFORMED_ROW,
           "quantity", "quantity: must be a whole number above 0")
    reject(_out_of_range(out["quantity"], MAX_QUANTITY), MALFORMED_ROW, "quantity",
           _range_detail("quantity", column["quantity"], MAX_QUANTITY))
    reject(pd.notna(properties_problems), MALFORMED_ROW, "properties",
           lambda rows: pd.Series(properties_problems[rows]))
    reject(out["customer_id"].isna(), MISSING_CUSTOMER_ID, "customer_id",
           "customer_id: missing (every event must be attributed)")
    reject(event_type.isin(PRODUCT_EVENT_TYPES) & out["product_id"].isna(), MISSING_PRODUCT_ID,
           "product_id",
           lambda rows: "product_id: missing for a " + event_type[rows].astype(str) + " event")
    limit = now + pd.Timedelta(seconds=max_future_seconds)
    reject(out["timestamp"] > limit, FUTURE_TIMESTAMP, "timestamp",
           lambda rows: "timestamp: " + out["timestamp"][rows].astype(str)
           + f" is after the receive time {now.isoformat()}")
    reject(out["price"] <= 0, NONPOSITIVE_PRICE, "price",
           lambda rows: "price: " + out["price"][rows].astype(str) + " is not above 0")
    if known_products:
        unknown = out["product_id"].notna() & ~out["product_id"].isin(known_products)
        reject(unknown, UNKNOWN_PRODUCT, "product_id",
               lambda rows: "product_id: "
               + out["product_id"][rows].astype(str).str.slice(0, 40).map(repr)
               + " is not in the product catalogue")

    is_rejected = ~found.open
    valid = (out.loc[~is_rejected, list(EVENT_COLUMNS)] if is_rejected.any()
             else out[list(EVENT_COLUMNS)])
    valid.index = pd.RangeIndex(len(valid))  # `valid` is already a copy: no second one
    missing_id = valid["event_id"].isna()
    if missing_id.any():
        valid.loc[missing_id, "event_id"] = derive_event_ids(valid.loc[missing_id])
    rejected = pd.DataFrame({
        "row_number": (np.flatnonzero(is_rejected) + first_row_number).astype("int64"),
        "reason": found.reason[is_rejected].astype(str).astype(object),
        "field": found.field[is_rejected].astype(str).astype(object),
        "detail": found.detail[is_rejected].astype(str).astype(object),
        "raw": rows_as_json(chunk.loc[is_rejected]),
    })
    return ValidationResult(valid=valid, rejected=rejected, naive_timestamps=int(naive.sum()),
                            naive_timezone=rules.naive_timezone, timestamp_forms=times.forms)



def _reject_implausible(found: "_Rejections", parsed: pd.Series, raw: pd.Series,
                        rules: TimestampRules) -> None:
    """Reject times before `rules.earliest` and times outside the storable range."""
    earliest = rules.earliest
    window = f"before events.min_timestamp {earliest.isoformat()}"
    found.reject(parsed < earliest, IMPLAUSIBLE_TIMESTAMP, "timestamp",
                 lambda rows: "timestamp: " + parsed[rows].astype(str)
                 + f" is {window} (implausible: an unset clock or a default value?)")
    early, late = out_of_range_times(parsed, raw)
    for mask, where in ((early, window), (late, "after year 2261, the last storable one")):
        found.reject(mask, IMPLAUSIBLE_TIMESTAMP, "timestamp", _quoted_detail(raw, where))


def _quoted_detail(raw: pd.Series, where: str) -> Callable[[np.ndarray], pd.Series]:
    """Details "timestamp: '<value as sent>' is <where> (implausible)" for the rejected rows."""
    def detail(rows: np.ndarray) -> pd.Series:
        return ("timestamp: " + raw[rows].astype(str).str.slice(0, 40).map(repr)
                + f" is {where} (implausible)")

    return detail


class _Rejections:
    """Reason, field and detail per row of a chunk; a row keeps the first reason it is given."""

    def __init__(self, n_rows: int) -> None:
        self.reason = np.full(n_rows, None, dtype=object)
        self.field = np.full(n_rows, None, dtype=object)
        self.detail = np.full(n_rows, None, dtype=object)
        self.open = np.ones(n_rows, dtype=bool)  # not rejected yet

    def reject(self, mask: "pd.Series | np.ndarray", reason: str, field: str,
               detail: "str | Callable[[np.ndarray], pd.Series]") -> None:
        """Reject the masked rows not rejected before; `detail` may be built for those rows only."""
        fresh = np.asarray(mask, dtype=bool) & self.open
        if not fresh.any():
            return
        self.reason[fresh] = reason
        self.field[fresh] = field
        if isinstance(detail, str):
            self.detail[fresh] = detail
        else:
            self.detail[fresh] = np.asarray(detail(fresh), dtype=object)
        self.open &= ~fresh


def rows_as_json(frame: pd.DataFrame) -> list[str]:
    """Each row as JSON text, with values as they came (kept verbatim in the dead-letter table)."""
    if frame.empty:
        return []

    def plain(value: object) -> object:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, (pd.Timestamp, np.datetime64)):
            return str(value)
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, (str, int, float, bool, dict, list)):
            return value
        return str(value)

    return [json.dumps({key: plain(value) for key, value in row.items()}, default=str)
            for row in frame.to_dict(orient="records")]
