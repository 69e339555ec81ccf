"""The outbox: every message as one .eml file under `<home>/outbox/` until it is delivered.

Reads and writes, under `<home>/outbox/`:
  * `<stamp>-<id>.eml`: a message waiting (mode 0600, written to `.tmp-*` and renamed into
    place, so a reader never sees half a message), and `<stamp>-<id>.json` beside it: its
    attempts, the last error and when it is due again (absent: never tried, due now);
  * `sent/`: delivered messages, deleted after `mail.keep_sent_days`;
  * `failed/`: messages given up after `mail.max_attempts`, with their `.json`.
Whoever delivers a message holds an exclusive `flock` on its .eml for the whole attempt; a
new message is locked before it is renamed into place. So two processes flushing the same
outbox (the scheduler and a job that just sent an alert) never deliver a message twice, and
the lock dies with its process.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Iterator

TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600


@dataclass
class MessageState:
    """What the outbox knows about one waiting message besides its bytes."""

    subject: str
    created_at: str
    attempts: int = 0
    next_attempt_at: str = ""  # ISO time; empty: due now
    last_error: str = ""

    def due(self, now: datetime) -> bool:
        return not self.next_attempt_at or datetime.fromisoformat(self.next_attempt_at) <= now


class Outbox:
    """The folders of one home's outbox."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sent = root / "sent"
        self.failed = root / "failed"

    def add(self, raw: bytes, subject: str, now: datetime) -> tuple[Path, IO[bytes]]:
        """Write a new message; returns its path and an open handle holding its lock (close
        it to release)."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        temporary = self.root / f"{TMP_PREFIX}{name}.eml"
        handle = os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
            path = self.root / f"{name}.eml"
            os.replace(temporary, path)
            self.write_state(path, MessageState(subject=subject, created_at=now.isoformat()))
        except BaseException:
            handle.close()
            temporary.unlink(missing_ok=True)
            raise
        return path, handle

    def waiting(self) -> list[Path]:
        """Messages in the outbox, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(path for path in self.root.glob("*.eml")
                      if not path.name.startswith(TMP_PREFIX))

    @contextmanager
    def claim(self, path: Path) -> Iterator[bool]:
        """Hold `path`'s lock for the block; yields False when another process holds it or
        the message has already left the outbox."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield _still_there(path, handle)
        finally:
            handle.close()

    def read_state(self, path: Path) -> MessageState:
        state_path = path.with_suffix(".json")
        try:
            return MessageState(**json.loads(state_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return MessageState(subject="", created_at="")

    def write_state(self, path: Path, state: MessageState) -> None:
        _write_atomically(path.with_suffix(".json"), json.dumps(asdict(state), indent=1))

    def mark_sent(self, path: Path, keep: bool) -> Path | None:
        """Move a delivered message to `sent/` (or delete it); returns where it went."""
        path.with_suffix(".json").unlink(missing_ok=True)
        if not keep:
            path.unlink(missing_ok=True)
            return None
        self.sent.mkdir(exist_ok=True)
        target = self.sent / path.name
        os.replace(path, target)
        return target

    def give_up(self, path: Path) -> Path:
        """Move a message and its state to `failed/`."""
        self.failed.mkdir(exist_ok=True)
        state_path = path.with_suffix(".json")
        if state_path.exists():
            os.replace(state_path, self.failed / state_path.name)
        target = self.failed / path.name
        os.replace(path, target)
        return target

    def tidy(self, now: datetime, keep_sent: timedelta) -> int:
        """Delete sent messages older than `keep_sent`, half-written files left by a crash and
        states without a message; returns how many sent messages were deleted."""
        purged = 0
        if self.sent.is_dir():
            oldest = now.timestamp() - keep_sent.total_seconds()
            for path in self.sent.glob("*.eml"):
                if path.stat().st_mtime < oldest:
                    path.unlink(missing_ok=True)
                    purged += 1
        if self.root.is_dir():
            for path in self.root.glob(f"{TMP_PREFIX}*"):
                if time.time() - path.stat().st_mtime > STALE_TMP_SECONDS:
                    path.unlink(missing_ok=True)
            for state_path in self.root.glob("*.json"):
                if (not state_path.with_suffix(".eml").exists()
                        and time.time() - state_path.stat().st_mtime > STALE_TMP_SECONDS):
                    state_path.unlink(missing_ok=True)
        return purged


def _still_there(path: Path, handle: IO[bytes]) -> bool:
    """Whether the locked file is still the one at `path` (not moved on by another process
    between our open and our lock)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f"{TMP_PREFIX}{path.name}")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
