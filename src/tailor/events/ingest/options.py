"""The import's options: `tailor ingest`'s flags over the saved `ingest.*` settings, parsed
and checked before anything is read.

Reads the settings object; writes nothing. A flag that is given wins over its setting (for
`--map`, per contract column). A bad value raises `ImportOptionError` whose message starts
with the flag or the setting it came from, so `tailor ingest` exits 2 naming it.
`saved_ingest_settings` is the one place that reads these settings, and
`check_ingest_settings` checks them alone (e.g. when settings are loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Mapping

from tailor.errors import InputError
from tailor.events.ingest.event_types import EventTypeNames, parse_event_types
from tailor.events.ingest.formats import FORMATS, delimiter_char, encoding_name
from tailor.events.ingest.mapping import parse_column_map
from tailor.events.timestamps import TimestampRules

# Each option's flag and saved setting (`tailor.toml`: [ingest] key).
SETTING_KEYS: dict[str, str] = {
    "column_map": "ingest.column_map", "event_types": "ingest.event_types",
    "event_types_case_sensitive": "ingest.event_types_case_sensitive",
    "timestamp_format": "ingest.timestamp_format", "dayfirst": "ingest.dayfirst",
    "delimiter": "ingest.delimiter", "encoding": "ingest.encoding",
}
FLAGS: dict[str, str] = {
    "column_map": "--map", "event_types": "--event-types",
    "event_types_case_sensitive": "--case-sensitive-event-types",
    "timestamp_format": "--timestamp-format", "dayfirst": "--dayfirst",
    "delimiter": "--delimiter", "encoding": "--encoding", "timezone": "--timezone",
    "file_format": "--format",
}


class ImportOptionError(InputError):
    """A flag or saved setting of the import has a bad value; the message names it."""


@dataclass(frozen=True)
class ImportFlags:
    """What `tailor ingest` was told on the command line (None: not given)."""

    column_map: str | None = None
    event_types: str | None = None
    event_types_case_sensitive: bool | None = None
    timestamp_format: str | None = None
    dayfirst: bool | None = None
    timezone: str | None = None
    delimiter: str | None = None
    encoding: str | None = None
    file_format: str | None = None


@dataclass(frozen=True)
class ImportOptions:
    """The options resolved and checked.

    Attributes:
        flag_map, saved_map: `--map` and `ingest.column_map`, parsed.
        event_types: the names read as the contract's types.
        timestamps: the timestamp rules (events.* settings, format, dayfirst, zone).
        zone_origin: where the zone of zone-less times came from.
        format_origin: where the timestamp format came from ('' when none was given).
        delimiter: CSV delimiter ('' = sniff); encoding: text encoding (codec name).
        file_format: csv, jsonl or parquet ('' = from the name).
    """

    flag_map: dict[str, tuple[str, ...]] = field(default_factory=dict)
    saved_map: dict[str, tuple[str, ...]] = field(default_factory=dict)
    event_types: EventTypeNames = field(default_factory=EventTypeNames)
    timestamps: TimestampRules = field(default_factory=TimestampRules)
    zone_origin: str = "events.naive_timezone"
    format_origin: str = ""
    delimiter: str = ""
    encoding: str = "utf-8"
    file_format: str = ""


def saved_ingest_settings(settings: Any) -> dict[str, Any]:
    """The saved import defaults, by option name ('' / False when a setting is absent)."""
    defaults: dict[str, Any] = {"event_types_case_sensitive": False, "dayfirst": False}
    return {name: getattr(settings, key.replace(".", "_"), defaults.get(name, ""))
            for name, key in SETTING_KEYS.items()}


def check_ingest_settings(values: Mapping[str, Any]) -> None:
    """Check the saved import defaults (keyed by option name, as `saved_ingest_settings`).

    Raises:
        ImportOptionError: a value is malformed; the message starts with its setting.
    """
    _checked({name: values.get(name) for name in SETTING_KEYS}, SETTING_KEYS)


def resolve_options(settings: Any, flags: ImportFlags | None = None) -> ImportOptions:
    """The import's options: flags over the saved settings, over the events.* settings.

    Raises:
        ImportOptionError: a flag or setting has a bad value (the message names it).
    """
    flags = flags or ImportFlags()
    saved = _checked(saved_ingest_settings(settings), SETTING_KEYS)
    given = _checked({name: getattr(flags, name) for name in FLAGS}, FLAGS)
    chosen = {name: given[name] if given.get(name) is not None else saved.get(name)
              for name in FLAGS}
    rules = TimestampRules.from_settings(settings)
    rules = replace(rules, timestamp_format=chosen["timestamp_format"] or "",
                    dayfirst=bool(chosen["dayfirst"]),
                    naive_timezone=chosen["timezone"] or rules.naive_timezone)
    format_origin = ""
    if rules.timestamp_format:
        format_origin = FLAGS["timestamp_format"] if given["timestamp_format"] \
            else SETTING_KEYS["timestamp_format"]
    return ImportOptions(
        flag_map=given["column_map"] or {}, saved_map=saved["column_map"] or {},
        event_types=EventTypeNames({**(saved["event_types"] or {}),
                                    **(given["event_types"] or {})},
                                   case_sensitive=bool(chosen["event_types_case_sensitive"])),
        timestamps=rules, zone_origin="--timezone" if given["timezone"] else
        "events.naive_timezone", format_origin=format_origin,
        delimiter=chosen["delimiter"] or "", encoding=chosen["encoding"] or "utf-8",
        file_format=chosen["file_format"] or "")


def _checked(raw: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """Each given value parsed (None stays None); errors name the label."""
    parsers = {"column_map": parse_column_map, "event_types": parse_event_types,
               "timestamp_format": _timestamp_format, "timezone": _timezone,
               "delimiter": delimiter_char, "encoding": _encoding, "file_format": _file_format}
    parsed: dict[str, Any] = {}
    for name, label in labels.items():
        value = raw.get(name)
        if value is None or isinstance(value, bool) or name not in parsers:
            parsed[name] = value
            continue
        if not isinstance(value, str):
            raise ImportOptionError(f"{label}: must be text, got {value!r}")
        try:
            parsed[name] = parsers[name](value, label) if value.strip() or name == "delimiter" \
                else None
        except ValueError as error:
            raise ImportOptionError(str(error)) from None
    return parsed


def _timestamp_format(text: str, label: str) -> str:
    """A strftime format that reads back what it writes."""
    sample = datetime(2026, 1, 5, 10, 3, 4).astimezone()
    if "%" not in text:
        raise InputError(f"{label}: {text!r} has no strftime directive (e.g. '%d/%m/%Y %H:%M')")
    try:
        datetime.strptime(sample.strftime(text), text)
    except ValueError as error:
        raise InputError(f"{label}: {text!r} is not a strftime format that can be read "
                         f"back ({error})") from None
    return text


def _timezone(text: str, label: str) -> str:
    """An IANA zone name."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{label}: {text!r} is not an IANA zone name (e.g. UTC, "
                         "Europe/Berlin)") from None
    return text.strip()


def _encoding(text: str, label: str) -> str:
    return encoding_name(text, label)


def _file_format(text: str, label: str) -> str:
    value = text.strip().lower()
    value = {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(value, value)
    if value not in FORMATS:
        raise InputError(f"{label}: {text!r} is not a format; one of {', '.join(FORMATS)}")
    return value
