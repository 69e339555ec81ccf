"""Feast's private names that Tailor relies on still exist and still behave as Tailor assumes.

An upgrade that moves one fails here, naming it and the pinned version, instead of deep in a
Redis fast path at serving time.
"""

from __future__ import annotations

import importlib

import pytest

from tailor.features import feast_internals

PRIVATE_NAMES = [
    ("feast.infra.online_stores.helpers", "_mmh3"),
    ("feast.infra.online_stores.helpers", "_redis_key"),
    ("feast.infra.passthrough_provider", "PassthroughProvider.online_store"),
    ("feast.infra.online_stores.redis", "RedisOnlineStore._get_client"),
    ("feast.feature_store", "FeatureStore._get_provider"),
    ("feast.infra.online_stores.sqlite", "SqliteOnlineStore._get_db_path"),
]


@pytest.mark.parametrize(("module", "name"), PRIVATE_NAMES)
def test_private_name_still_exists(module: str, name: str) -> None:
    found = importlib.import_module(module)
    for part in name.split("."):
        assert hasattr(found, part), (
            f"{module}.{name} is gone: Feast moved it after {feast_internals.PINNED_FEAST}; "
            "update tailor/features/feast_internals.py")
        found = getattr(found, part)


def test_feature_hash_and_redis_key_keep_their_shape() -> None:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    digest = feast_internals.feature_hash("customer_activity:orders_lifetime")
    assert isinstance(digest, bytes) and len(digest) == 4
    assert digest == feast_internals.feature_hash("customer_activity:orders_lifetime")
    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val="c1")])
    encoded = feast_internals.redis_key("tailor", key, 3)
    assert encoded.endswith(b"tailor") and b"c1" in encoded
