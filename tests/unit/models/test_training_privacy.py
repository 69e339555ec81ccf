"""The privacy hook: a real (empty) exclusion list that deleted and opted-out customers join."""

import logging
from pathlib import Path

import pytest

from tailor.config import load_settings
from tailor.privacy.excluded_customers import (
    EXCLUSION_COLUMNS, excluded_customer_ids, exclusions_path,
)


def test_the_list_exists_empty_until_the_privacy_jobs_fill_it(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={})
    assert excluded_customer_ids(settings) == frozenset()
    path = exclusions_path(settings)
    assert path.read_text().strip() == ",".join(EXCLUSION_COLUMNS)


def test_deleted_and_opted_out_customers_are_excluded(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(home=tmp_path, env={})
    excluded_customer_ids(settings)
    with exclusions_path(settings).open("a") as handle:
        handle.write("c1,deleted,2026-03-01T00:00:00Z\nc2,opted_out,2026-03-02T00:00:00Z\n"
                     "c3,typo,2026-03-03T00:00:00Z\n,deleted,2026-03-03T00:00:00Z\n")
    with caplog.at_level(logging.WARNING):
        assert excluded_customer_ids(settings) == frozenset({"c1", "c2", "c3"})
    assert "line 4" in caplog.text and "'typo'" in caplog.text
