"""Which of a file's columns is which contract column: `--map` and `ingest.column_map`
(`customer_id=user_id,timestamp=ts`; `a|b` takes the first of `a` and `b` that is not
empty), same-named columns, and the layout of Segment and RudderStack exports.

Reads and writes nothing: `plan_columns` decides from the file's column names (for JSON
Lines, the keys of its first lines, nested ones as dotted paths such as
`properties.price`), and `ColumnPlan.apply` renames a chunk's columns.

Precedence per contract column: the flag, then the saved setting, then a column of that
name, then (in a Segment or RudderStack export) the export's own field. A flag naming a
column the file lacks is an error; a saved entry whose columns are absent is skipped, so
one saved mapping can serve files of several shapes. PII columns (`email`, `name`, ...)
can never be mapped onto an event column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tailor.errors import InputError
from tailor.events.schema import EVENT_COLUMNS, PII_COLUMNS, ContractError

FLAG, SAVED = "--map", "ingest.column_map"
SEGMENT = "segment"
# Where a Segment or RudderStack export keeps each contract column: JSON from object
# storage (camelCase, nested) and warehouse tables (snake_case, `context_` flattened).
SEGMENT_SOURCES: dict[str, tuple[str, ...]] = {
    "customer_id": ("userId", "user_id", "anonymousId", "anonymous_id"),
    "event_type": ("event", "type"),
    "timestamp": ("timestamp", "originalTimestamp", "original_timestamp"),
    "event_id": ("messageId", "message_id", "id"),
    "product_id": ("properties.product_id", "properties.productId"),
    "price": ("properties.price",),
    "quantity": ("properties.quantity",),
    "order_id": ("properties.order_id", "properties.orderId"),
    "query": ("properties.query",),
    "session_id": ("context.sessionId", "context.session_id", "context_session_id"),
    "device_type": ("context.device.type", "context_device_type"),
    "properties": ("properties",),
}
# Fields only such exports have beside `event` or `type`.
_SEGMENT_MARKS = ("userId", "anonymousId", "user_id", "anonymous_id", "messageId")


def parse_column_map(text: str, label: str) -> dict[str, tuple[str, ...]]:
    """`customer_id=user_id|anonymous_id,timestamp=ts` as {contract column: source columns}.

    Raises:
        InputError: an entry without `=`, a target that is not a contract column, an empty
            source, or one target given twice (the message starts with `label`).
    """
    mapping: dict[str, tuple[str, ...]] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        target, equals, sources = entry.partition("=")
        target = target.strip().lower()
        names = tuple(name.strip() for name in sources.split("|"))
        if not equals or not all(names):
            raise InputError(f"{label}: {entry!r} is not column=source (e.g. "
                             "customer_id=user_id,timestamp=ts)")
        if target not in EVENT_COLUMNS:
            raise InputError(f"{label}: {target!r} is not a contract column; one of "
                             + ", ".join(EVENT_COLUMNS))
        if target in mapping:
            raise InputError(f"{label}: {target} is mapped twice")
        mapping[target] = names
    return mapping


def is_segment_layout(columns: list[str]) -> bool:
    """Whether the columns are a Segment or RudderStack export's: an `event` or `type`, a
    user or anonymous id (or a `messageId`), and no `event_type` of the contract's own."""
    present = set(columns)
    return ("event_type" not in present and bool(present & {"event", "type"})
            and bool(present & set(_SEGMENT_MARKS)))


@dataclass(frozen=True)
class ColumnPlan:
    """How a file's columns become the contract's.

    Attributes:
        sources: per mapped contract column, the file columns it is taken from (the first
            one not empty wins); contract columns the file has by name are not listed.
        origins: per mapped contract column, who said so: `--map`, `ingest.column_map` or
            `segment`.
        layout: `segment` for a Segment or RudderStack export, else `contract`.
        columns: the file's columns.
    """

    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    layout: str = "contract"
    columns: tuple[str, ...] = ()

    def contract_columns(self) -> set[str]:
        """The contract columns the file provides, mapped or by name."""
        return (set(self.sources) | set(self.columns)) & set(EVENT_COLUMNS)

    def describe(self) -> dict[str, str]:
        """{contract column: its source(s), with who mapped it} for the report."""
        described = {}
        for name in EVENT_COLUMNS:
            if name in self.sources:
                described[name] = f"{'|'.join(self.sources[name])} ({self.origins[name]})"
            elif name in self.columns:
                described[name] = name
        return described

    def one_line_sources(self, one_line: tuple[str, ...]) -> dict[str, str]:
        """{file column: contract column} for the contract's one-line columns (where a line
        break means an unterminated quote swallowed lines)."""
        found = {name: name for name in one_line if name in self.columns
                 and name not in self.sources}
        for name in one_line:
            for source in self.sources.get(name, ()):
                found.setdefault(source, name)
        return found

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The chunk with each mapped contract column taken from its sources; a column that
        already had a mapped contract column's name is kept as `<name>_unmapped`."""
        if not self.sources:
            return frame
        built = {target: _first_present([frame[name] for name in names if name in frame])
                 for target, names in self.sources.items()}
        displaced = {name: f"{name}_unmapped" for name in built if name in frame.columns}
        frame = frame.rename(columns=displaced) if displaced else frame.copy(deep=False)
        for target, values in built.items():
            frame[target] = values
        return frame


