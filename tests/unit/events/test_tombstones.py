"""Tombstones: keyed hashes of forgotten ids, the key from the environment or a 0600 file, and
the set long-running readers keep."""

from __future__ import annotations

import math
import stat

import pytest

from tailor.errors import InputError
from tailor.events.tombstones import (
    KEY_ENV, MAX_ID_CHARACTERS, TombstoneSet, add_tombstone, forget_id_problem,
    load_tombstone_key, read_tombstones, tombstone_of, tombstones_path,
)

KEY = b"k" * 40


def test_the_key_comes_from_the_environment_first(tmp_path) -> None:
    assert load_tombstone_key(tmp_path, env={KEY_ENV: "x" * 32}) == b"x" * 32
    assert not (tmp_path / "tombstone.key").exists()


def test_without_the_variable_a_private_key_file_is_made_once(tmp_path) -> None:
    first = load_tombstone_key(tmp_path, env={})
    assert load_tombstone_key(tmp_path, env={}) == first and len(first) >= 32
    assert stat.S_IMODE((tmp_path / "tombstone.key").stat().st_mode) == 0o600


def test_a_short_key_is_refused_naming_its_source(tmp_path) -> None:
    with pytest.raises(InputError, match=KEY_ENV):
        load_tombstone_key(tmp_path, env={KEY_ENV: "short"})


def test_a_tombstone_is_a_keyed_hash_that_names_nobody(tmp_path) -> None:
    stone = tombstone_of(KEY, "c000042")
    assert stone == tombstone_of(KEY, "c000042") != tombstone_of(b"o" * 40, "c000042")
    assert "c000042" not in stone and len(stone) == 64
    assert add_tombstone(tmp_path, stone) is True
    assert add_tombstone(tmp_path, stone) is False  # idempotent
    assert read_tombstones(tombstones_path(tmp_path)) == {stone}
    assert "c000042" not in tombstones_path(tmp_path).read_text()


def test_the_set_sees_a_new_tombstone_and_skips_missing_ids(tmp_path) -> None:
    stones = TombstoneSet(tmp_path, key=KEY, recheck_seconds=0)
    assert not stones.contains("c1")
    add_tombstone(tmp_path, tombstone_of(KEY, "c1"))
    assert stones.contains("c1") and not stones.contains("c2")
    assert stones.forgotten_mask(["c1", None, math.nan, "c2", "c1", 7]) == \
        [True, False, False, False, True, False]
    assert stones.forgotten_among(["c1", "c2"]) == {"c1"}


def test_a_reader_never_makes_a_key_that_would_not_match_the_tombstones(tmp_path) -> None:
    add_tombstone(tmp_path, tombstone_of(KEY, "c1"))
    with pytest.raises(InputError, match="no tombstone key"):
        TombstoneSet(tmp_path, recheck_seconds=0).contains("c1")
    assert not (tmp_path / "tombstone.key").exists()


def test_every_id_the_contract_stores_can_be_forgotten_and_only_unstorable_ones_are_refused(
        ) -> None:
    from tailor.events.schema import MAX_STRING_LENGTH

    assert MAX_ID_CHARACTERS == MAX_STRING_LENGTH
    # Control characters other than NUL pass the event contract, so they must pass here.
    for storable in ("c1", " c1 ", "c\x01odd\tid\x1b[31m", "x" * MAX_STRING_LENGTH,
                     "'; DROP TABLE events; --", "a/b", "\x7f"):
        assert forget_id_problem(storable) is None, repr(storable)
    for unstorable, problem in (("", "empty"), (" \t ", "empty"),
                                ("x" * (MAX_STRING_LENGTH + 1), "longer than 512"),
                                ("a\x00b", "NUL"), ("a\ud800", "not valid Unicode")):
        found = forget_id_problem(unstorable)
        assert found is not None and found.startswith("customer_id: ") and problem in found
