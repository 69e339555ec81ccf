"""Reading JSON Lines in chunks: one JSON object per line, plain or gzipped, flat or nested,
including Segment and RudderStack track calls from object storage.

Reads the file (through `formats`: local or fsspec); writes nothing. Each contract column is
taken from its key, or from the paths the column plan names (`properties.price` is the
`price` key inside `properties`, or a flat key of that name); `properties` keeps what is
left of the object's `properties` once the mapped keys are taken out, and keys of personal
data (`email`, `name`, `phone`, ... at any depth) never reach a row or the dead letter. An
order whose `properties.products` lists its items and that names no product itself (Segment's
`Order Completed`) becomes one purchase row per item. A line that is not a JSON object is
a malformed row; a value that is an object or a list where the contract wants text or a
number is refused naming its field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from tailor.events.ingest.event_types import EventTypeNames, name_key
from tailor.events.ingest.formats import UTF8, open_decompressed, read_text_lines
from tailor.events.ingest.mapping import SEGMENT, SEGMENT_SOURCES, ColumnPlan
from tailor.events.ingest.report import Chunk, MalformedLine
from tailor.events.schema import EVENT_COLUMNS, PII_COLUMNS

SAMPLE_LINES = 1_000
PERSONAL_KEYS = frozenset(PII_COLUMNS) | {"ip", "email_address", "phone_number"}
_EXACT_INT = 2 ** 53
_ITEM_PRODUCT_KEYS = ("product_id", "productId", "sku", "id")
# `"email": "..."` pairs and bare e-mail addresses, masked in a line that is not JSON.
_PERSONAL_PAIR = re.compile(r'"(' + "|".join(sorted(PERSONAL_KEYS)) + r')"\s*:\s*"[^"]*"',
                            re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def _keep_text(constant: str) -> str:
    """NaN, Infinity and -Infinity are not JSON: kept as text, refused by the contract."""
    return constant


def _float_or_text(text: str) -> float | str:
    """A JSON number as float; one too large for a float (1e309) stays text as sent."""
    number = float(text)
    return number if math.isfinite(number) else text


def parse_line(line: bytes | str) -> Any:
    """One line as JSON (NaN, Infinity and overflowing numbers kept as their text)."""
    return json.loads(line, parse_constant=_keep_text, parse_float=_float_or_text)


def sample_keys(location: Any, encoding: str, lines: int = SAMPLE_LINES) -> list[str]:
    """Keys of the first objects: top-level keys and nested ones as dotted paths."""
    keys: dict[str, None] = {}
    for _, _, record in _records(location, encoding, limit=lines):
        if isinstance(record, dict):
            for key in _paths(record):
                keys.setdefault(key)
    return list(keys)


def _paths(record: dict, prefix: str = "", depth: int = 0) -> Iterator[str]:
    for key, value in record.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and depth < 3:
            yield from _paths(value, f"{path}.", depth + 1)


def _records(location: Any, encoding: str, limit: int | None = None
             ) -> Iterator[tuple[int, bytes | str, Any]]:
    """(line number, line, parsed object or the JSONDecodeError) per non-blank line."""
    with open_decompressed(location) as raw:
        lines = raw if encoding == UTF8 else read_text_lines(raw, encoding)
        for number, line in enumerate(lines, start=1):
            if limit is not None and number > limit:
                return
            if not line.strip():
                continue
            try:
                yield number, line, parse_line(line)
            except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8
                yield number, line, error


@dataclass(frozen=True)
class JsonPlan:
    """How each contract column is read from an object: candidate key paths, first present
    wins; and the event-type names (to recognise an order listing its items)."""

    paths: dict[str, tuple[str, ...]]
    event_types: EventTypeNames

    @classmethod
    def from_columns(cls, plan: ColumnPlan, event_types: EventTypeNames) -> "JsonPlan":
        """Paths from the column plan, each column's own key last; unmapped columns by their
        own key and, in a Segment export, by the export's keys even where the sampled lines
        lacked them."""
        paths = {}
        for name in EVENT_COLUMNS:
            if name in plan.sources and plan.origins[name] != SEGMENT:  # then the own key
                paths[name] = tuple(dict.fromkeys((*plan.sources[name], name)))
            elif plan.layout == SEGMENT:
                paths[name] = tuple(dict.fromkeys((*plan.sources.get(name, ()), name,
                                                   *SEGMENT_SOURCES.get(name, ()))))
            else:
                paths[name] = (name,)
        return cls(paths, event_types)


def iter_jsonl_chunks(location: Any, encoding: str, plan: JsonPlan,
                      chunk_rows: int) -> Iterator[Chunk]:
    """The file's rows in chunks of about `chunk_rows` (an order's items stay together).

    Args:
        location: the file; encoding: its text encoding.
        plan: where each contract column is read from.
        chunk_rows: rows per chunk.
    """
    builder = _ChunkBuilder(plan)
    for number, line, record in _records(location, encoding):
        if isinstance(record, BaseException) or not isinstance(record, dict):
            text = line.decode(UTF8, "replace") if isinstance(line, bytes) else line
            detail = (f"row: not valid JSON ({record})" if isinstance(record, BaseException)
                      else f"row: a JSON {type(record).__name__}, not an object")
            builder.malformed.append(MalformedLine(number, masked(text.rstrip("\r\n")),
                                                   0, 0, detail))
        else:
            builder.add(number, record)
        if builder.size >= chunk_rows:
            yield builder.chunk()
            builder = _ChunkBuilder(plan)
    if builder.size or builder.malformed:
        yield builder.chunk()


def masked(text: str) -> str:
    """A line that is not JSON, fit for the dead letter: the values of personal keys and
    e-mail addresses masked (a broken line cannot be taken apart reliably)."""
    text = _PERSONAL_PAIR.sub(lambda match: f'"{match.group(1)}": "***"', text)
    return _EMAIL.sub("***@***", text)


class _ChunkBuilder:
    """Rows of one chunk, column by column, with their line numbers and objects."""

    def __init__(self, plan: JsonPlan) -> None:
        self.plan = plan
        self.columns: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMNS}
        self.rows: list[int] = []
        self.records: list[dict] = []
        self.refused: list[tuple[int, str, str]] = []  # (row, field, detail)
        self.malformed: list[MalformedLine] = []
        self.purchase_keys = {key for key, event_type in plan.event_types.table().items()
                              if event_type == "purchase"}
        self.consumed = {path.split(".", 1)[1] for name, paths in plan.paths.items()
                         if name != "properties" for path in paths
                         if path.startswith("properties.")}

    @property
    def size(self) -> int:
        return len(self.rows)

    def add(self, number: int, record: dict) -> None:
        """One object as one row, or an order as a row per item."""
        values = {name: _lookup(record, self.plan.paths[name]) for name in EVENT_COLUMNS}
        values["properties"] = self._properties(record, values["properties"])
        items = self._order_items(values)
        for position, item in enumerate(items or [None]):
            row = dict(values)
            if item is not None:
                row.update(_item_values(item, values, position))
            for name in EVENT_COLUMNS:
                value = row[name]
                if isinstance(value, (dict, list)) and name != "properties":
                    self.refused.append((len(self.rows), name, f"{name}: must be text or a "
                                         f"number, not a JSON {'object' if isinstance(value, dict) else 'array'}"))
                    value = None
                self.columns[name].append(value)
            self.rows.append(number)
            self.records.append(record)

    def _properties(self, record: dict, value: Any) -> Any:
        """The object's properties without the keys mapped onto columns or personal ones;
        flat `properties.x` keys join them."""
        flat = {key.split(".", 1)[1]: item for key, item in record.items()
                if key.startswith("properties.")}
        if not isinstance(value, dict) and not flat:
            return value
        merged = {**(value if isinstance(value, dict) else {}), **flat}
        kept = {key: item for key, item in merged.items()
                if key not in self.consumed and key.lower() not in PERSONAL_KEYS}
        return kept or None

    def _order_items(self, values: dict[str, Any]) -> list[dict] | None:
        """An order's items, when the row names no product and its type is a purchase."""
        properties, event_type = values["properties"], values["event_type"]
        if values["product_id"] is not None or not isinstance(properties, dict) \
                or not isinstance(event_type, str):
            return None
        items = properties.get("products")
        if not isinstance(items, list) or not items \
                or not all(isinstance(item, dict) for item in items):
            return None
        if name_key(event_type, self.plan.event_types.case_sensitive) not in self.purchase_keys:
            return None
        return items

    def chunk(self) -> Chunk:
        """The rows gathered as a `Chunk` (typed columns, line numbers, refused fields)."""
        frame = pd.DataFrame({name: _typed(values) for name, values in self.columns.items()})
        fields = np.full(self.size, None, dtype=object)
        details = np.full(self.size, None, dtype=object)
        for row, name, detail in self.refused:
            if fields[row] is None:
                fields[row], details[row] = name, detail
        refused = bool(self.refused)
        return Chunk(frame, np.array(self.rows, dtype="int64"), self.malformed,
                     refused_field=fields if refused else None,
                     refused_detail=details if refused else None, records=self.records)


