"""The bulk Redis writer encodes values byte for byte as Feast's own materialization does.

Feast is imported inside the tests, not at collection: importing it sets
PROMETHEUS_MULTIPROC_DIR for the whole process, which would change how prometheus_client
metrics of modules imported later (the collector's) count.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

COLUMNS = {
    "DOUBLE": pa.array([1.5, 0.0, -2.25, None, float("nan")], type=pa.float64()),
    "INT64": pa.array([3, 0, -1, None, 3], type=pa.int64()),
    "BOOL": pa.array([True, False, None, True, True]),
    "STRING": pa.array(["mobile", "", None, "caf\u00e9", "mobile"]),
    "UNIX_TIMESTAMP": pa.array([1_767_225_600_123_456, None, 0, 1_767_225_600_999_999,
                                5_000_000], type=pa.timestamp("us", tz="UTC")),
    "STRING_LIST": pa.array([["books", "toys"], [], None, ["toys"], ["books", "toys"]],
                            type=pa.list_(pa.string())),
}


@pytest.mark.parametrize("type_name", list(COLUMNS))
def test_values_encode_as_feast_materialization_does(type_name: str) -> None:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    from tailor.features.redis_writer import encode_column

    column, value_type = COLUMNS[type_name], ValueType[type_name]
    ours = encode_column(column, value_type)
    theirs = [value.SerializeToString() for value in python_values_to_proto_values(
        column.to_numpy(zero_copy_only=False), value_type)]
    if value_type == ValueType.STRING_LIST:
        # The offline files never hold a null list; the writer stores it as an empty one.
        theirs[2] = Value(string_list_val={}).SerializeToString()
    assert ours == theirs


def test_row_timestamps_keep_microseconds() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from tailor.features.redis_writer import timestamp_bytes

    stamps = pa.array([1_767_225_600_123_456], type=pa.timestamp("us", tz="UTC"))
    decoded = Timestamp()
    decoded.ParseFromString(timestamp_bytes(stamps)[0])
    assert (decoded.seconds, decoded.nanos) == (1_767_225_600, 123_456_000)


def test_keys_are_feasts_entity_key_plus_project() -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from tailor.features.redis_writer import entity_keys

    expected = serialize_entity_key(
        EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val="c1")]),
        entity_key_serialization_version=3) + b"shop"
    assert entity_keys(["c1"], "customer_id", "shop", 3) == [expected]
