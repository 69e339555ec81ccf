"""Serving's exclusion check sees a forgotten customer (a tombstone, no id in any list) within
its recheck interval, and an unreadable tombstone key does not stop serving."""

from __future__ import annotations

from tailor.config import load_settings
from tailor.events.tombstones import add_tombstone, load_tombstone_key, tombstone_of
from tailor.serving.exclusions import ExclusionList


def test_a_tombstoned_customer_is_excluded_without_being_listed(tmp_path) -> None:
    settings = load_settings(home=tmp_path, env={})
    exclusions = ExclusionList(settings, recheck_seconds=0)
    assert "c42" not in exclusions
    add_tombstone(tmp_path, tombstone_of(load_tombstone_key(tmp_path), "c42"))
    assert "c42" in exclusions and "c43" not in exclusions
    assert "c42" not in (tmp_path / "privacy" / "excluded_customers.csv").read_text()


def test_a_broken_key_is_an_error_message_not_a_failed_request(tmp_path) -> None:
    settings = load_settings(home=tmp_path, env={})
    add_tombstone(tmp_path, "0" * 64)
    (tmp_path / "tombstone.key").write_text("short\n")
    exclusions = ExclusionList(settings, recheck_seconds=0)
    assert "c42" not in exclusions
    assert "tombstone" in (exclusions.last_error or "")