def _item_values(item: dict, order: dict[str, Any], position: int) -> dict[str, Any]:
    """One item of an order as the row's product, price, quantity and event id."""
    product = next((item[key] for key in _ITEM_PRODUCT_KEYS if item.get(key) is not None), None)
    event_id = order["event_id"]
    properties = {key: value for key, value in order["properties"].items() if key != "products"}
    return {"product_id": product, "price": item.get("price"),
            "quantity": item.get("quantity"), "properties": properties or None,
            "event_id": None if event_id is None else f"{event_id}:{position + 1}"}


def _lookup(record: dict, paths: tuple[str, ...]) -> Any:
    """The first path present and not blank: a flat key, else a walk through nested objects."""
    for path in paths:
        value = record.get(path)
        if value is None and "." in path:
            value = record
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
                if value is None:
                    break
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value
    return None


def _typed(values: list[Any]) -> pd.Series:
    """A column as Arrow-backed text when it is all text, as float64 when all numbers that
    float64 holds exactly, else as Python objects (the contract check sorts those out)."""
    try:
        return pd.Series(pd.arrays.ArrowExtensionArray(pa.array(values, type=pa.string())))
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
        pass
    if all(value is None or (type(value) in (int, float) and abs(value) < _EXACT_INT)
           for value in values):
        return pd.Series(np.array([np.nan if value is None else value for value in values],
                                  dtype="float64"))
    return pd.Series(values, dtype=object)


def raw_json(record: dict) -> str:
    """An object as dead-letter text, with personal keys at any depth left out."""
    return json.dumps(_without_personal(record), default=str, ensure_ascii=False)


def _without_personal(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_personal(item) for key, item in value.items()
                if str(key).lower() not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [_without_personal(item) for item in value]
    return value


def has_personal_keys(keys: list[str]) -> bool:
    """Whether any sampled key (a dotted path) names personal data."""
    return any(key.rsplit(".", 1)[-1].lower() in PERSONAL_KEYS for key in keys)
