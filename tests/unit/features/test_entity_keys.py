"""The hand-written entity key equals Feast's own serialization (a Feast upgrade that changes
it fails here, not in a forget that leaves a customer's online features behind)."""

from __future__ import annotations

import pytest

from tailor.features.entity_keys import ENTITY_KEY_VERSION, redis_entity_key, serialized_string_key


@pytest.mark.parametrize("value", ["c000237", "", "cé-42 ✓", "x" * 300])
def test_the_key_is_feasts(value: str) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=value)])
    assert serialized_string_key("customer_id", value) == serialize_entity_key(
        key, entity_key_serialization_version=ENTITY_KEY_VERSION)
    assert redis_entity_key("customer_id", value, "shop") == _redis_key("shop", key,
                                                                        ENTITY_KEY_VERSION)


def test_the_rendered_repo_names_the_same_version(tmp_path) -> None:
    from tailor.config import load_settings
    from tailor.features.repo import repo_config_dict

    settings = load_settings(home=tmp_path, env={})
    assert repo_config_dict(settings)["entity_key_serialization_version"] == ENTITY_KEY_VERSION


def test_forget_looks_for_the_sqlite_online_store_where_feast_keeps_it(tmp_path) -> None:
    from tailor.config import load_settings
    from tailor.features.repo import online_store_path
    from tailor.privacy.forget_stores import ONLINE_STORE_FILE

    settings = load_settings(home=tmp_path, env={})
    assert online_store_path(settings) == settings.home_path.resolve() / ONLINE_STORE_FILE
