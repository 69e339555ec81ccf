"""Reading event timestamps: which forms are read, in which zone, and why a value is not.

Reads and writes nothing. `tailor.events.schema` calls `read_timestamps` for every chunk of
events (file import and collector alike); `TimestampRules` carries what the settings and the
import's flags say.

Forms read without being told: ISO 8601 (with or without a zone, `T` or a space between date
and time, a trailing `UTC`/`GMT` taken as `Z`), epoch seconds, and epoch milliseconds (a
number of magnitude 1e11 or more: seconds that large are past year 5000, milliseconds are
1973 on). Any other text is read only with an explicit strftime format
(`TimestampRules.timestamp_format`, tried first) or, for numeric day/month/year dates, with
`dayfirst`; without them it is refused, and the detail says how to pass the format, so that
`05/01/2026` is never silently taken as 1 May or 5 January. Zone-less values are read in
`naive_timezone`: a wall time in a DST gap moves forward to the first time after the gap, a
repeated wall time (the hour the clocks go back) takes its first occurrence. Epoch numbers
are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tailor.events.arrow_text import NUMBER_PATTERN, number_or_nan, object_series, text_array, trimmed
from tailor.events.value_limits import is_storable_text, shown_number

if TYPE_CHECKING:
    from tailor.config import Settings

DEFAULT_MIN_TIMESTAMP = "2000-01-01T00:00:00Z"
DEFAULT_NAIVE_TIMEZONE = "UTC"

# The forms a timestamp is read in, as the import report counts them.
ISO_8601 = "iso8601"
EPOCH_SECONDS = "epoch_seconds"
EPOCH_MILLISECONDS = "epoch_milliseconds"
GIVEN_FORMAT = "timestamp_format"
DAY_FIRST = "dayfirst"
TYPED = "typed"  # a timestamp type already (Parquet, datetime objects)

_ISO_DATE_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
_ISO_ZONED_PATTERN = _ISO_DATE_TIME + r"(Z|[+-]\d{2}(:?\d{2})?)$"
_ISO_NAIVE_PATTERN = _ISO_DATE_TIME + r"$"
# An explicit zone at the end; pandas' ISO 8601 parser must not see zoned and naive values
# together, or the naive ones after a zoned one take its offset.
_ZONE_SUFFIX = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"
# ISO text ending in a zone name, as databases print UTC times ("2026-01-05 10:03:00 UTC").
_ZONE_NAME_SUFFIX = r"(?i)\s*(?:UTC|GMT)$"
# A numeric date with the year last (05/01/2026, 5.1.26 10:03): day and month order unknown.
DAY_MONTH_YEAR = (r"^(?P<first>\d{1,2})[./-](?P<second>\d{1,2})[./-](?P<year>\d{4}|\d{2})"
                  r"(?:(?:[ T]+|,\s*)(?P<hour>\d{1,2}):(?P<minute>\d{2})"
                  r"(?::(?P<second_of_minute>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?)?"
                  r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}:?\d{2})?$")

# Epoch numbers: seconds up to this magnitude fit pandas' nanosecond range (1677-2262) ...
_EPOCH_SECONDS_LIMIT = 9.2e9
# ... and from this magnitude a number is milliseconds (1973-03-03 on), up to the same range.
EPOCH_MILLISECONDS_FROM = 1e11
_EPOCH_MILLISECONDS_LIMIT = 9.2e12


@dataclass(frozen=True)
class TimestampRules:
    """What a plausible timestamp is, how zone-less and non-ISO ones are read (module docstring).

    Attributes:
        min_timestamp: ISO 8601; earlier times are implausible (a date or a zone-less
            time is UTC).
        naive_timezone: IANA zone name zone-less timestamps are read in.
        timestamp_format: a strftime format tried before the forms read by default ("" = none).
        dayfirst: numeric dates with the year last are day/month/year.
    """

    min_timestamp: str = DEFAULT_MIN_TIMESTAMP
    naive_timezone: str = DEFAULT_NAIVE_TIMEZONE
    timestamp_format: str = ""
    dayfirst: bool = False

    @property
    def earliest(self) -> pd.Timestamp:
        """`min_timestamp` as a UTC timestamp."""
        stamp = pd.Timestamp(datetime.fromisoformat(self.min_timestamp.strip()
                                                    .replace("Z", "+00:00")))
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")

    @classmethod
    def from_settings(cls, settings: "Settings") -> "TimestampRules":
        """The rules of `events.min_timestamp` and `events.naive_timezone`."""
        return cls(settings.events_min_timestamp, settings.events_naive_timezone)


@dataclass
class TimestampReading:
    """A column of timestamps read: UTC times (NaT where unreadable), which were zone-less,
    and how many values each form gave."""

    parsed: pd.Series
    naive: np.ndarray
    forms: dict[str, int] = field(default_factory=dict)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Any timestamp-like column as UTC (zone-less means UTC), leniently: ISO 8601, epoch
    numbers, then any format pandas recognises. For stored values and catalogue dates;
    events are read by `read_timestamps`, which refuses guesses.

    Returns a datetime64[ns, UTC] series with NaT where a value cannot be parsed.
    """
    return read_timestamps(values, lenient=True).parsed


