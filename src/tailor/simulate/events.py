"""Simulated events as integer-coded numpy columns, and their conversion to the data contract.

The simulator keeps events as codes (customer index, product index, event-type index,
...) so that a day of events is a handful of arrays; `to_arrow` turns them into the
contract's string columns in C++ (pyarrow compute), never row by row in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tailor.events.schema import EVENT_TYPES
from tailor.simulate import taxonomy
from tailor.simulate.behaviour import QUERY_WORDS

EVENT_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}
# Garbled spellings a broken client might send; codes len(EVENT_TYPES) + i (malformed rows).
# None of them is a known type in another case or with other separators (import reads those).
GARBLED_EVENT_TYPES: tuple[str, ...] = (
    "page_vi3w", "pr0duct_view", "se@rch", "add_t0_cart", "remove_from_c@rt", "checkout_st@rt",
    "purch@se", "cl!ck", "email_0pen", "email_cl!ck",
)
UNKNOWN_PRODUCT_SLOTS = 1_000  # product ids after the catalogue's, used for unknown_product faults
PRODUCT_EVENT_CODES = np.array([EVENT_CODE[name] for name in
                                ("product_view", "add_to_cart", "remove_from_cart", "purchase")])

EVENT_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("customer_id", pa.string()), ("event_type", pa.string()),
    ("product_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("session_id", pa.string()), ("price", pa.float64()), ("quantity", pa.int16()),
    ("order_id", pa.string()), ("device_type", pa.string()), ("query", pa.string()),
    ("properties", pa.string()),
])


@dataclass
class EventColumns:
    """Events as parallel arrays; -1 (or NaN, None, 0 for quantity) marks an absent value."""

    timestamp_us: np.ndarray
    event_type: np.ndarray
    customer: np.ndarray
    product: np.ndarray
    session: np.ndarray
    order: np.ndarray
    quantity: np.ndarray
    device: np.ndarray
    query: np.ndarray
    price: np.ndarray
    time_on_page: np.ndarray
    properties: np.ndarray
    event_number: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamp_us)

    def take(self, index: np.ndarray | slice) -> EventColumns:
        """The rows at `index` (an index array, mask or slice), as a new object."""
        return EventColumns(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, parts: list[EventColumns]) -> EventColumns:
        """All rows of `parts`, in order."""
        parts = [part for part in parts if len(part)] or [cls.empty()]
        return cls(**{f.name: np.concatenate([getattr(part, f.name) for part in parts])
                      for f in fields(cls)})

    @classmethod
    def empty(cls) -> EventColumns:
        return cls.build(np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.int32))

    @classmethod
    def build(cls, timestamp_us: np.ndarray, event_type: np.ndarray, customer: np.ndarray,
              **columns: np.ndarray) -> EventColumns:
        """Events with the given columns; the others filled with 'absent'."""
        n = len(timestamp_us)
        absent = {
            "product": np.full(n, -1, np.int32), "session": np.full(n, -1, np.int64),
            "order": np.full(n, -1, np.int64), "quantity": np.zeros(n, np.int8),
            "device": np.full(n, -1, np.int8), "query": np.full(n, -1, np.int16),
            "price": np.full(n, np.nan), "time_on_page": np.full(n, np.nan, np.float32),
            "properties": np.full(n, None, dtype=object), "event_number": np.full(n, -1, np.int64),
        }
        for name, values in columns.items():
            absent[name] = np.asarray(values).astype(absent[name].dtype, copy=False)
        return cls(timestamp_us=np.asarray(timestamp_us, np.int64),
                   event_type=np.asarray(event_type, np.int8),
                   customer=np.asarray(customer, np.int32), **absent)

    def sorted_by_time(self) -> EventColumns:
        """Rows in timestamp order; ties keep their order (the session's step order)."""
        return self.take(np.argsort(self.timestamp_us, kind="stable"))


@dataclass(frozen=True)
class Vocabulary:
    """The strings behind the codes: ids of customers and products (catalogue + unknown)."""

    customer_ids: pa.Array
    product_ids: pa.Array
    event_types: pa.Array
    devices: pa.Array
    queries: pa.Array

    @classmethod
    def for_shop(cls, customer_ids: np.ndarray, product_ids: np.ndarray) -> Vocabulary:
        width = len(product_ids[-1]) - 1 if len(product_ids) else 5
        first_unknown = len(product_ids) + 101
        unknown = [f"p{number:0{width}d}" for number in
                   range(first_unknown, first_unknown + UNKNOWN_PRODUCT_SLOTS)]
        return cls(
            customer_ids=pa.array(customer_ids.tolist(), pa.string()),
            product_ids=pa.array(product_ids.tolist() + unknown, pa.string()),
            event_types=pa.array(list(EVENT_TYPES) + list(GARBLED_EVENT_TYPES), pa.string()),
            devices=pa.array(list(taxonomy.DEVICES), pa.string()),
            queries=pa.array(list(QUERY_WORDS), pa.string()),
        )


def _lookup(dictionary: pa.Array, codes: np.ndarray) -> pa.Array:
    """dictionary[codes] with null where a code is negative."""
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pc.take(dictionary, indices)


def _numbered(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids like s000000042 from numbers; null where a number is negative."""
    text = pc.cast(pa.array(numbers.astype(np.int64), mask=numbers < 0), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(text, width, "0"), "")


def _properties(events: EventColumns) -> pa.Array:
    """JSON object text: time on page where measured, else the row's properties text."""
    measured = ~np.isnan(events.time_on_page)
    seconds = pc.cast(pc.round(pa.array(events.time_on_page.astype(np.float64), mask=~measured), 1),
                      pa.string())
    time_on_page = pc.binary_join_element_wise('{"time_on_page":', seconds, "}", "")
    others = pa.array(events.properties, pa.string())
    return pc.if_else(pa.array(measured), time_on_page, others)


def to_arrow(events: EventColumns, vocabulary: Vocabulary) -> pa.Table:
    """The events as a table with exactly the contract's columns (EVENT_SCHEMA)."""
    columns = [
        _numbered("e", events.event_number, 10),
        _lookup(vocabulary.customer_ids, events.customer),
        _lookup(vocabulary.event_types, events.event_type.astype(np.int32)),
        _lookup(vocabulary.product_ids, events.product),
        pa.array(events.timestamp_us, pa.timestamp("us", tz="UTC")),
        _numbered("s", events.session, 9),
        pa.array(events.price, pa.float64(), from_pandas=True),
        pa.array(events.quantity.astype(np.int16), mask=events.quantity <= 0),
        _numbered("o", events.order, 8),
        _lookup(vocabulary.devices, events.device.astype(np.int32)),
        _lookup(vocabulary.queries, events.query.astype(np.int32)),
        _properties(events),
    ]
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
