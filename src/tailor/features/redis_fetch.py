"""The fast online read path: Feast's materialized Redis hashes read with one HMGET each.

Reads what Feast's Redis online store wrote (materialization and pushes) with Feast's
own key and field encoding: the key is the serialized entity key plus the project name,
the fields are murmur3 hashes of `<view>:<feature>` plus `_ts:<view>`, the values are
Feast `Value` protobufs decoded by Feast's own converter. The request-time features
are computed by the same functions the Feast on-demand views run. So this path serves
exactly what `FeatureStore.get_online_features` serves, without its per-call planning
overhead; the parity tests compare the two. Writes nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.protos.feast.types.Value_pb2 import ValueType as ProtoValueType
from feast.type_map import NULL_TIMESTAMP_INT_VALUE, feast_value_type_to_python_type
from google.protobuf.timestamp_pb2 import Timestamp

from tailor.features import specs as catalogue
from tailor.features.feast_internals import feature_hash, redis_key
from tailor.features.online import VIEW_SECONDS
from tailor.features.request_time import customer_recency_features, request_context_features

_DOUBLE_TAG = 0x29  # Value.double_val: field 5, wire type 1 (64-bit)
_KEY_VALUE_HEADER = struct.Struct("<II").pack  # value type, byte length (entity key v3)
_STRING_TYPE = ProtoValueType.STRING  # the entity key's type code
_unpack_double = struct.Struct("<d").unpack_from
_PLAIN_KINDS = frozenset({"double_val", "int64_val", "string_val", "bool_val", "float_val",
                          "int32_val"})
# The on-demand views this path can compute, by the function their Feast UDF calls.
ON_DEMAND_FUNCTIONS: dict[str, Callable[[dict[str, Sequence[Any]]], dict[str, list[Any]]]] = {
    catalogue.CUSTOMER_RECENCY: customer_recency_features,
    catalogue.REQUEST_CONTEXT: request_context_features,
}


class FastPathUnsupported(ValueError):
    """The service uses something this path cannot compute; use the Feast SDK instead."""


@dataclass(frozen=True)
class HashField:
    """One feature's place in the entity's Redis hash and how to decode it."""

    view: str
    feature: str
    field: bytes
    value_type: Any  # feast.ValueType


def decode_value(raw: bytes, value_type: Any, proto: Value | None = None) -> Any:
    """A stored Feast Value as Python, the same as Feast's own converter returns.

    The kinds Tailor stores are decoded inline (Feast's generic converter costs several
    microseconds per value, which adds up over 100 entities x 70 features); any other
    kind goes through Feast's converter. Pass `proto` to parse into a reused message.
    """
    proto = proto if proto is not None else Value()
    proto.ParseFromString(raw)
    kind = proto.WhichOneof("val")
    if kind is None:
        return None
    if kind in _PLAIN_KINDS:
        return getattr(proto, kind)
    if kind == "unix_timestamp_val":
        seconds = proto.unix_timestamp_val
        if seconds == NULL_TIMESTAMP_INT_VALUE:
            return None
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    if kind == "string_list_val":
        return list(proto.string_list_val.val)
    return feast_value_type_to_python_type(proto, value_type)


def decode_stored(raw: bytes | None, value_type: Any, proto: Value) -> Any:
    """`decode_value` of a stored value (None: nothing stored), doubles without parsing a
    message (tag byte, 8 little-endian bytes); `proto` is a message to parse into, reused."""
    if not raw:
        return None
    if raw[0] == _DOUBLE_TAG and len(raw) == 9:
        return _unpack_double(raw, 1)[0]
    proto.ParseFromString(raw)
    kind = proto.WhichOneof("val")
    return getattr(proto, kind) if kind in _PLAIN_KINDS else decode_value(raw, value_type)


def _view_fields(store: Any, view_name: str, feature_names: Sequence[str]) -> list[HashField]:
    view = store.get_feature_view(view_name)
    types = {field.name: field.dtype.to_value_type() for field in view.features}
    return [HashField(view_name, name, feature_hash(f"{view_name}:{name}"), types[name])
            for name in feature_names]


def plan_fields(store: Any, features_by_view: dict[str, list[str]],
                on_demand_views: set[str]) -> tuple[list[HashField], list[str]]:
    """The hash fields to read (service features plus on-demand inputs) and the views.

    Raises:
        FastPathUnsupported: an on-demand view of the service has no known function.
    """
    wanted: dict[str, list[str]] = {}
    for view, names in features_by_view.items():
        if view in on_demand_views:
            if view not in ON_DEMAND_FUNCTIONS:
                raise FastPathUnsupported(f"on-demand view {view} has no fast-path function")
            odfv = store.get_on_demand_feature_view(view)
            for source, projection in odfv.source_feature_view_projections.items():
                wanted.setdefault(source, []).extend(f.name for f in projection.features)
        else:
            wanted.setdefault(view, []).extend(names)
    fields: list[HashField] = []
    for view, names in wanted.items():
        fields.extend(_view_fields(store, view, list(dict.fromkeys(names))))
    return fields, list(wanted)


class RedisFeatureFetcher:
    """Reads a service's rows straight from Feast's Redis hashes.

    Args:
        store: the open `feast.FeatureStore` (its config names the project and the
            entity key serialization version).
        client: a `redis.Redis` connected to the same database Feast writes.
        join_key: customer_id or product_id.
        features_by_view: the service's features per (on-demand) view.
        on_demand_views: which of those views are on-demand.
    """

    def __init__(self, store: Any, client: Any, join_key: str,
                 features_by_view: dict[str, list[str]], on_demand_views: set[str]) -> None:
        self.client = client
        self.join_key = join_key
        self.project = store.config.project
        self.key_version = store.config.entity_key_serialization_version
        self.fields, views = plan_fields(store, features_by_view, on_demand_views)
        self.timestamp_fields = [f"_ts:{view}".encode() for view in views]
        self.views = views
        self.hash_fields = [item.field for item in self.fields] + self.timestamp_fields
        self.on_demand = {view: features_by_view[view] for view in features_by_view
                          if view in on_demand_views}
        self.on_demand_inputs = on_demand_inputs(store, self.on_demand)
        self._slots = [(item.feature, item.value_type) for item in self.fields]
        self._head, self._tail = self._key_parts()

    def feast_redis_key(self, entity_id: str) -> bytes:
        """The Redis key of one entity, computed by Feast's own function."""
        entity_key = EntityKey(join_keys=[self.join_key],
                               entity_values=[Value(string_val=entity_id)])
        return redis_key(self.project, entity_key, self.key_version)

    def _key_parts(self) -> tuple[bytes, bytes]:
        """The constant head (the join key's part) and tail (the project) of every key.

        Feast's key is head + <value type, length> + the id's bytes + project name. The
        parts are taken from Feast's encoding of an empty id, and checked on a real one.
        """
        empty = self.feast_redis_key("")
        tail = self.project.encode("utf-8")
        head = empty[:len(empty) - len(tail) - 8]
        probe = "c\u00e9-42"
        if self._compose(head, tail, probe) != self.feast_redis_key(probe):
            raise FastPathUnsupported("Feast's entity key encoding changed")
        return head, tail

    @staticmethod
    def _compose(head: bytes, tail: bytes, entity_id: str) -> bytes:
        encoded = entity_id.encode("utf-8")
        return b"".join((head, _KEY_VALUE_HEADER(_STRING_TYPE, len(encoded)), encoded, tail))

    def redis_key(self, entity_id: str) -> bytes:
        """The Redis key Feast uses for one entity in this project (fast composition)."""
        return self._compose(self._head, self._tail, entity_id)

    def fetch(self, entity_ids: Sequence[str], request_time: datetime) -> list[dict[str, Any]]:
        """Rows with each feature, and under VIEW_SECONDS each view's row time in seconds
        (0: no row), the same information as the `<feature>__ts` of Feast's `to_dict`."""
        keys = [self.redis_key(str(entity_id)) for entity_id in entity_ids]
        if len(keys) == 1:
            replies = [self.client.hmget(keys[0], self.hash_fields)]
        else:
            with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, self.hash_fields)
                replies = pipe.execute()
        rows = [self._decode(reply) for reply in replies]
        self._add_on_demand(rows, request_time)
        return rows

    def _decode(self, reply: Sequence[bytes | None]) -> dict[str, Any]:
        """One entity's HMGET reply as a row (None and timestamp 0 where nothing is stored)."""
        seconds = {}
        stamp = Timestamp()
        for view, raw in zip(self.views, reply[len(self.fields):]):
            stamp.Clear()
            if raw:
                stamp.ParseFromString(raw)
            seconds[view] = stamp.seconds
        row: dict[str, Any] = {VIEW_SECONDS: seconds}
        proto = Value()
        parse, which = proto.ParseFromString, proto.WhichOneof
        # This loop runs once per feature per entity: the common kinds are decoded inline,
        # doubles (tag byte, 8 little-endian bytes) without parsing a message at all.
        for (feature, value_type), raw in zip(self._slots, reply):
            if not raw:
                row[feature] = None
            elif raw[0] == _DOUBLE_TAG and len(raw) == 9:
                row[feature] = _unpack_double(raw, 1)[0]
            else:
                parse(raw)
                kind = which("val")
                row[feature] = (getattr(proto, kind) if kind in _PLAIN_KINDS
                                else decode_value(raw, value_type))
        return row

    def _add_on_demand(self, rows: list[dict[str, Any]], request_time: datetime) -> None:
        add_on_demand(rows, self.on_demand, self.on_demand_inputs, request_time)


def on_demand_inputs(store: Any, on_demand: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per on-demand view, the stored features its function reads."""
    return {view: [feature.name for projection in
                   store.get_on_demand_feature_view(view).source_feature_view_projections.values()
                   for feature in projection.features]
            for view in on_demand}


def add_on_demand(rows: list[dict[str, Any]], on_demand: dict[str, list[str]],
                  inputs_by_view: dict[str, list[str]], request_time: datetime) -> None:
    """Compute the on-demand features of every row (in place) with the functions the Feast
    UDFs call (`ON_DEMAND_FUNCTIONS`).

    Args:
        rows: stored features per entity.
        on_demand: per on-demand view, the features the service wants of it.
        inputs_by_view: per on-demand view, the stored features it reads.
        request_time: the request's time (the UDFs' `request_time` input).
    """
    if not rows:
        return
    for view, names in on_demand.items():
        inputs: dict[str, Sequence[Any]] = {
            key: [row[key] for row in rows] for key in inputs_by_view[view]}
        inputs["request_time"] = [request_time] * len(rows)
        outputs = ON_DEMAND_FUNCTIONS[view](inputs)
        for index, row in enumerate(rows):
            for name in names:
                row[name] = outputs[name][index]
