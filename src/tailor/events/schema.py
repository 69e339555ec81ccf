"""The event data contract: column names, event types, rejection reasons and row validation.

One place for the contract of ARCHITECTURE.md, shared by file import, the HTTP
collector and the simulator. `validate_events` is vectorised (pandas) so that it
keeps up with bulk import; it never raises on bad rows, it sorts them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

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
MISSING_CUSTOMER_ID = "missing_customer_id"
MISSING_PRODUCT_ID = "missing_product_id"
FUTURE_TIMESTAMP = "future_timestamp"
NONPOSITIVE_PRICE = "nonpositive_price"
UNKNOWN_PRODUCT = "unknown_product"
REJECT_REASONS: tuple[str, ...] = (
    MALFORMED_ROW, MISSING_CUSTOMER_ID, MISSING_PRODUCT_ID, FUTURE_TIMESTAMP,
    NONPOSITIVE_PRICE, UNKNOWN_PRODUCT,
)
DUPLICATE_EVENT_ID = "duplicate_event_id"

MAX_STRING_LENGTH = 512  # longer ids or queries are malformed, not truncated


class ContractError(ValueError):
    """The input as a whole breaks the contract (e.g. a required column is missing)."""


@dataclass
class ValidationResult:
    """Rows of one chunk split into those that pass the contract and those that do not.

    `valid` has exactly `EVENT_COLUMNS` with normalised types (timestamp UTC,
    price float, quantity float, properties JSON text). `rejected` has
    `row_number` (position in the input), `reason`, `field`, `detail` and `raw`
    (the original row as JSON text, so nothing is lost).
    """

    valid: pd.DataFrame
    rejected: pd.DataFrame


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
    if values.dtype.kind in "iu":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        rendered = values.map(lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
        return rendered.astype(object)
    text = values.astype(object).where(values.notna(), None)
    stripped = text.str.strip()  # NaN for non-strings, which are rendered below
    others = text.notna() & stripped.isna()
    if others.any():
        stripped[others] = text[others].map(str).str.strip()
    return stripped.where(stripped.notna() & (stripped != ""), None).astype(object)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse ISO 8601 strings (zone-aware; naive means UTC) or epoch seconds to UTC.

    Returns a datetime64[ns, UTC] series with NaT where a value cannot be parsed.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if values.dtype.kind == "M":
        return values.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    if values.dtype.kind in "iuf":
        return pd.to_datetime(values, unit="s", utc=True, errors="coerce")
    text = values.astype(object)
    numeric = pd.to_numeric(text, errors="coerce")
    is_numeric = numeric.notna()
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if is_numeric.any():
        parsed[is_numeric] = pd.to_datetime(numeric[is_numeric], unit="s", utc=True, errors="coerce")
    rest = ~is_numeric & text.notna()
    if rest.any():
        parsed[rest] = pd.to_datetime(text[rest], utc=True, errors="coerce", format="ISO8601")
        still = rest & parsed.isna()
        if still.any():  # mixed formats within a chunk: fall back to per-value parsing
            parsed[still] = pd.to_datetime(text[still], utc=True, errors="coerce", format="mixed")
    return parsed


def _parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers as float and a mask of present values that are not numbers."""
    if values.dtype.kind in "iuf":
        return values.astype("float64"), pd.Series(False, index=values.index)
    text = _clean_strings(values)
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    return numbers, text.notna() & numbers.isna()