def parse_event_timestamps(values: pd.Series, naive_timezone: str = DEFAULT_NAIVE_TIMEZONE
                           ) -> tuple[pd.Series, np.ndarray]:
    """`read_timestamps` with default rules in `naive_timezone`: (UTC times, zone-less mask)."""
    reading = read_timestamps(values, TimestampRules(naive_timezone=naive_timezone))
    return reading.parsed, reading.naive


def read_timestamps(values: pd.Series, rules: TimestampRules | None = None, *,
                    lenient: bool = False) -> TimestampReading:
    """Read a raw timestamp column as the rules say (module docstring).

    Args:
        values: the raw column (text, numbers, datetimes or a mix).
        rules: zone of zone-less values, the explicit format and day-first reading.
        lenient: also read any other form pandas recognises (never for events).

    Returns:
        The `TimestampReading`: datetime64[ns, UTC] series, zone-less mask, forms counted.
    """
    rules = rules or TimestampRules()
    reading = _read_utc(values, rules, lenient)
    naive = reading.naive
    if naive.any() and rules.naive_timezone != "UTC":
        wall = pd.DatetimeIndex(reading.parsed[naive]).tz_localize(None)
        local = wall.tz_localize(rules.naive_timezone, ambiguous=np.ones(len(wall), dtype=bool),
                                 nonexistent="shift_forward")
        reading.parsed[naive] = local.tz_convert("UTC")
    return reading


def _read_utc(values: pd.Series, rules: TimestampRules, lenient: bool) -> TimestampReading:
    """`read_timestamps` with zone-less values still taken as UTC wall times."""
    present = int(values.notna().sum())
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return TimestampReading(values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"),
                                np.zeros(len(values), dtype=bool), {TYPED: present})
    if values.dtype.kind == "M":
        return TimestampReading(values.dt.tz_localize("UTC").astype("datetime64[ns, UTC]"),
                                values.notna().to_numpy(), {TYPED: present})
    if values.dtype.kind in "iuf":
        parsed = from_epoch(values)
        forms: dict[str, int] = {}
        _count_epoch_forms(values.to_numpy(dtype="float64"), parsed.notna().to_numpy(), forms)
        return TimestampReading(parsed, np.zeros(len(values), dtype=bool), forms)
    text = text_array(values)
    if text is None:
        return _read_mixed(values.astype(object), rules, lenient)
    return _read_text(trimmed(text), values.index, rules, lenient)


