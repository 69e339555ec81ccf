"""`ExclusionFollower` reads only what an opt-out appended, and the whole list whenever it was
rewritten or edited, always ending where a full read of the file ends.

Runs on a fresh home's list, changed through `tailor.privacy.opt_out` and by hand (an edit
in place, a half-written line, a file rewritten by another writer).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tailor.config import Settings, load_settings
from tailor.privacy.excluded_customers import (
    ensure_exclusions_file,
    excluded_customer_ids,
    exclusions_path,
)
from tailor.privacy.opt_out import opt_in, opt_out
from tailor.privacy.opt_out_follower import ExclusionFollower


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    settings = load_settings(home=tailor_home, env={})
    ensure_exclusions_file(settings)
    return settings


def test_an_append_is_read_from_where_the_last_read_ended(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    follower = ExclusionFollower(exclusions_path(settings))
    for number in range(50):
        opt_out(settings, f"c-{number}")
    assert len(follower.read()) == 50
    read_sizes: list[int] = []
    take = ExclusionFollower._take
    monkeypatch.setattr(ExclusionFollower, "_take",
                        lambda self, data, inode: (read_sizes.append(len(data)),
                                                   take(self, data, inode))[1])
    size_before = exclusions_path(settings).stat().st_size
    opt_out(settings, "c-new")
    assert follower.read() == {f"c-{number}" for number in range(50)} | {"c-new"}
    assert read_sizes == [exclusions_path(settings).stat().st_size - size_before]


def test_a_half_written_row_waits_for_its_end(settings: Settings) -> None:
    follower = ExclusionFollower(exclusions_path(settings))
    follower.read()
    with exclusions_path(settings).open("a", encoding="utf-8") as handle:
        handle.write("c-3,opted_o")
    assert follower.read() == frozenset()
    with exclusions_path(settings).open("a", encoding="utf-8") as handle:
        handle.write("ut,2026-01-01T00:00:00+00:00\n")
    assert follower.read() == {"c-3"} and follower.reasons["c-3"] == "opted_out"


def test_a_rewrite_or_an_edit_in_place_is_read_whole(settings: Settings) -> None:
    follower = ExclusionFollower(exclusions_path(settings))
    opt_out(settings, "c-4")
    opt_out(settings, "c-5")
    assert follower.read() == {"c-4", "c-5"}
    opt_in(settings, "c-4")  # rewritten: a new file
    assert follower.read() == {"c-5"}
    path = exclusions_path(settings)
    text = path.read_text(encoding="utf-8")
    with path.open("r+", encoding="utf-8") as handle:  # same file, same size, c-5 -> c-6
        handle.write(text.replace("c-5", "c-6"))
    assert follower.read() == {"c-6"}
    path.write_text(text.split("\n")[0] + "\n", encoding="utf-8")  # truncated in place
    assert follower.read() == frozenset()


def test_after_any_sequence_it_agrees_with_a_full_read(settings: Settings) -> None:
    follower = ExclusionFollower(exclusions_path(settings))
    chooser = random.Random(7)
    for _ in range(200):
        customer = f"c-{chooser.randrange(30)}"
        (opt_out if chooser.random() < 0.6 else opt_in)(settings, customer)
        if chooser.random() < 0.5:
            assert follower.read() == excluded_customer_ids(settings)
    assert follower.read() == excluded_customer_ids(settings)


def test_a_missing_file_is_empty_until_it_exists(tailor_home: Path) -> None:
    settings = load_settings(home=tailor_home, env={})
    follower = ExclusionFollower(exclusions_path(settings))
    assert follower.read() == frozenset()
    opt_out(settings, "c-9")
    assert follower.read() == {"c-9"}