def _properties_text(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Properties as compact JSON-object text, and a mask of values that are not JSON objects."""

    def one(value: object) -> tuple[str | None, bool]:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None, False
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True, separators=(",", ":")), False
        if isinstance(value, str):
            if not value.strip():
                return None, False
            try:
                parsed = json.loads(value)
            except ValueError:
                return None, True
            if isinstance(parsed, dict):
                return json.dumps(parsed, sort_keys=True, separators=(",", ":")), False
        return None, True

    pairs = [one(value) for value in values.astype(object)]
    return (pd.Series([p[0] for p in pairs], index=values.index, dtype=object),
            pd.Series([p[1] for p in pairs], index=values.index, dtype=bool))


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
) -> ValidationResult:
    """Split a chunk of raw events into valid, normalised rows and rejected rows with reasons.

    Args:
        chunk: raw rows; columns beyond the contract are ignored, optional ones may be absent.
        now: the receive time; timestamps beyond `now + max_future_seconds` are future.
        known_products: the catalogue's product ids; None (or empty) skips that check,
            for shops that import events without a catalogue.
        max_future_seconds: tolerated clock skew.
        first_row_number: row number of the chunk's first row in the whole input.

    Returns:
        A `ValidationResult`; every input row is in exactly one of its two frames.

    Raises:
        ContractError: a required column is missing from the chunk.
    """
    check_event_columns(chunk.columns)
    chunk = chunk.reset_index(drop=True)
    n_rows = len(chunk)
    column = {name: (chunk[name] if name in chunk.columns else pd.Series([None] * n_rows, dtype=object))
              for name in EVENT_COLUMNS}
    out = pd.DataFrame(index=chunk.index)
    for name in STRING_COLUMNS:
        out[name] = _clean_strings(column[name])
    out["timestamp"] = parse_timestamps(column["timestamp"])
    out["price"], bad_price = _parse_numbers(column["price"])
    out["quantity"], bad_quantity = _parse_numbers(column["quantity"])
    out["properties"], bad_properties = _properties_text(column["properties"])

    reason = pd.Series(None, index=chunk.index, dtype=object)
    field = pd.Series(None, index=chunk.index, dtype=object)
    detail = pd.Series(None, index=chunk.index, dtype=object)

    def reject(mask: pd.Series, why: str, where: str, message: pd.Series | str) -> None:
        fresh = mask & reason.isna()
        if not fresh.any():
            return
        reason[fresh] = why
        field[fresh] = where
        detail[fresh] = message[fresh] if isinstance(message, pd.Series) else message

    too_long = pd.Series(False, index=chunk.index)
    for name in STRING_COLUMNS:
        long_values = out[name].str.len().astype("float64").fillna(0) > MAX_STRING_LENGTH
        reject(long_values, MALFORMED_ROW, name, f"{name}: longer than {MAX_STRING_LENGTH} characters")
        too_long |= long_values
    event_type = out["event_type"]
    unknown_type = event_type.notna() & ~event_type.isin(EVENT_TYPES)
    reject(unknown_type, MALFORMED_ROW, "event_type",
           "event_type: " + event_type.astype(str).str.slice(0, 40).map(repr)
           + " is not one of " + ", ".join(EVENT_TYPES))
    reject(event_type.isna(), MALFORMED_ROW, "event_type", "event_type: missing")
    raw_timestamp = column["timestamp"]
    reject(out["timestamp"].isna() & raw_timestamp.notna(), MALFORMED_ROW, "timestamp",
           "timestamp: cannot parse " + raw_timestamp.astype(str).str.slice(0, 40).map(repr)
           + " as ISO 8601 or epoch seconds")
    reject(out["timestamp"].isna(), MALFORMED_ROW, "timestamp", "timestamp: missing")
    reject(bad_price, MALFORMED_ROW, "price", "price: not a number")
    reject(bad_quantity | (out["quantity"] <= 0) | (out["quantity"] % 1 > 0), MALFORMED_ROW, "quantity",
           "quantity: must be a whole number above 0")
    reject(bad_properties, MALFORMED_ROW, "properties", "properties: must be a JSON object")
    reject(out["customer_id"].isna(), MISSING_CUSTOMER_ID, "customer_id",
           "customer_id: missing (every event must be attributed)")
    reject(event_type.isin(PRODUCT_EVENT_TYPES) & out["product_id"].isna(), MISSING_PRODUCT_ID,
           "product_id", "product_id: missing for a " + event_type.astype(str) + " event")
    limit = now + pd.Timedelta(seconds=max_future_seconds)
    reject(out["timestamp"] > limit, FUTURE_TIMESTAMP, "timestamp",
           "timestamp: " + out["timestamp"].astype(str) + f" is after the receive time {now.isoformat()}")
    reject(out["price"] <= 0, NONPOSITIVE_PRICE, "price",
           "price: " + out["price"].astype(str) + " is not above 0")
    if known_products:
        unknown = out["product_id"].notna() & ~out["product_id"].isin(known_products)
        reject(unknown, UNKNOWN_PRODUCT, "product_id",
               "product_id: " + out["product_id"].astype(str).str.slice(0, 40).map(repr)
               + " is not in the product catalogue")

    is_rejected = reason.notna()
    valid = out.loc[~is_rejected, list(EVENT_COLUMNS)].copy()
    missing_id = valid["event_id"].isna()
    if missing_id.any():
        valid.loc[missing_id, "event_id"] = derive_event_ids(valid.loc[missing_id])
    rejected = pd.DataFrame({
        "row_number": (chunk.index[is_rejected] + first_row_number).astype("int64"),
        "reason": reason[is_rejected].astype(str).to_numpy(),
        "field": field[is_rejected].astype(str).to_numpy(),
        "detail": detail[is_rejected].astype(str).to_numpy(),
        "raw": rows_as_json(chunk.loc[is_rejected]),
    })
    return ValidationResult(valid=valid.reset_index(drop=True), rejected=rejected)


def rows_as_json(frame: pd.DataFrame) -> list[str]:
    """Each row as JSON text, with values as they came (kept verbatim in the dead-letter table)."""

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
