"""Event-type names of other tools read as the contract's: Segment's e-commerce spec built in
(`Order Completed` is a purchase), the shop's own synonyms from `--event-types` or
`ingest.event_types`, and any spelling of the contract's names (`Purchase`, `ADD TO CART`).

Reads and writes nothing. By default names match whatever their case and separators
(`Order Completed`, `order_completed` and `ORDER-COMPLETED` are one name); with
`case_sensitive` only the exact spelling matches. In a Segment or RudderStack export the
calls that are not events (`identify`, `group`, `alias`) are left out and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tailor.errors import InputError
from tailor.events.arrow_text import text_array
from tailor.events.schema import EVENT_TYPES
# Segment's e-commerce, e-mail and page specs as the contract's types: the one table the
# collector's Segment API uses too (RudderStack's e-commerce spec uses the same names).
from tailor.events.segment_mapping import SEGMENT_EVENT_TYPES  # noqa: F401 (re-exported)

# Segment and RudderStack calls that are about a person or an account, not an event.
NOT_EVENT_CALLS: tuple[str, ...] = ("identify", "group", "alias")
_SEPARATORS = re.compile(r"[\s_\-]+")
_SKIP = ""  # the target of a call that is not an event


def name_key(name: str, case_sensitive: bool = False) -> str:
    """How a name is compared: trimmed; unless case-sensitive also lower-cased with runs of
    spaces, underscores and hyphens as one space."""
    if case_sensitive:
        return name.strip()
    return _SEPARATORS.sub(" ", name.strip().lower()).strip()


def parse_event_types(text: str, label: str) -> dict[str, str]:
    """`purchase=Order Completed|Checkout Done,add_to_cart=Added` as {name: contract type}.

    Raises:
        InputError: an entry without `=`, a type that is not the contract's, an empty name, or
            one name given two types (the message starts with `label`).
    """
    names: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        event_type, equals, sources = entry.partition("=")
        event_type = event_type.strip()
        if not equals:
            raise InputError(f"{label}: {entry!r} is not type=name (e.g. purchase=Order "
                             "Completed|Checkout Done)")
        if event_type not in EVENT_TYPES:
            raise InputError(f"{label}: {event_type!r} is not an event type; one of "
                             + ", ".join(EVENT_TYPES))
        for source in (name.strip() for name in sources.split("|")):
            if not source:
                raise InputError(f"{label}: {entry!r} has an empty name")
            if names.get(source, event_type) != event_type:
                raise InputError(f"{label}: {source!r} is given two types, "
                                 f"{names[source]} and {event_type}")
            names[source] = event_type
    return names


@dataclass(frozen=True)
class EventTypeNames:
    """The names read as each contract type (`synonyms`: the shop's own, from the flag or
    setting), how names are compared, and whether non-event calls are left out."""

    synonyms: dict[str, str] = field(default_factory=dict)
    case_sensitive: bool = False
    skip_non_events: bool = False

    def table(self) -> dict[str, str]:
        """Every name read as a contract type, compared as `name_key` says; "" marks a call
        that is left out."""
        keyed: dict[str, str] = {}
        builtin = dict(SEGMENT_EVENT_TYPES)
        if self.case_sensitive:  # the warehouse tables' spelling ("order_completed") too
            builtin.update({_SEPARATORS.sub("_", name.lower()): event_type
                            for name, event_type in SEGMENT_EVENT_TYPES.items()})
        for names in (builtin, {name: name for name in EVENT_TYPES}, self.synonyms):
            for name, event_type in names.items():
                keyed[name_key(name, self.case_sensitive)] = event_type
        if self.skip_non_events:
            for call in NOT_EVENT_CALLS:
                keyed.setdefault(name_key(call, self.case_sensitive), _SKIP)
        return keyed

    def read(self, values: pd.Series) -> "EventTypesRead":
        """The column with other names replaced by the contract's types (values no name
        matches are left for the contract check to refuse), and the rows to leave out."""
        text = text_array(values)
        if text is None:  # not all text (a number, say): the contract check names it
            return EventTypesRead(values, np.zeros(len(values), dtype=bool), {}, {})
        unknown = np.asarray(text.is_valid()) \
            & ~np.asarray(pc.is_in(text, value_set=pa.array(EVENT_TYPES)).fill_null(False))
        if not unknown.any():
            return EventTypesRead(values, np.zeros(len(values), dtype=bool), {}, {})
        counts = pc.value_counts(text.filter(pa.array(unknown))).to_pylist()
        table = self.table()
        targets = {entry["values"]: table.get(name_key(entry["values"], self.case_sensitive))
                   for entry in counts}
        names = [name for name, target in targets.items() if target is not None]
        if not names:
            return EventTypesRead(values, np.zeros(len(values), dtype=bool), {}, {})
        positions = pc.index_in(text, value_set=pa.array(names, type=pa.string()))
        replaced = pc.take(pa.array([targets[name] for name in names], type=pa.string()),
                           positions)
        skip = np.asarray(pc.equal(replaced, _SKIP).fill_null(False))
        mapped = pc.if_else(pc.is_valid(replaced), replaced, text)
        column = pd.Series(pd.arrays.ArrowExtensionArray(mapped), index=values.index)
        by_count = {entry["values"]: entry["counts"] for entry in counts}
        renamed = {name: (targets[name], by_count[name]) for name in names if targets[name]}
        skipped = {name_key(name): by_count[name] for name in names if not targets[name]}
        return EventTypesRead(column, skip, renamed, skipped)


@dataclass
class EventTypesRead:
    """An event-type column read: values as contract types, the rows left out (calls that
    are not events), and counts of each name renamed (name → (type, rows)) or left out."""

    values: pd.Series
    skip: np.ndarray
    renamed: dict[str, tuple[str, int]]
    skipped: dict[str, int]
