"""Bulk materialization of the batch views into Redis, in exactly Feast's Redis format.

Reads each entity's newest row within a window (the view's TTL, or what changed since the
last run: `tailor.features.repo.plan_windows`) from the offline Parquet files (DuckDB);
writes one Redis hash per entity the way Feast's Redis online store does: key =
serialized entity key + project, one field per feature (murmur3 of `<view>:<feature>`)
holding a serialized Feast `Value`, a `_ts:<view>` field holding the row's timestamp, and
the key TTL. Feast's own materialization converts value by value in Python; this encodes
each column at once, several times faster (measured side by side in
bench/bench_materialize.py; docs/features.md). Feast's SDK, the fast read path and the
parity tests read what it writes. The registry records the materialized interval as
Feast's would, so Feast's `materialize_incremental` continues from it.

Rows are written whatever the stored timestamp (the offline rows are recomputed from all
events, so the newest offline row is the truth); the session view, which the collector
pushes into, is left to Feast's materialization, which keeps the newer row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import pyarrow as pa
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import NULL_TIMESTAMP_INT_VALUE
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from tailor.features.feast_internals import feature_hash
from tailor.warehouse.duckdb_warehouse import sql_literal

log = logging.getLogger(__name__)

WRITE_CHUNK_ROWS = 5_000
_DOUBLE_TAG = 0x29  # field 5 (double_val), wire type 1 (64-bit)


@dataclass
class SourceGroup:
    """Batch views that share one offline file and entity: written with one HSET per entity."""

    path: str
    join_key: str
    timestamp_field: str
    views: list[Any]  # feast FeatureViews


def _unique_encode(values: Sequence[Any], encode: Any) -> list[bytes]:
    """Encode each distinct value once (counts, flags and labels repeat a lot)."""
    cache: dict[Any, bytes] = {}
    out = []
    for value in values:
        key = value if not isinstance(value, list) else tuple(value)
        found = cache.get(key)
        if found is None:
            found = cache[key] = encode(value)
        out.append(found)
    return out


def encode_doubles(column: pa.Array) -> list[bytes]:
    """Serialized `Value(double_val=...)` per row, empty bytes for null or NaN (as Feast)."""
    values = column.to_numpy(zero_copy_only=False).astype("<f8")
    size = len(values)
    buffer = np.empty((size, 9), dtype=np.uint8)
    buffer[:, 0] = _DOUBLE_TAG
    buffer[:, 1:] = values.view(np.uint8).reshape(size, 8)
    raw = buffer.tobytes()
    out = [raw[index * 9:(index + 1) * 9] for index in range(size)]
    for index in np.flatnonzero(np.isnan(values)):
        out[index] = b""
    return out


def _value_bytes(**field: Any) -> bytes:
    return Value(**field).SerializeToString()


def _string_list_bytes(items: Any) -> bytes:
    value = Value()
    value.string_list_val.val.extend(items)
    return value.SerializeToString()


def encode_column(column: pa.Array, value_type: ValueType) -> list[bytes]:
    """A column's serialized Feast `Value`s, byte for byte what Feast's materialization writes.

    Raises:
        ValueError: a value type Tailor does not store.
    """
    if value_type == ValueType.DOUBLE:
        return encode_doubles(column)
    if value_type == ValueType.UNIX_TIMESTAMP:
        micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
        seconds = [None if value is None else value // 1_000_000 for value in micros]
        return _unique_encode(seconds, lambda value: _value_bytes(
            unix_timestamp_val=NULL_TIMESTAMP_INT_VALUE if value is None else value))
    values = column.to_pylist()
    simple = {ValueType.INT64: "int64_val", ValueType.BOOL: "bool_val",
              ValueType.STRING: "string_val"}
    if value_type in simple:
        name = simple[value_type]
        return _unique_encode(values, lambda value: b"" if value is None
                              else _value_bytes(**{name: value}))
    if value_type == ValueType.STRING_LIST:
        return _unique_encode([value or [] for value in values], _string_list_bytes)
    raise ValueError(f"cannot bulk-encode value type {value_type}")


def timestamp_bytes(column: pa.Array) -> list[bytes]:
    """Serialized protobuf Timestamps of the rows (Feast's `_ts:<view>` field)."""
    micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()

    def encode(value: int) -> bytes:
        stamp = Timestamp(seconds=value // 1_000_000, nanos=(value % 1_000_000) * 1000)
        return stamp.SerializeToString()

    return _unique_encode(micros, encode)


def entity_keys(ids: Sequence[str], join_key: str, project: str, version: int) -> list[bytes]:
    """Feast's Redis key of each entity id: serialized entity key + project name."""
    suffix = project.encode("utf-8")
    return [serialize_entity_key(EntityKey(join_keys=[join_key],
                                           entity_values=[Value(string_val=entity_id)]),
                                 entity_key_serialization_version=version) + suffix
            for entity_id in ids]


def source_groups(store: Any) -> list[SourceGroup]:
    """The online batch views with a file source, grouped by file (push-fed views excluded)."""
    from feast.data_source import PushSource
    from feast.infra.offline_stores.file_source import FileSource

    groups: dict[tuple[str, str], SourceGroup] = {}
    for view in store.list_feature_views():
        source = view.stream_source or view.batch_source
        if not view.online or isinstance(view.stream_source, PushSource) \
                or not isinstance(source, FileSource) or not view.ttl:
            continue
        join_key = view.entity_columns[0].name
        key = (source.path, join_key)
        group = groups.setdefault(key, SourceGroup(source.path, join_key, source.timestamp_field,
                                                   []))
        group.views.append(view)
    return list(groups.values())


def newest_rows(group: SourceGroup, start: datetime, end: datetime) -> pa.Table:
    """Each entity's newest row stamped within [start, end], as Feast materializes."""
    columns = [group.join_key, group.timestamp_field] + [
        feature.name for view in group.views for feature in view.features]
    quoted = ", ".join(f'"{name}"' for name in dict.fromkeys(columns))
    query = (f"SELECT {quoted} FROM read_parquet({sql_literal(group.path)}) "
             f"WHERE \"{group.timestamp_field}\" <= $end "
             f"AND \"{group.timestamp_field}\" >= $start "
             f"QUALIFY ROW_NUMBER() OVER (PARTITION BY \"{group.join_key}\" "
             f"ORDER BY \"{group.timestamp_field}\" DESC) = 1")
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        parameters = {"start": start, "end": end}
        return connection.sql(query, params=parameters).to_arrow_table()
    finally:
        connection.close()


def _hash_rows(group: SourceGroup, table: pa.Table) -> Iterator[dict[bytes, bytes]]:
    """The hash fields and values of every row, in row order."""
    fields: list[bytes] = []
    encoded: list[list[bytes]] = []
    stamps = timestamp_bytes(table.column(group.timestamp_field))
    for view in group.views:
        for feature in view.features:
            fields.append(feature_hash(f"{view.name}:{feature.name}"))
            encoded.append(encode_column(table.column(feature.name).combine_chunks(),
                                         feature.dtype.to_value_type()))
        fields.append(f"_ts:{view.name}".encode())
        encoded.append(stamps)
    for values in zip(*encoded):
        yield dict(zip(fields, values))


def write_group(client: Any, group: SourceGroup, table: pa.Table, project: str,
                version: int, key_ttl_seconds: int | None) -> int:
    """HSET every row of one group (and the key TTL), pipelined in chunks; returns rows."""
    ids = table.column(group.join_key).to_pylist()
    keys = entity_keys(ids, group.join_key, project, version)
    rows = _hash_rows(group, table)
    for first in range(0, len(keys), WRITE_CHUNK_ROWS):
        with client.pipeline(transaction=False) as pipe:
            for key in keys[first:first + WRITE_CHUNK_ROWS]:
                pipe.hset(key, mapping=next(rows))
                if key_ttl_seconds:
                    pipe.expire(key, key_ttl_seconds)
            pipe.execute()
    return len(keys)


def materialize_batch_views(store: Any, client: Any, starts: dict[str, datetime],
                            end: datetime) -> dict[str, int]:
    """Write the batch views' newest rows to Redis and record the intervals in the registry.

    Args:
        store: the open `feast.FeatureStore`.
        client: a redis-py client on the store's Redis.
        starts: the window start of each view to write (views not named are skipped);
            views sharing a file are read once, from the earliest of their starts.
        end: the time materialized to.

    Returns:
        Rows written per feature view.
    """
    config = store.config
    written: dict[str, int] = {}
    for group in source_groups(store):
        group.views = [view for view in group.views if view.name in starts]
        if not group.views:
            continue
        table = newest_rows(group, min(starts[view.name] for view in group.views), end)
        count = write_group(client, group, table, config.project,
                            config.entity_key_serialization_version,
                            config.online_store.key_ttl_seconds)
        for view in group.views:
            store.registry.apply_materialization(view, config.project, starts[view.name], end,
                                                 commit=True)
            written[view.name] = count
        log.info("materialized %s: %d rows", ", ".join(v.name for v in group.views), count)
    return written