def _read_text(text: pa.Array, index: pd.Index, rules: TimestampRules,
               lenient: bool) -> TimestampReading:
    """Text values: the given format, epoch numbers, ISO 8601, day-first dates, in that order."""
    parsed = pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    naive = np.zeros(len(text), dtype=bool)
    forms: dict[str, int] = {}
    rest = np.asarray(text.is_valid())

    def take(mask: np.ndarray, stamps: "pd.Series | pd.DatetimeIndex", form: str,
             zone_less: bool | np.ndarray) -> None:
        """Keep the masked values' UTC times (`stamps`, in mask order) that were read."""
        parsed[mask] = pd.DatetimeIndex(stamps)  # positional, whatever the stamps' index
        got = mask & parsed.notna().to_numpy()
        naive[got] = zone_less if isinstance(zone_less, bool) else zone_less[got]
        if got.any():
            forms[form] = forms.get(form, 0) + int(got.sum())
        rest[got] = False

    if rules.timestamp_format and rest.any():
        stamps, zoned = _read_given_format(object_series(text, index)[rest], rules.timestamp_format)
        mask = rest.copy()
        take(mask, stamps, GIVEN_FORMAT, not zoned)
    numbers = _matching(text, NUMBER_PATTERN) & rest
    if numbers.any():
        seconds = pc.cast(text.filter(pa.array(numbers)), pa.float64()).to_numpy(
            zero_copy_only=False)
        stamps = from_epoch(seconds)
        parsed[numbers] = stamps
        _count_epoch_forms(seconds, ~np.asarray(stamps.isna()), forms)
        rest &= ~numbers  # unreadable numbers are out of range, whatever comes next
    for pattern, arrow_type, zone_less in ((_ISO_ZONED_PATTERN, pa.timestamp("ns", tz="UTC"), False),
                                           (_ISO_NAIVE_PATTERN, pa.timestamp("ns"), True)):
        matches = _matching(text, pattern) & rest
        if not matches.any():
            continue
        try:
            converted = pc.cast(text.filter(pa.array(matches)), arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # e.g. month 13 or an out-of-range year: pandas decides below
        nanos = converted.cast(pa.int64()).to_numpy(zero_copy_only=False)
        take(matches, pd.to_datetime(nanos, unit="ns", utc=True), ISO_8601, zone_less)
    if rest.any():
        _read_iso_leftovers(object_series(text, index), rest, take)
    if rules.dayfirst and rest.any():
        matches = _matching(text, DAY_MONTH_YEAR) & rest
        if matches.any():
            iso, zoned = _day_first_as_iso(text.filter(pa.array(matches)))
            stamps = _iso_series(pd.Series(iso, dtype=object), zoned)
            take(matches, stamps, DAY_FIRST, ~_spread(matches, zoned))
    if lenient and rest.any():
        leftovers = object_series(text, index)[rest]
        stamps = pd.to_datetime(leftovers, utc=True, errors="coerce", format="mixed")
        take(rest.copy(), stamps, ISO_8601, False)
    return TimestampReading(parsed, naive, forms)


def _read_iso_leftovers(text: pd.Series, rest: np.ndarray,
                        take: Callable[..., None]) -> None:
    """ISO forms Arrow's cast does not take (a zone name, a compact offset, a comma
    fraction, week dates), through pandas' ISO 8601 parser, zoned and zone-less apart."""
    stripped = text.where(rest).astype("string").str.strip()
    named = stripped.str.contains(_ZONE_NAME_SUFFIX, regex=True).fillna(False).to_numpy(bool) \
        & rest
    if named.any():
        as_z = stripped[named].str.replace(_ZONE_NAME_SUFFIX, "Z", regex=True)
        stamps = pd.to_datetime(as_z.astype(object), utc=True, errors="coerce", format="ISO8601")
        take(named, stamps, ISO_8601, False)
    zoned = stripped.str.contains(_ZONE_SUFFIX, regex=True).fillna(False).to_numpy(bool) & rest
    for part, zone_less in ((zoned, False), (rest & ~zoned, True)):
        if part.any():
            stamps = pd.to_datetime(text[part], utc=True, errors="coerce", format="ISO8601")
            take(part, stamps, ISO_8601, zone_less)


def _read_given_format(text: pd.Series, timestamp_format: str) -> tuple[pd.Series, bool]:
    """Values read with a strftime format (NaT where they do not match), and whether the
    format carries a zone (`%z` or `%Z`); without one the values are zone-less."""
    zoned = "%z" in timestamp_format or "%Z" in timestamp_format
    stamps = pd.to_datetime(text, format=timestamp_format, errors="coerce", utc=True,
                            exact=True)
    return stamps, zoned


def _day_first_as_iso(text: pa.Array) -> tuple[list[str], np.ndarray]:
    """Numeric day/month/year dates rewritten as ISO 8601 text, and which carried a zone.
    A two-digit year is 20yy (earlier times are implausible anyway)."""
    parts = pc.extract_regex(text, DAY_MONTH_YEAR)
    rows = parts.to_pylist()
    iso, zoned = [], np.zeros(len(rows), dtype=bool)
    for position, part in enumerate(rows):
        year = part["year"] if len(part["year"]) == 4 else "20" + part["year"]
        clock = (f"T{int(part['hour']):02d}:{part['minute']}:{part['second_of_minute'] or '00'}"
                 if part["hour"] else "T00:00:00")
        fraction = f".{part['fraction']}" if part["fraction"] else ""
        zone = part["zone"] or ""
        if zone:
            zoned[position] = True
            zone = "Z" if zone in ("Z", "UTC", "GMT") else zone
        iso.append(f"{year}-{int(part['second']):02d}-{int(part['first']):02d}"
                   f"{clock}{fraction}{zone}")
    return iso, zoned


def _iso_series(iso: pd.Series, zoned: np.ndarray) -> pd.Series:
    """ISO 8601 text as UTC times (zone-less ones as UTC wall times), NaT where invalid."""
    stamps = pd.Series(pd.NaT, index=iso.index, dtype="datetime64[ns, UTC]")
    for part in (zoned, ~zoned):
        if part.any():
            stamps[part] = pd.to_datetime(iso[part], utc=True, errors="coerce", format="ISO8601")
    return stamps


def _spread(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values given for the masked positions, placed at those positions (False elsewhere)."""
    full = np.zeros(len(mask), dtype=bool)
    full[mask] = values
    return full


def _matching(text: pa.Array, pattern: str) -> np.ndarray:
    """Mask of values matching a whole-value regular expression (nulls never match)."""
    return np.asarray(pc.match_substring_regex(text, pattern).fill_null(False))


def _read_mixed(values: pd.Series, rules: TimestampRules, lenient: bool) -> TimestampReading:
    """Objects that are not all text (JSON numbers beside strings, datetimes): text as text
    is read, numbers as epoch numbers, datetimes as they are."""
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    naive = np.zeros(len(values), dtype=bool)
    forms: dict[str, int] = {}
    objects = values.tolist()
    # Text that is not valid Unicode reads as no time at all (NaT: "cannot parse").
    is_text = np.array([isinstance(value, str) and is_storable_text(value) for value in objects],
                       dtype=bool)
    if is_text.any():
        part = _read_utc(values[is_text], rules, lenient)
        parsed[is_text], naive[is_text] = part.parsed, part.naive
        _add_forms(forms, part.forms)
    is_number = np.array([isinstance(value, (int, float, np.integer, np.floating))
                          and not isinstance(value, bool) for value in objects], dtype=bool)
    if is_number.any():  # converted one by one: an integer may be too large for float64
        numbers = np.array([number_or_nan(value) for value in values[is_number].tolist()],
                           dtype="float64")
        stamps = from_epoch(numbers)
        parsed[is_number] = stamps
        _count_epoch_forms(numbers, ~np.asarray(stamps.isna()), forms)
    is_time = np.array([isinstance(value, datetime) for value in objects], dtype=bool)
    if is_time.any():
        times = values[is_time]
        zone_less = np.array([value.tzinfo is None for value in times.tolist()], dtype=bool)
        for part, aware in ((~zone_less, True), (zone_less, False)):
            if part.any():
                stamps = pd.to_datetime(times[part].tolist(), utc=aware, errors="coerce")
                stamps = stamps if aware else stamps.tz_localize("UTC")
                parsed[np.flatnonzero(is_time)[part]] = stamps
        naive[is_time] = zone_less
        forms[TYPED] = forms.get(TYPED, 0) + int(is_time.sum())
    rest = ~is_text & ~is_number & ~is_time & values.notna().to_numpy()
    if lenient and rest.any():
        parsed[rest] = pd.to_datetime(values[rest].astype(str), utc=True, errors="coerce",
                                      format="mixed")
    return TimestampReading(parsed, naive, forms)


def _add_forms(total: dict[str, int], more: dict[str, int]) -> None:
    for form, count in more.items():
        total[form] = total.get(form, 0) + count


def _count_epoch_forms(numbers: np.ndarray, read: np.ndarray, forms: dict[str, int]) -> None:
    """Count the epoch numbers read, as seconds or milliseconds by their magnitude."""
    millis = np.abs(numbers) >= EPOCH_MILLISECONDS_FROM
    for form, mask in ((EPOCH_SECONDS, read & ~millis), (EPOCH_MILLISECONDS, read & millis)):
        if mask.any():
            forms[form] = forms.get(form, 0) + int(mask.sum())


def from_epoch(numbers: "pd.Series | np.ndarray") -> "pd.Series | pd.DatetimeIndex":
    """Epoch numbers as UTC timestamps: seconds, or milliseconds from a magnitude of 1e11;
    NaT for values out of range (never OverflowError).

    A Series comes back as a Series on the same index; an array as a DatetimeIndex
    (assigned positionally by the callers).
    """
    values = np.asarray(numbers, dtype="float64")
    size = np.abs(values)
    millis = size >= EPOCH_MILLISECONDS_FROM
    seconds = np.where(millis | (size > _EPOCH_SECONDS_LIMIT), np.nan, values)
    converted = pd.to_datetime(seconds, unit="s", utc=True, errors="coerce")
    if millis.any():
        converted = converted.where(~millis, _from_epoch_milliseconds(
            np.where(millis & (size <= _EPOCH_MILLISECONDS_LIMIT), values, np.nan)))
    if isinstance(numbers, pd.Series):
        return pd.Series(converted, index=numbers.index)
    return converted


def _from_epoch_milliseconds(values: np.ndarray) -> pd.DatetimeIndex:
    """Epoch milliseconds (NaN for none) as UTC times, exact to the nanosecond: whole
    milliseconds and their fraction apart, since float64 nanoseconds would lose digits."""
    present = ~np.isnan(values)
    whole = np.floor(np.where(present, values, 0.0))
    nanos = whole.astype("int64") * 1_000_000 \
        + np.round((np.where(present, values, 0.0) - whole) * 1e6).astype("int64")
    nanos[~present] = np.iinfo("int64").min  # NaT
    return pd.DatetimeIndex(nanos.view("datetime64[ns]")).tz_localize("UTC")


def epoch_out_of_range(numbers: "pd.Series | np.ndarray") -> tuple[np.ndarray, np.ndarray]:
    """Masks of epoch numbers before, and after, the range `from_epoch` reads."""
    values = np.asarray(numbers, dtype="float64")
    size = np.abs(values)
    unread = (((size > _EPOCH_SECONDS_LIMIT) & (size < EPOCH_MILLISECONDS_FROM))
              | (size > _EPOCH_MILLISECONDS_LIMIT)) & np.isfinite(values)  # inf: malformed
    return unread & (values < 0), unread & (values > 0)


# The year of an ISO-like text, for times outside the range pandas can hold.
_LEADING_YEAR = r"^\s*([+-]?\d{1,9})-\d{1,2}-\d{1,2}"
_FIRST_STORABLE_YEAR, _LAST_STORABLE_YEAR = 1678, 2261


def out_of_range_times(parsed: pd.Series, raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Masks of unparsed values that are times before, and after, the storable range
    (ISO text with a year before 1678 or after 2261, epoch numbers beyond the range), e.g.
    0001-01-01T00:00:00Z."""
    candidates = (parsed.isna() & raw.notna()).to_numpy()
    early, late = np.zeros(len(raw), dtype=bool), np.zeros(len(raw), dtype=bool)
    if not candidates.any():
        return early, late
    text = raw[candidates].astype(str)
    years = pd.to_numeric(text.str.extract(_LEADING_YEAR, expand=False), errors="coerce")
    numbers = pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(dtype="float64")
    before, after = epoch_out_of_range(numbers)
    early[candidates] = (years < _FIRST_STORABLE_YEAR).to_numpy(dtype=bool) | before
    late[candidates] = (years > _LAST_STORABLE_YEAR).to_numpy(dtype=bool) | after
    return early, late


_DAY_MONTH_YEAR = re.compile(DAY_MONTH_YEAR)


def unreadable_detail(raw: pd.Series, rules: TimestampRules
                      ) -> Callable[[np.ndarray], pd.Series]:
    """The detail builder for timestamps that could not be read: epoch numbers out of
    range, or text, with what to pass to read its form."""
    def one(value: object) -> str:
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            return f"timestamp: {shown_number(value)} is not a finite number"
        if isinstance(value, (int, float, np.integer, np.floating)) \
                and not isinstance(value, bool):
            return (f"timestamp: epoch number {shown_number(value)} is out of range (seconds "
                    "or milliseconds of the years 1677 to 2262)")
        text = str(value).strip()
        shown = repr(text[:40])
        if rules.timestamp_format:
            return (f"timestamp: {shown} does not match the timestamp format "
                    f"{rules.timestamp_format!r} and is not ISO 8601 or epoch seconds")
        if _DAY_MONTH_YEAR.match(text):
            if rules.dayfirst:
                return f"timestamp: {shown} is not a valid day/month/year date (--dayfirst)"
            return (f"timestamp: {shown} has its day and month in an order that cannot be "
                    "told (day/month or month/day?): at import pass --dayfirst, or the format "
                    "with --timestamp-format, e.g. '%m/%d/%Y %H:%M'; else send ISO 8601")
        return (f"timestamp: cannot parse {shown} as ISO 8601 or epoch seconds or "
                "milliseconds; at import pass its format with --timestamp-format (strftime, "
                "e.g. '%d %b %Y %H:%M')")
    return lambda rows: raw[rows].map(one)
