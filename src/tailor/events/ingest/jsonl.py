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
import re
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


# One decoder for every line (json.loads with options builds a new one per call). A number
# too large for a float (1e309) reads as infinity, which the contract refuses.
_DECODE = json.JSONDecoder(parse_constant=_keep_text).decode


def parse_line(line: bytes | str) -> Any:
    """One line as JSON (NaN, Infinity and -Infinity kept as their text).

    Raises:
        ValueError: not JSON, or (bytes) not UTF-8.
    """
    text = line.decode(UTF8) if isinstance(line, bytes) else line
    return _DECODE(text.lstrip("\ufeff"))


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
    wins; the event-type names (to recognise an order listing its items); and whether the
    file has flat `properties.x` keys."""

    paths: dict[str, tuple[str, ...]]
    event_types: EventTypeNames
    flat_properties: bool = False

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
        flat = any(column.startswith("properties.") and "properties" not in plan.columns
                   for column in plan.columns)
        return cls(paths, event_types, flat)


def iter_jsonl_chunks(location: Any, encoding: str, plan: JsonPlan,
                      chunk_rows: int) -> Iterator[Chunk]:
    """The file's rows in chunks of about `chunk_rows` lines (an order's items stay together).

    Args:
        location: the file; encoding: its text encoding.
        plan: where each contract column is read from.
        chunk_rows: lines per chunk.
    """
    reader = _ChunkReader(plan)
    numbers: list[int] = []
    records: list[dict] = []
    malformed: list[MalformedLine] = []
    for number, line, record in _records(location, encoding):
        if type(record) is dict:
            numbers.append(number)
            records.append(record)
        else:
            text = line.decode(UTF8, "replace") if isinstance(line, bytes) else line
            detail = (f"row: not valid JSON ({record})" if isinstance(record, BaseException)
                      else f"row: a JSON {type(record).__name__}, not an object")
            malformed.append(MalformedLine(number, masked(text.rstrip("\r\n")), 0, 0, detail))
        if len(records) >= chunk_rows:
            yield reader.chunk(numbers, records, malformed)
            numbers, records, malformed = [], [], []
    if records or malformed:
        yield reader.chunk(numbers, records, malformed)


def masked(text: str) -> str:
    """A line that is not JSON, fit for the dead letter: the values of personal keys and
    e-mail addresses masked (a broken line cannot be taken apart reliably)."""
    text = _PERSONAL_PAIR.sub(lambda match: f'"{match.group(1)}": "***"', text)
    return _EMAIL.sub("***@***", text)


class _ChunkReader:
    """Turns a chunk's objects into columns, one column at a time (a list comprehension per
    column is several times faster than building each row)."""

    def __init__(self, plan: JsonPlan) -> None:
        self.plan = plan
        self.purchase_keys = {key for key, event_type in plan.event_types.table().items()
                              if event_type == "purchase"}
        self.consumed = {path.split(".", 1)[1] for name, paths in plan.paths.items()
                         if name != "properties" for path in paths
                         if path.startswith("properties.")}
        # Per column: its one plain key (read with a dict lookup), or its paths.
        self.getters = [(name, paths[0] if len(paths) == 1 and "." not in paths[0] else None,
                         paths) for name, paths in plan.paths.items()]

    def chunk(self, numbers: list[int], records: list[dict],
              malformed: list[MalformedLine]) -> Chunk:
        """The objects as a `Chunk`: typed columns, line numbers, refused fields."""
        columns = {name: [record.get(key) for record in records] if key is not None
                   else [_lookup(record, paths) for record in records]
                   for name, key, paths in self.getters}
        columns["properties"] = [
            self._properties(record, value) if type(value) is dict or self.plan.flat_properties
            else value for record, value in zip(records, columns["properties"])]
        orders = [position for position, (product, properties) in enumerate(
            zip(columns["product_id"], columns["properties"]))
            if product is None and type(properties) is dict and "products" in properties]
        if orders:
            numbers, records, columns = self._items_as_rows(numbers, records, columns, orders)
        fields = np.full(len(records), None, dtype=object)
        details = np.full(len(records), None, dtype=object)
        typed = {}
        for name, values in columns.items():
            typed[name] = _typed(values)
            if name == "properties" or typed[name].dtype != object:
                continue  # text or numbers: nothing nested
            for position in [position for position, value in enumerate(values)
                             if type(value) in (dict, list)]:
                kind = "object" if type(values[position]) is dict else "array"
                if fields[position] is None:
                    fields[position] = name
                    details[position] = f"{name}: must be text or a number, not a JSON {kind}"
                values[position] = None
                typed[name] = None
            if typed[name] is None:
                typed[name] = _typed(values)
        refused = bool((fields != None).any())  # noqa: E711 (elementwise comparison)
        frame = pd.DataFrame(typed)
        return Chunk(frame, np.array(numbers, dtype="int64"), malformed,
                     refused_field=fields if refused else None,
                     refused_detail=details if refused else None, records=records)

    def _properties(self, record: dict, value: Any) -> Any:
        """The object's properties without the keys mapped onto columns or personal ones;
        flat `properties.x` keys join them."""
        merged = value if type(value) is dict else {}
        if self.plan.flat_properties:
            flat = {key.split(".", 1)[1]: item for key, item in record.items()
                    if key.startswith("properties.")}
            if not flat and type(value) is not dict:
                return value
            merged = {**merged, **flat}
        kept = {key: item for key, item in merged.items()
                if key not in self.consumed and key.lower() not in PERSONAL_KEYS}
        return kept or None

    def _items_as_rows(self, numbers: list[int], records: list[dict],
                       columns: dict[str, list[Any]], orders: list[int]
                       ) -> tuple[list[int], list[dict], dict[str, list[Any]]]:
        """The columns again, with each purchase that lists its items as a row per item."""
        exploded = {position: items for position in orders
                    if (items := self._order_items(columns, position)) is not None}
        if not exploded:
            return numbers, records, columns
        names = list(columns)
        rows_numbers, rows_records = [], []
        rebuilt: dict[str, list[Any]] = {name: [] for name in names}
        for position in range(len(records)):
            values = {name: columns[name][position] for name in names}
            items = exploded.get(position)
            for index, item in enumerate(items or (None,)):
                row = values if item is None else {**values, **_item_values(item, values,
                                                                            index)}
                for name in names:
                    rebuilt[name].append(row[name])
                rows_numbers.append(numbers[position])
                rows_records.append(records[position])
        return rows_numbers, rows_records, rebuilt

    def _order_items(self, columns: dict[str, list[Any]], position: int) -> list[dict] | None:
        """An order's items, when the row's type is a purchase and it lists them."""
        items, event_type = columns["properties"][position].get("products"), \
            columns["event_type"][position]
        if not isinstance(items, list) or not items or not isinstance(event_type, str) \
                or not all(isinstance(item, dict) for item in items):
            return None
        if name_key(event_type, self.plan.event_types.case_sensitive) not in self.purchase_keys:
            return None
        return items


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
    try:
        inferred = pa.array(values)
    except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError, UnicodeEncodeError):
        return pd.Series(values, dtype=object)
    if pa.types.is_floating(inferred.type) or (
            pa.types.is_integer(inferred.type)
            and max(abs(pc.min(inferred).as_py() or 0), abs(pc.max(inferred).as_py() or 0))
            < _EXACT_INT):
        return pd.Series(inferred.to_numpy(zero_copy_only=False).astype("float64"))
    return pd.Series(values, dtype=object)


def raw_json(record: dict) -> str:
    """An object as dead-letter text, with personal keys at any depth left out."""
    return json.dumps(_without_personal(record), default=str)


def _without_personal(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_personal(item) for key, item in value.items()
                if str(key).lower() not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [_without_personal(item) for item in value]
    return value
