"""What a single event value may be before a store will hold it: text every database can
encode, numbers within range, properties that are strict JSON.

Reads and writes nothing. `tailor.events.schema` (the vectorised check) and
`tailor.events.records` (the collector's fast path) call these on one value at a time, so
both paths reject the same values with the same words; `tailor.events.frames` escapes
what the dead-letter table must keep verbatim.

Why each limit exists: a lone surrogate (`"\\ud800"` in JSON) is a Python string that no
UTF-8 database accepts, so it failed the whole commit it was in; a 31-digit integer
broke the frame check and would overflow a 64-bit column or a DuckDB cast downstream;
`Infinity` is not JSON, so it made properties unreadable afterwards.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

import numpy as np

MAX_ID_DIGITS = 19  # a JSON number used as an id: every 64-bit integer fits
MAX_QUANTITY = 1_000_000  # units of one product in one event
MAX_PRICE = 1e12  # in the shop's currency unit; far above any real price, far below overflow
MAX_PROPERTY_INTEGER = 2 ** 63 - 1  # what a 64-bit column downstream can hold
NOT_UNICODE = "contains a lone surrogate (text that is not valid Unicode, e.g. \\ud800)"
_LONG_DIGITS = re.compile(r"\d{20,}")
_ESCAPED_SURROGATE = "\\ud"  # how json.dumps writes any surrogate, paired or lone


def is_storable_text(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8 (false for lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(text: str) -> str:
    """Text any store accepts: NUL as `\\u0000`, lone surrogates as `\\udXXX` escapes.

    For the dead-letter table, which keeps what arrived instead of failing its batch.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if is_storable_text(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown_number(value: Any) -> str:
    """A number for an error message, short even when it has hundreds of digits."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return format(Decimal(int(value)).normalize(), ".6g")
    if isinstance(value, (float, np.floating)):
        return format(float(value), ".6g")
    return repr(str(value)[:40])


def id_number_problem(value: Any) -> str | None:
    """Why a JSON number cannot be an id (too many digits, not finite), or None."""
    not_finite = isinstance(value, (float, np.floating)) and not math.isfinite(value)
    if not_finite or abs(value) >= 10 ** MAX_ID_DIGITS:
        return (f"{shown_number(value)} is out of range; must be a string or an integer of "
                f"at most {MAX_ID_DIGITS} digits")
    return None


def as_float(value: Any) -> float:
    """A JSON number or numeric text as float: NaN when absent, ±inf when too large.

    Raises:
        ValueError: the value is not a number (text that does not read as one, a boolean).
    """
    if value is None:
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (int, np.integer)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, (float, np.floating)):
        return float(value)
    text = str(value).strip()
    if not text:
        return math.nan
    number = float(text)  # ValueError for text that is no number; "1e400" reads as inf
    if math.isnan(number):
        raise ValueError("NaN is not a number")
    return number


def json_object_text(value: dict) -> tuple[str | None, str | None]:
    """A properties object as compact, key-sorted JSON text, or the problem that stops it.

    Returns:
        `(text, None)`, or `(None, "properties: …")` when the object holds NaN or Infinity,
        an integer beyond 64 bits, text that is not valid Unicode, or keys of mixed types.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or Infinity (or an integer too long to print)
        return None, "properties: holds a number out of range (NaN, Infinity or too many digits)"
    except TypeError:
        return None, "properties: must be a JSON object"
    if _ESCAPED_SURROGATE in text or _LONG_DIGITS.search(text):  # rare: look closer
        problem = json_value_problem(value)
        if problem is not None:
            return None, problem
    return text, None


def json_value_problem(value: Any) -> str | None:
    """The first value (or key) inside a JSON document that a store or reader would refuse."""
    pending = [value]
    while pending:  # a stack, not recursion: JSON nests as deep as the parser allowed
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and not is_storable_text(item):
            return f"properties: {NOT_UNICODE}"
        elif isinstance(item, int) and not isinstance(item, bool) \
                and abs(item) > MAX_PROPERTY_INTEGER:
            return f"properties: {shown_number(item)} is out of range (integers up to 2**63)"
    return None
