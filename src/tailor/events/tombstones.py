"""Tombstones: the forgotten customers, kept as keyed hashes so that nothing can bring them back.

Reads and writes `<home>/privacy/tombstones.csv` (columns `tombstone`, `recorded_at`): one
row per forgotten customer, `tombstone` = HMAC-SHA256 of the customer id under the tombstone
key, in hex. The key comes from `TAILOR_TOMBSTONE_KEY` (any text of 32 characters or more),
else from the key file `<home>/tombstone.key` (created with mode 0600 on first use). The file
never holds an id: without the key a tombstone cannot be tested against a guess, and with it
only against one id at a time.

Who reads it: file import (`tailor.events.ingest`) and the collector skip events and customer
rows of a tombstoned id before anything is stored; serving treats the id as excluded
(`tailor.serving.exclusions`); training drops the id's rows (`tailor.models.data`).
`tailor forget` (`tailor.privacy.forget`) writes it. A long-running process keeps a
`TombstoneSet` that re-reads the file when it changes (`tailor.watched_file`).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from tailor.errors import InputError
from tailor.watched_file import WatchedFile

KEY_ENV = "TAILOR_TOMBSTONE_KEY"
KEY_FILE_NAME = "tombstone.key"
TOMBSTONES_FILE = "privacy/tombstones.csv"  # under the home
TOMBSTONE_COLUMNS: tuple[str, ...] = ("tombstone", "recorded_at")
MIN_KEY_CHARACTERS = 32
RECHECK_SECONDS = 2.0  # how often a long-running reader looks at the file
MAX_ID_CHARACTERS = 512  # the contract's longest id (tailor.events.schema.MAX_STRING_LENGTH)


def tombstones_path(home: Path) -> Path:
    """Where the tombstones of a home live."""
    return Path(home).expanduser() / TOMBSTONES_FILE


def load_tombstone_key(home: Path, env: Mapping[str, str] | None = None, *,
                       create: bool = True) -> bytes:
    """The HMAC key: `TAILOR_TOMBSTONE_KEY`, else `<home>/tombstone.key` (created if absent
    and `create`: only the writer, `tailor forget`, makes one).

    Raises:
        InputError: the key is shorter than 32 characters (the message names its source), or
            there is none and `create` is off (a reader that finds tombstones but no key
            must not make a new one: the tombstones would stop matching, silently).
    """
    env = os.environ if env is None else env
    if env.get(KEY_ENV):
        return _checked_key(env[KEY_ENV].strip(), KEY_ENV)
    path = Path(home).expanduser() / KEY_FILE_NAME
    if not path.exists() and not create:
        raise InputError(f"{path}: no tombstone key, but tombstones exist; restore the key "
                         f"file or set {KEY_ENV} (a new key would not recognise them)")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    return _checked_key(path.read_text(encoding="utf-8").strip(), str(path))


def _checked_key(text: str, source: str) -> bytes:
    if len(text) < MIN_KEY_CHARACTERS:
        raise InputError(f"{source}: the tombstone key must be at least {MIN_KEY_CHARACTERS} "
                         "characters (e.g. `python -c 'import secrets; "
                         "print(secrets.token_hex(32))'`)")
    return text.encode("utf-8")


def forget_id_problem(customer_id: str) -> str | None:
    """Why an id cannot be forgotten (None: it can), naming `customer_id`.

    Only what no store can hold is refused (blank, longer than the contract allows, a NUL,
    text that is not Unicode): every id the event contract stores, control characters such
    as a tab or an escape included, must be forgettable. `tailor forget` and
    `DELETE /v1/customers/{id}` both apply this rule to the id stripped of surrounding spaces.
    """
    text = customer_id.strip()
    if not text:
        return "customer_id: empty; name the customer to forget"
    if len(text) > MAX_ID_CHARACTERS:
        return f"customer_id: longer than {MAX_ID_CHARACTERS} characters"
    if "\x00" in text:
        return "customer_id: holds a NUL character (no store can hold one)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "customer_id: is not valid Unicode (a lone surrogate)"
    return None


def checked_customer_id(customer_id: object, field: str = "customer_id") -> str:
    """The id, stripped, when every store can hold it (`forget_id_problem`); the one rule of
    `tailor forget`, `tailor opt-out` / `opt-in` and their HTTP routes.

    Raises:
        InputError: naming `field` and what is wrong.
    """
    if not isinstance(customer_id, str):
        raise InputError(f"{field}: expected a string, got {type(customer_id).__name__}")
    problem = forget_id_problem(customer_id)
    if problem:
        raise InputError(problem.replace("customer_id", field, 1))
    return customer_id.strip()


def tombstone_of(key: bytes, customer_id: str) -> str:
    """The tombstone of one customer id: HMAC-SHA256 under `key`, hex."""
    return hmac.new(key, str(customer_id).encode("utf-8"), hashlib.sha256).hexdigest()


def read_tombstones(path: Path | None) -> frozenset[str]:
    """The tombstones a file holds (empty when it does not exist)."""
    if path is None or not path.exists():
        return frozenset()
    with path.open(newline="", encoding="utf-8") as handle:
        return frozenset(row["tombstone"].strip() for row in csv.DictReader(handle)
                         if (row.get("tombstone") or "").strip())


def add_tombstone(home: Path, tombstone: str) -> bool:
    """Append a tombstone to the home's file (created with its header); False when it was
    there already. Appending keeps readers safe: they see the old rows or one more."""
    path = tombstones_path(home)
    if tombstone in read_tombstones(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(TOMBSTONE_COLUMNS)
        writer.writerow((tombstone, datetime.now(timezone.utc).isoformat(timespec="seconds")))
        handle.flush()
        os.fsync(handle.fileno())
    return True


class TombstoneSet:
    """The tombstones of a home, kept current, with the key that tests an id against them.

    `contains(customer_id)` costs one HMAC when any tombstone exists and nothing when none
    does (the common case)."""

    def __init__(self, home: Path, key: bytes | None = None,
                 recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.home = Path(home).expanduser()
        self._key = key
        self.watch: WatchedFile[frozenset[str]] = WatchedFile(
            tombstones_path(self.home), read_tombstones, frozenset(), recheck_seconds)
        self.watch.refresh(force=True)

    @classmethod
    def for_settings(cls, settings: Any) -> "TombstoneSet":
        """The set of the settings' home."""
        return cls(settings.home_path)

    @property
    def key(self) -> bytes:
        if self._key is None:  # read only once something is tombstoned; never made here
            self._key = load_tombstone_key(self.home, create=False)
        return self._key

    def current(self) -> frozenset[str]:
        """The tombstones, the file re-read when it changed (at most every recheck)."""
        return self.watch.current()

    def contains(self, customer_id: Any) -> bool:
        """Whether `customer_id` was forgotten."""
        stones = self.current()
        text = _id_text(customer_id)
        return bool(stones) and text is not None and tombstone_of(self.key, text) in stones

    def forgotten_among(self, customer_ids: Iterable[Any]) -> set[str]:
        """The forgotten ones among some ids (pass distinct ids: one hash each)."""
        ids = list(customer_ids)
        return {str(value) for value, gone in zip(ids, self.forgotten_mask(ids)) if gone}

    def forgotten_mask(self, customer_ids: Iterable[Any]) -> list[bool]:
        """For each id, whether it was forgotten (one hash per distinct id)."""
        ids = list(customer_ids)
        stones = self.current()
        if not stones:
            return [False] * len(ids)
        key = self.key
        verdict: dict[str, bool] = {}
        out = []
        for value in ids:
            text = _id_text(value)
            if text is None:
                out.append(False)
                continue
            if text not in verdict:
                verdict[text] = tombstone_of(key, text) in stones
            out.append(verdict[text])
        return out


def _id_text(value: Any) -> str | None:
    """An id as the stores keep it (text), or None for a missing one (None, NaN, NA)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return str(value)
