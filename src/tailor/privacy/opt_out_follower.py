"""The exclusion list followed by a long-running process: its ids kept current by reading
only the rows appended since the last read (an opt-out appends one), or the whole file when
it was rewritten (an opt-in, a deletion) or edited.

Reads `<home>/privacy/excluded_customers.csv` (the format of
`tailor.privacy.excluded_customers`); writes nothing. Serving's `ExclusionList` and the
collector's `OptOutList` call `read()` whenever the file's modification time moved.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tailor.privacy.excluded_customers import EXCLUSION_COLUMNS, EXCLUSION_REASONS

if TYPE_CHECKING:
    from tailor.config import Settings
    from tailor.watched_file import WatchedFile

log = logging.getLogger(__name__)

_TAIL_BYTES = 64  # what must be unchanged before the last offset for a read of the rest


class ExclusionFollower:
    """The ids on the exclusion list (any reason excludes), read incrementally.

    `read()` reads only the complete rows appended since the last read when the file is the
    same one (inode) and grew, and the bytes just before the last offset are unchanged;
    otherwise it reads the whole file. A half-written last line waits for the next read.
    A row with an unknown reason still excludes its customer, with a warning naming the line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reasons: dict[str, str] = {}
        self._inode: tuple[int, int] | None = None
        self._offset = 0
        self._tail = b""
        self._columns = (0, 1)
        self._line = 1

    def read(self) -> frozenset[str]:
        """The excluded ids now (empty while the file is missing)."""
        try:
            with self.path.open("rb") as handle:
                status = os.fstat(handle.fileno())
                inode = (status.st_dev, status.st_ino)
                if not self._continues(handle, inode, status.st_size):
                    self.reasons, self._offset, self._tail, self._line = {}, 0, b"", 0
                handle.seek(self._offset)
                self._take(handle.read(), inode)
        except FileNotFoundError:
            self.reasons, self._inode, self._offset = {}, None, 0
        return frozenset(self.reasons)

    def _continues(self, handle: io.BufferedReader, inode: tuple[int, int], size: int) -> bool:
        """Whether the file is the one read before, only longer (or as long)."""
        if inode != self._inode or size < self._offset or self._offset == 0:
            return False
        start = self._offset - len(self._tail)
        handle.seek(start)
        return handle.read(len(self._tail)) == self._tail

    def _take(self, data: bytes, inode: tuple[int, int]) -> None:
        """Add the complete rows of `data` (read from `self._offset`) to the reasons."""
        end = data.rfind(b"\n") + 1
        if end == 0:
            return
        rows = csv.reader(io.StringIO(data[:end].decode("utf-8", "replace")))
        if self._offset == 0:
            header = [name.strip() for name in next(rows, list(EXCLUSION_COLUMNS))]
            self._columns = (_position(header, "customer_id", 0), _position(header, "reason", 1))
            self._line = 1
        id_at, reason_at = self._columns
        for row in rows:
            self._line += 1
            customer_id = row[id_at].strip() if len(row) > id_at else ""
            if not customer_id:
                continue
            reason = row[reason_at].strip() if len(row) > reason_at else ""
            self.reasons[customer_id] = reason
            if reason not in EXCLUSION_REASONS:
                log.warning("%s line %d: reason %r is not one of %s; excluded anyway",
                            self.path, self._line, reason, sorted(EXCLUSION_REASONS))
        self._offset += end
        consumed = data[:end]
        self._tail = consumed[-_TAIL_BYTES:] if len(consumed) >= _TAIL_BYTES else \
            (self._tail + consumed)[-_TAIL_BYTES:]
        self._inode = inode


def _position(header: list[str], name: str, default: int) -> int:
    return header.index(name) if name in header else default


def watched_exclusions(settings: "Settings",
                       recheck_seconds: float) -> "WatchedFile[frozenset[str]]":
    """The exclusion list's ids for a long-running process, looked at every `recheck_seconds`
    and read incrementally (the file is created, header only, when missing)."""
    from tailor.privacy.excluded_customers import ensure_exclusions_file, exclusions_path
    from tailor.watched_file import WatchedFile

    follower = ExclusionFollower(exclusions_path(settings))

    def read(_path: Path | None) -> frozenset[str]:
        ensure_exclusions_file(settings)
        return follower.read()

    return WatchedFile(exclusions_path(settings), read, frozenset(), recheck_seconds)
