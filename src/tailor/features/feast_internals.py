"""The Feast names Tailor uses that Feast does not publish, in one place (Feast 0.67).

Reads and writes nothing. The Redis fast paths (`redis_fetch`, `redis_writer`) hash feature
names and build entity keys exactly as Feast's Redis online store does, and the serving
retry policy reaches the Redis client inside Feast's online store; Feast keeps each of these
behind a private name. When an upgrade moves one, `tests/unit/features/test_feast_internals.py`
fails naming it, and this module is the only one to change.
"""

from __future__ import annotations

from typing import Any

PINNED_FEAST = "0.67"


def feature_hash(text: str) -> bytes:
    """Feast's murmur3 hash of `<view>:<feature>`: the field name in a Redis hash."""
    from feast.infra.online_stores.helpers import _mmh3

    return _mmh3(text)


def redis_key(project: str, entity_key: Any, key_version: int) -> bytes:
    """The Redis key Feast's online store uses for one entity key of a project."""
    from feast.infra.online_stores.helpers import _redis_key

    return _redis_key(project, entity_key, key_version)


def sqlite_online_path(store: Any) -> str:
    """The file of a FeatureStore's SQLite online store (its path, relative to the repo)."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    return SqliteOnlineStore._get_db_path(store.config)


def online_table_name(store: Any, view: Any) -> str:
    """The SQLite online store's table of a feature view."""
    from feast.infra.online_stores.helpers import compute_table_id

    return compute_table_id(store.config.project, view,
                            store.config.registry.enable_online_feature_view_versioning)


def online_store_redis_client(store: Any) -> Any:
    """The Redis client inside a FeatureStore's Redis online store."""
    online_store = store._get_provider().online_store
    return online_store._get_client(store.config.online_store)
