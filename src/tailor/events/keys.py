"""API keys with scopes: created once, stored only as SHA-256 hashes, listed, revoked.

Reads and writes the keys file (`collector.keys_file`, default `<home>/collector_keys.json`,
mode 0600); the key ring that checks presented keys against it (and against the hashes
configured in settings) is `tailor.events.key_ring`.

A key has a kind, which says where it may be used, and scopes, which say what it may do:

- kinds: `public` (pasted into shop pages: accepted from `collector.allowed_origins` and
  in a `key` query parameter) and `secret` (server to server: headers only, any origin);
- scopes: `events:write` (send events), `recommendations:read` (the serving API, metrics,
  the dashboard) and `admin` (the privacy endpoints: forget, opt-out). A public key only
  ever holds `events:write`.

Each entry has an `id` (the first 12 hex digits of its hash: enough to name it in
`tailor keys list | revoke`, useless to call the API with), its `scopes`, a `label`,
`created_at`, and optionally `expires_at` and `revoked_at`. Files written before scopes
existed still load: a `public` entry without scopes gets `events:write`, a `secret` one
`events:write` + `recommendations:read` (what it could do then; never `admin`).

A plain SHA-256 is enough here (no slow password hash): keys are 160 random bits, so
there is nothing to guess a dictionary against.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from tailor.errors import InputError

if TYPE_CHECKING:
    from tailor.config import Settings

EVENTS_WRITE = "events:write"
RECOMMENDATIONS_READ = "recommendations:read"
ADMIN = "admin"
SCOPES: tuple[str, ...] = (EVENTS_WRITE, RECOMMENDATIONS_READ, ADMIN)
KEY_KINDS: tuple[str, ...] = ("public", "secret")
PUBLIC_SCOPES: frozenset[str] = frozenset({EVENTS_WRITE})
# What a key could do before scopes existed; the default of `tailor keys create secret`.
LEGACY_SCOPES: dict[str, tuple[str, ...]] = {
    "public": (EVENTS_WRITE,), "secret": (EVENTS_WRITE, RECOMMENDATIONS_READ)}
ID_LENGTH = 12
_PREFIX = {"public": "tlr_pk_", "secret": "tlr_sk_"}


@dataclass(frozen=True)
class KeyInfo:
    """One key as `tailor keys list` shows it (never the key itself)."""

    id: str
    kind: str
    scopes: tuple[str, ...]
    label: str
    created_at: str
    hash_tail: str  # the last 4 hex digits of the hash
    source: str  # "file" (tailor keys create) or "settings" (configured hashes)
    expires_at: str | None = None
    revoked_at: str | None = None

    def status(self, now: datetime | None = None) -> str:
        """`active`, `revoked` or `expired`."""
        if self.revoked_at:
            return "revoked"
        if is_expired(self.expires_at, now):
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "scopes": list(self.scopes),
                "label": self.label, "created_at": self.created_at,
                "expires_at": self.expires_at, "revoked_at": self.revoked_at,
                "status": self.status(), "hash_tail": self.hash_tail, "source": self.source}


def keys_file_path(settings: "Settings") -> Path:
    """The keys file the settings name (default `<home>/collector_keys.json`)."""
    configured = settings.collector_keys_file
    if configured:
        return Path(configured).expanduser()
    return settings.home_path / "collector_keys.json"


def hash_key(plain_key: str) -> str:
    """The hex SHA-256 of a key, as stored."""
    return hashlib.sha256(plain_key.encode("utf-8", "surrogatepass")).hexdigest()


def key_id(sha256: str) -> str:
    """The id a key is listed and revoked by: the first 12 hex digits of its hash."""
    return sha256[:ID_LENGTH]


def generate_key(kind: str) -> str:
    """A new random key of a kind (`public` or `secret`); the prefix makes leaks easy to spot."""
    check_kind(kind)
    return _PREFIX[kind] + secrets.token_hex(20)


def check_kind(kind: str) -> None:
    """Raise InputError unless `kind` is `public` or `secret`."""
    if kind not in KEY_KINDS:
        raise InputError(f"key kind must be one of {', '.join(KEY_KINDS)}, got {kind!r}"
                         + (" (admin is a scope: --scope admin)" if kind == ADMIN else ""))


def checked_scopes(kind: str, scopes: Iterable[str] | None) -> tuple[str, ...]:
    """The scopes a new key of `kind` gets: `scopes` checked, or the kind's default.

    Raises:
        InputError: an unknown scope, none at all, or a public key asked for more than
            `events:write`.
    """
    check_kind(kind)
    wanted = LEGACY_SCOPES[kind] if scopes is None else tuple(dict.fromkeys(scopes))
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown:
        raise InputError(f"scope: {unknown[0]!r} is not one of {', '.join(SCOPES)}")
    if not wanted:
        raise InputError("scope: a key needs at least one scope")
    if kind == "public" and set(wanted) - PUBLIC_SCOPES:
        raise InputError(f"scope: a public key sits in web pages and may only have "
                         f"{EVENTS_WRITE}; use a secret key for {', '.join(wanted)}")
    return tuple(scope for scope in SCOPES if scope in wanted)


def create_key(kind: str, keys_file: Path, label: str = "", *,
               scopes: Sequence[str] | None = None,
               expires_in_days: float | None = None) -> str:
    """Create a key, store its hash in the keys file, and return the plain key (shown once).

    Args:
        kind: `public` (browsers, events only) or `secret` (server to server).
        keys_file: the JSON keys file; created with mode 0600 when absent.
        label: a note to recognise the key by later (e.g. the shop's name).
        scopes: what the key may do (`SCOPES`); None gives the kind's default
            (`LEGACY_SCOPES`). Tests make an admin key with `scopes=["admin"]`.
        expires_in_days: the key stops working this long from now; None never.

    Returns:
        The plain key. Only its hash is written; it cannot be recovered later.

    Raises:
        InputError: unknown kind or scope, a public key with more than `events:write`, a
            non-positive expiry, or the keys file is not a Tailor keys file.
    """
    granted = checked_scopes(kind, scopes)
    now = datetime.now(timezone.utc)
    entry: dict[str, Any] = {"kind": kind, "scopes": list(granted), "label": label,
                             "created_at": now.isoformat(timespec="seconds")}
    if expires_in_days is not None:
        if not expires_in_days > 0:
            raise InputError(f"expires_in_days: must be positive, got {expires_in_days}")
        entry["expires_at"] = (now + timedelta(days=expires_in_days)).isoformat(
            timespec="seconds")
    plain_key = generate_key(kind)
    entry["sha256"] = hash_key(plain_key)
    entry["id"] = key_id(entry["sha256"])
    with _keys_file_lock(keys_file):
        entries = read_key_entries(keys_file)
        entries.append(entry)
        _write_entries(keys_file, entries)
    return plain_key


def revoke_key(keys_file: Path, wanted_id: str) -> KeyInfo:
    """Mark the key with id `wanted_id` revoked (kept in the file, listed as revoked).

    A running collector or server stops accepting it within `key_ring.RELOAD_SECONDS`.

    Raises:
        InputError: no key in the file has that id (or it names several).
    """
    wanted = wanted_id.strip().lower()
    with _keys_file_lock(keys_file):
        entries = read_key_entries(keys_file)
        matches = [entry for entry in entries
                   if wanted and (entry["id"] == wanted or entry["sha256"] == wanted)]
        if len(matches) != 1:
            raise InputError(f"key id {wanted_id[:40]!r}: no such key in {keys_file} "
                             "(see `tailor keys list`; keys configured by hash in settings "
                             "are revoked by removing the hash from the setting)")
        matches[0].setdefault("revoked_at",
                              datetime.now(timezone.utc).isoformat(timespec="seconds"))
        _write_entries(keys_file, entries)
    return _info(matches[0], "file")


def list_keys(settings: "Settings") -> list[KeyInfo]:
    """Every key: the keys file's (revoked and expired ones included), then the ones
    configured by hash in settings."""
    listed = [_info(entry, "file") for entry in read_key_entries(keys_file_path(settings))]
    for sha256, (kind, scopes) in configured_hashes(settings).items():
        listed.append(KeyInfo(id=key_id(sha256), kind=kind, scopes=scopes, label="(settings)",
                              created_at="", hash_tail=sha256[-4:], source="settings"))
    return listed


def _info(entry: dict[str, Any], source: str) -> KeyInfo:
    return KeyInfo(id=entry["id"], kind=entry["kind"], scopes=tuple(entry["scopes"]),
                   label=str(entry.get("label", "")), created_at=str(entry.get("created_at", "")),
                   hash_tail=entry["sha256"][-4:], source=source,
                   expires_at=entry.get("expires_at"), revoked_at=entry.get("revoked_at"))


def is_expired(expires_at: str | None, now: datetime | None = None) -> bool:
    """Whether an `expires_at` time (ISO 8601) has passed; an unreadable one counts as passed."""
    if not expires_at:
        return False
    try:
        moment = datetime.fromisoformat(expires_at)
    except (TypeError, ValueError):
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment <= (now or datetime.now(timezone.utc))


def read_key_entries(keys_file: Path) -> list[dict[str, Any]]:
    """The entries of a keys file, each with `id`, `kind`, `scopes` and `sha256` filled in
    (old files' entries get their kind's `LEGACY_SCOPES`); [] when the file is absent.

    Raises:
        InputError: the file is not a Tailor keys file, or an entry is malformed (named by
            its number).
    """
    if not keys_file.is_file():
        return []
    try:
        document = json.loads(keys_file.read_text(encoding="utf-8"))
        entries = document["keys"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{keys_file}: not a Tailor keys file "
                         '(expected {"keys": [...]})') from None
    for number, entry in enumerate(entries):
        _complete_entry(keys_file, number, entry)
    return entries


def _complete_entry(keys_file: Path, number: int, entry: Any) -> None:
    """Check one entry and fill in what old files lack (`scopes`, `id`)."""
    if not isinstance(entry, dict) or entry.get("kind") not in KEY_KINDS \
            or not is_sha256(entry.get("sha256")):
        raise InputError(f"{keys_file}: entry {number} needs kind public|secret "
                         "and a sha256 hex")
    scopes = entry.get("scopes", LEGACY_SCOPES[entry["kind"]])
    try:
        entry["scopes"] = list(checked_scopes(entry["kind"], scopes))
    except (InputError, TypeError) as error:
        raise InputError(f"{keys_file}: entry {number}: {error}") from None
    entry["id"] = key_id(entry["sha256"])


@contextmanager
def _keys_file_lock(keys_file: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `<keys file>.lock` while the file is read and rewritten,
    so two `tailor keys` commands at once cannot lose each other's change."""
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    lock_path = keys_file.with_name(keys_file.name + ".lock")
    descriptor = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _write_entries(keys_file: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the keys file atomically, readable by its owner only."""
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = keys_file.with_name(keys_file.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"keys": entries}, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, keys_file)


def is_sha256(value: object) -> bool:
    """Whether `value` is a 64-digit lower-case hex string."""
    return (isinstance(value, str) and len(value) == 64
            and all(character in "0123456789abcdef" for character in value))


def _hash_list(text: str, setting: str) -> list[str]:
    """Comma-separated hex hashes from a setting; a malformed one is an error naming the setting."""
    hashes = [part.strip().lower() for part in text.split(",") if part.strip()]
    for value in hashes:
        if not is_sha256(value):
            raise InputError(f"collector_{setting}: {value[:12]!r}… is not a 64-digit sha256 hex")
    return hashes


def configured_hashes(settings: "Settings") -> dict[str, tuple[str, tuple[str, ...]]]:
    """Hash -> (kind, scopes) of the keys configured by hash in settings (from the
    environment, for deployments without a keys file): public ones get `events:write`,
    secret ones `LEGACY_SCOPES["secret"]`, admin ones `admin` only.

    Raises:
        InputError: a malformed hash, named by its setting.
    """
    configured: dict[str, tuple[str, tuple[str, ...]]] = {}
    for setting, kind, scopes in (
            ("public_key_hashes", "public", LEGACY_SCOPES["public"]),
            ("secret_key_hashes", "secret", LEGACY_SCOPES["secret"]),
            ("admin_key_hashes", "secret", (ADMIN,))):
        for value in _hash_list(getattr(settings, f"collector_{setting}"), setting):
            configured[value] = (kind, scopes)
    return configured
