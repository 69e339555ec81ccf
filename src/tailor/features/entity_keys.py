"""Feast's serialized entity key of one string id, without importing Feast (seconds to load).

Reads and writes nothing. `tailor forget` deletes a customer's online features by key, and
needs only this key: `serialized_string_key` writes what Feast's `serialize_entity_key`
writes for one string join key at `ENTITY_KEY_VERSION` (the version the rendered
feature_store.yaml names). `tests/unit/features/test_entity_keys.py` pins it to Feast's own
function, so a Feast upgrade that changes the encoding fails there.
"""

from __future__ import annotations

import struct

ENTITY_KEY_VERSION = 3  # entity_key_serialization_version in feature_store.yaml
_STRING_TYPE = 2  # Feast's ValueType.STRING


def _length_prefixed(text: str) -> bytes:
    encoded = text.encode("utf-8")
    return struct.pack("<II", _STRING_TYPE, len(encoded)) + encoded


def serialized_string_key(join_key: str, value: str) -> bytes:
    """The entity key Feast stores for `join_key` = `value` (SQLite online store rows)."""
    return struct.pack("<I", 1) + _length_prefixed(join_key) + _length_prefixed(value)


def redis_entity_key(join_key: str, value: str, project: str) -> bytes:
    """The Redis key of one entity in Feast's Redis online store: entity key + project."""
    return serialized_string_key(join_key, value) + project.encode("utf-8")
