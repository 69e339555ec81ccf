"""The shared reload-when-changed helper: read once per version of the file, looked at no
more often than its interval, a missing file read as missing, a failed read retried."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tailor.watched_file import WatchedFile


def _counting_reader(reads: list[Path | None]):
    def read(path: Path | None) -> str | None:
        reads.append(path)
        return path.read_text() if path is not None else None
    return read


def _touch(path: Path, text: str, mtime_ns: int) -> None:
    """Write `text` and set the modification time (no waiting for the clock to move)."""
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_each_version_is_read_once_and_a_missing_file_reads_as_none(tmp_path: Path) -> None:
    path, reads = tmp_path / "secret", []
    watch = WatchedFile(path, _counting_reader(reads), "before", recheck_seconds=3600)
    assert watch.value == "before"
    assert watch.refresh() and watch.value is None and reads == [None]  # missing
    assert not watch.refresh() and reads == [None]  # still missing: not read again
    _touch(path, "one", 1_000_000_000)
    assert watch.refresh() and watch.value == "one"
    assert not watch.refresh() and len(reads) == 2  # unchanged
    _touch(path, "two", 2_000_000_000)
    assert watch.current() == "one"  # looked at within the interval: not yet
    assert watch.refresh() and watch.value == "two" and len(reads) == 3
    path.unlink()
    assert watch.refresh() and watch.value is None


def test_current_looks_again_once_the_interval_has_passed(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    _touch(path, "one", 1_000_000_000)
    watch = WatchedFile(path, _counting_reader([]), None, recheck_seconds=0.0)
    assert watch.current() == "one"
    _touch(path, "two", 2_000_000_000)
    assert watch.current() == "two"


def test_a_failed_read_keeps_the_value_and_is_tried_again(tmp_path: Path) -> None:
    path = tmp_path / "list"
    _touch(path, "good", 1_000_000_000)
    failing = {"now": False}

    def read(found: Path | None) -> str:
        if failing["now"]:
            raise ValueError("malformed")
        return found.read_text()

    watch = WatchedFile(path, read, "", recheck_seconds=3600)
    assert watch.refresh() and watch.value == "good"
    _touch(path, "bad", 2_000_000_000)
    failing["now"] = True
    with pytest.raises(ValueError, match="malformed"):
        watch.refresh()
    assert watch.value == "good"
    failing["now"] = False
    assert watch.refresh() and watch.value == "bad"  # the same version, read this time


def test_nothing_to_watch_keeps_the_initial_value() -> None:
    watch = WatchedFile(None, lambda path: "read", "initial", recheck_seconds=0.0)
    assert not watch.refresh() and watch.current() == "initial"