def _first_present(columns: list[pd.Series]) -> pd.Series | None:
    """Per row the first value that is present and not blank (None if no column)."""
    if not columns:
        return None
    result = columns[0]
    for more in columns[1:]:
        if isinstance(result.dtype, pd.ArrowDtype) and isinstance(more.dtype, pd.ArrowDtype):
            result = _arrow_coalesce(result, more)
        else:
            result = _blank_as_null(result).combine_first(more)
    return result


def _arrow_coalesce(first: pd.Series, second: pd.Series) -> pd.Series:
    """Arrow-backed text: the first where present and not blank, else the second."""
    left, right = pa.array(first.array), pa.array(second.array)
    if left.type != right.type:
        right = right.cast(left.type)
    blank = pc.equal(pc.utf8_trim_whitespace(left), "") if pa.types.is_string(left.type) \
        else pc.is_null(left)
    kept = pc.if_else(blank.fill_null(True), right, left)
    return pd.Series(pd.arrays.ArrowExtensionArray(kept), index=first.index)


def _blank_as_null(values: pd.Series) -> pd.Series:
    """Blank text as missing, so that the next source fills it."""
    if values.dtype == object:
        return values.where(~values.map(lambda value: isinstance(value, str)
                                        and not value.strip()), None)
    return values


def plan_columns(columns: list[str], flag_map: dict[str, tuple[str, ...]],
                 saved_map: dict[str, tuple[str, ...]], *, where: str,
                 strict: bool = True) -> ColumnPlan:
    """Decide each contract column's source among `columns` (module docstring).

    Args:
        columns: the file's columns (JSON Lines: keys seen, nested as dotted paths).
        flag_map, saved_map: `--map` and `ingest.column_map`, parsed.
        where: the file, for messages.
        strict: the columns are all the file has: a flag's source the file lacks is an
            error, a saved one is skipped. JSON Lines: only keys seen in the first lines are
            known, so every source named is kept (a later line may have it).

    Raises:
        ContractError: a flag names a column the file lacks, or a source is a PII column.
    """
    layout = SEGMENT if is_segment_layout(columns) else "contract"
    sources: dict[str, tuple[str, ...]] = {}
    origins: dict[str, str] = {}
    for target in EVENT_COLUMNS:
        for origin, mapping in ((FLAG, flag_map), (SAVED, saved_map)):
            if target not in mapping:
                continue
            found = _resolve(mapping[target], columns, target, origin, where,
                             strict=strict and origin == FLAG, keep_unseen=not strict)
            if found:
                sources[target], origins[target] = found, origin
                break
        else:
            if target in columns or layout != SEGMENT or target not in SEGMENT_SOURCES:
                continue
            found = tuple(name for name in SEGMENT_SOURCES[target] if name in columns)
            if found and found != (target,):
                sources[target], origins[target] = found, SEGMENT
    return ColumnPlan(sources, origins, layout, tuple(columns))


def _resolve(names: tuple[str, ...], columns: list[str], target: str, origin: str,
             where: str, strict: bool, keep_unseen: bool = False) -> tuple[str, ...]:
    """The file's columns for `names` (exact, else ignoring case); names not among them
    are an error (`strict`), kept as given (`keep_unseen`) or left out."""
    by_lower = {name.lower(): name for name in columns}
    found = []
    for name in names:
        column = name if name in columns else by_lower.get(name.lower())
        if name.strip().lower() in PII_COLUMNS:
            raise ContractError(f"{origin} {target}={name}: {name} is a PII column; it never "
                                "reaches the events (map a pseudonymous id instead)")
        if column is None and strict:
            shown = ", ".join(columns[:30]) + (", ..." if len(columns) > 30 else "")
            raise ContractError(f"{origin} {target}={'|'.join(names)}: {where} has no column "
                                f"{name!r} (found: {shown or 'none'})")
        if column is None and keep_unseen:
            column = name
        if column is not None:
            found.append(column)
    return tuple(found)
