"""Collector API keys: created once, stored only as SHA-256 hashes, checked in constant time.

Reads and writes the keys file (`collector.keys_file`, default `<home>/collector_keys.json`,
mode 0600) and reads the hash lists `collector.public_key_hashes` /
`collector.secret_key_hashes` from settings (for deployments configured by environment).

Two kinds of key:
- `public`: write-only, meant to be pasted into shop pages; accepted from the browser
  origins in `collector.allowed_origins` only (CORS), in a header or a `key` query parameter.
- `secret`: for server-to-server calls; any origin, header only (never in a URL).

A plain SHA-256 is enough here (no slow password hash): keys are 160 random bits, so
there is nothing to guess a dictionary against.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from tailor.errors import InputError
from tailor.watched_file import WatchedFile

if TYPE_CHECKING:
    from tailor.config import Settings

log = logging.getLogger(__name__)

KEY_KINDS: tuple[str, ...] = ("public", "secret")
_PREFIX = {"public": "tlr_pk_", "secret": "tlr_sk_"}
RELOAD_SECONDS = 1.0  # how often a running collector looks for keys created since it started


def keys_file_path(settings: "Settings") -> Path:
    """The keys file the settings name (default `<home>/collector_keys.json`)."""
    configured = settings.collector_keys_file
    if configured:
        return Path(configured).expanduser()
    return settings.home_path / "collector_keys.json"


def hash_key(plain_key: str) -> str:
    """The hex SHA-256 of a key, as stored."""
    return hashlib.sha256(plain_key.encode("utf-8")).hexdigest()


def generate_key(kind: str) -> str:
    """A new random key of a kind (`public` or `secret`); the prefix makes leaks easy to spot."""
    if kind not in KEY_KINDS:
        raise InputError(f"key kind must be one of {', '.join(KEY_KINDS)}, got {kind!r}")
    return _PREFIX[kind] + secrets.token_hex(20)


def create_key(kind: str, keys_file: Path, label: str = "") -> str:
    """Create a key, store its hash in the keys file, and return the plain key (shown once).

    Args:
        kind: `public` (browsers, events only) or `secret` (server to server).
        keys_file: the JSON keys file; created with mode 0600 when absent.
        label: a note to recognise the key by later (e.g. the shop's name).

    Returns:
        The plain key. Only its hash is written; it cannot be recovered later.

    Raises:
        InputError: unknown kind, or the keys file is not a Tailor keys file.
    """
    plain_key = generate_key(kind)
    entries = read_key_entries(keys_file)
    entries.append({"kind": kind, "sha256": hash_key(plain_key), "label": label,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    _write_entries(keys_file, entries)
    return plain_key


def read_key_entries(keys_file: Path) -> list[dict[str, str]]:
    """The entries of a keys file (`kind`, `sha256`, `label`, `created_at`); [] when absent."""
    if not keys_file.is_file():
        return []
    try:
        document = json.loads(keys_file.read_text(encoding="utf-8"))
        entries = document["keys"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{keys_file}: not a Tailor keys file "
                         '(expected {"keys": [...]})') from None
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("kind") not in KEY_KINDS \
                or not _is_sha256(entry.get("sha256")):
            raise InputError(f"{keys_file}: entry {number} needs kind public|secret "
                             "and a sha256 hex")
    return entries


def _write_entries(keys_file: Path, entries: list[dict[str, str]]) -> None:
    """Replace the keys file atomically, readable by its owner only."""
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = keys_file.with_name(keys_file.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"keys": entries}, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, keys_file)


def _is_sha256(value: object) -> bool:
    return (isinstance(value, str) and len(value) == 64
            and all(character in "0123456789abcdef" for character in value))


def _hash_list(text: str, setting: str) -> list[str]:
    """Comma-separated hex hashes from a setting; a malformed one is an error naming the setting."""
    hashes = [part.strip().lower() for part in text.split(",") if part.strip()]
    for value in hashes:
        if not _is_sha256(value):
            raise InputError(f"collector_{setting}: {value[:12]!r}… is not a 64-digit sha256 hex")
    return hashes


@dataclass
class KeyRing:
    """The hashes of every accepted key, by kind; reloads the keys file when it changes.

    `extra` holds hashes added in memory only (the demo shop's throw-away key);
    `keys_file_watch` re-reads the file (its `recheck_seconds`: how often it is looked at).
    """

    keys_file: Path | None = None
    configured: dict[str, str] = field(default_factory=dict)  # hash -> kind, from settings
    extra: dict[str, str] = field(default_factory=dict)
    keys_file_watch: WatchedFile[dict[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.keys_file_watch = WatchedFile(self.keys_file, _hashes_in_file, {}, RELOAD_SECONDS)

    def add(self, plain_key: str, kind: str) -> None:
        """Accept a key for this process only (not written anywhere)."""
        self.extra[hash_key(plain_key)] = kind

    def kind_of(self, plain_key: str) -> str | None:
        """`public` or `secret` for a known key, None otherwise (compared in constant time)."""
        self._reload_if_changed()
        presented = hash_key(plain_key)
        found = None
        # Compare against every hash without stopping early: timing reveals nothing.
        for stored, kind in (*self.configured.items(), *self.keys_file_watch.value.items(),
                             *self.extra.items()):
            if hmac.compare_digest(presented, stored):
                found = kind
        return found

    def count(self) -> int:
        """How many keys are accepted."""
        self._reload_if_changed()
        return len({**self.configured, **self.keys_file_watch.value, **self.extra})

    def _reload_if_changed(self, strict: bool = False) -> None:
        """Re-read the keys file when its modification time moved (checked at most once a second).

        Args:
            strict: raise on a malformed file (at start-up); otherwise log it and keep the
                keys already loaded, so a bad edit cannot lock every shop out.
        """
        try:
            self.keys_file_watch.refresh(force=False)
        except ValueError as error:
            if strict:
                raise
            log.error("keeping the keys loaded before: %s", error)


def _hashes_in_file(keys_file: Path | None) -> dict[str, str]:
    """Hash -> kind of the keys in the keys file (none while it is missing).

    Raises:
        InputError: the file is not a Tailor keys file.
    """
    entries = read_key_entries(keys_file) if keys_file is not None else []
    return {entry["sha256"]: entry["kind"] for entry in entries}


def load_key_ring(settings: "Settings") -> KeyRing:
    """The key ring for a collector: the keys file plus any hashes given in settings.

    Raises:
        InputError: the keys file or a configured hash is malformed.
    """
    configured = {value: "public" for value in
                  _hash_list(settings.collector_public_key_hashes, "public_key_hashes")}
    configured.update({value: "secret" for value in
                       _hash_list(settings.collector_secret_key_hashes, "secret_key_hashes")})
    ring = KeyRing(keys_file=keys_file_path(settings), configured=configured)
    ring._reload_if_changed(strict=True)  # a bad file fails at start-up, not on a request
    return ring
