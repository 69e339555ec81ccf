"""The bulk Redis writer encodes values byte for byte as Feast's own materialization does."""

from __future__ import annotations

import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from tailor.features.redis_writer import encode_column, entity_keys, timestamp_bytes

COLUMNS = [
    (pa.array([1.5, 0.0, -2.25, None, float("nan")], type=pa.float64()), ValueType.DOUBLE),
    (pa.array([3, 0, -1, None, 3], type=pa.int64()), ValueType.INT64),
    (pa.array([True, False, None, True, True]), ValueType.BOOL),
    (pa.array(["mobile", "", None, "caf\u00e9", "mobile"]), ValueType.STRING),
    (pa.array([1_767_225_600_123_456, None, 0, 1_767_225_600_999_999, 5_000_000],
              type=pa.timestamp("us", tz="UTC")), ValueType.UNIX_TIMESTAMP),
    (pa.array([["books", "toys"], [], None, ["toys"], ["books", "toys"]],
              type=pa.list_(pa.string())), ValueType.STRING_LIST),
]


@pytest.mark.parametrize(("column", "value_type"), COLUMNS,
                         ids=[value_type.name for _, value_type in COLUMNS])
def test_values_encode_as_feast_materialization_does(column: pa.Array,
                                                     value_type: ValueType) -> None:
    ours = encode_column(column, value_type)
    theirs = [value.SerializeToString() for value in python_values_to_proto_values(
        column.to_numpy(zero_copy_only=False), value_type)]
    if value_type == ValueType.STRING_LIST:
        # Feast turns a null list into an empty one, as the offline files never hold nulls.
        theirs[2] = Value(string_list_val={}).SerializeToString()
    assert ours == theirs


def test_row_timestamps_keep_microseconds() -> None:
    stamps = pa.array([1_767_225_600_123_456], type=pa.timestamp("us", tz="UTC"))
    decoded = Timestamp()
    decoded.ParseFromString(timestamp_bytes(stamps)[0])
    assert (decoded.seconds, decoded.nanos) == (1_767_225_600, 123_456_000)


def test_keys_are_feasts_entity_key_plus_project() -> None:
    expected = serialize_entity_key(
        EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val="c1")]),
        entity_key_serialization_version=3) + b"shop"
    assert entity_keys(["c1"], "customer_id", "shop", 3) == [expected]
