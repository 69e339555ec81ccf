"""Checking presented API keys: who holds the key, may it do this, and not too often.

Reads the keys file (`tailor.events.keys`, re-read within `RELOAD_SECONDS` of a change, so
a key created or revoked with `tailor keys` counts in a running collector or server
within seconds) and the hashes configured in settings; writes nothing. Keys are compared
by hash in constant time.

`KeyGuard.authorize` is the one check both servers run (the collector's routes through
`tailor.events.collector.access.require_scope`, the serving app through
`tailor.serving.http.ApiKeyMiddleware`): a `KeyRefusal` carries the status to answer,

- 401: no key;
- 403: an unknown, revoked or expired key, a key without any of the scopes the route
  needs, or a secret key sent in a URL (refused even when valid: it must be rotated);
- 429 with `Retry-After`: the key's token bucket (`tailor.web.rate_limit`) is empty.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from tailor.events.keys import (
    LEGACY_SCOPES,
    configured_hashes,
    hash_key,
    is_expired,
    key_id,
    keys_file_path,
    read_key_entries,
)
from tailor.watched_file import WatchedFile
from tailor.web.rate_limit import RateLimiter, retry_after_header

if TYPE_CHECKING:
    from tailor.config import Settings

log = logging.getLogger(__name__)

RELOAD_SECONDS = 1.0  # how often a running server looks at the keys file for changes


@dataclass(frozen=True)
class KeyGrant:
    """What a presented key may do: its id (never the key), kind and scopes."""

    key_id: str
    kind: str
    scopes: frozenset[str]
    expires_at: str | None = None
    revoked: bool = False

    def allows(self, *scopes: str) -> bool:
        """Whether the key holds any of `scopes` (none given: any valid key)."""
        return not scopes or any(scope in self.scopes for scope in scopes)

    @property
    def usable(self) -> bool:
        return not self.revoked and not is_expired(self.expires_at)


class KeyRefusal(Exception):
    """A request whose key may not go ahead: the HTTP status, a message, extra headers."""

    def __init__(self, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class KeyRing:
    """The grants of every known key by hash; reloads the keys file when it changes.

    `configured` holds the grants of hashes from settings, `extra` keys added in memory
    only (the demo shop's throw-away key); `keys_file_watch` re-reads the file (its
    `recheck_seconds`: how often it is looked at).
    """

    keys_file: Path | None = None
    configured: dict[str, KeyGrant] = field(default_factory=dict)
    extra: dict[str, KeyGrant] = field(default_factory=dict)
    keys_file_watch: WatchedFile[dict[str, KeyGrant]] = field(init=False)

    def __post_init__(self) -> None:
        self.keys_file_watch = WatchedFile(self.keys_file, _grants_in_file, {}, RELOAD_SECONDS)

    def add(self, plain_key: str, kind: str, scopes: Iterable[str] | None = None) -> None:
        """Accept a key for this process only (not written anywhere)."""
        sha256 = hash_key(plain_key)
        self.extra[sha256] = KeyGrant(key_id(sha256), kind,
                                      frozenset(scopes or LEGACY_SCOPES[kind]))

    def lookup(self, plain_key: str) -> KeyGrant | None:
        """The grant of a known key (revoked and expired ones included), None otherwise."""
        self._reload_if_changed()
        presented = hash_key(plain_key)
        found = None
        # Compare against every hash without stopping early: timing reveals nothing.
        for stored, grant in (*self.configured.items(), *self.keys_file_watch.value.items(),
                              *self.extra.items()):
            if hmac.compare_digest(presented, stored):
                found = grant
        return found

    def kind_of(self, plain_key: str) -> str | None:
        """`public` or `secret` for a usable key, None for unknown, revoked or expired ones."""
        grant = self.lookup(plain_key)
        return grant.kind if grant is not None and grant.usable else None

    def count(self) -> int:
        """How many usable keys there are."""
        self._reload_if_changed()
        grants = {**self.configured, **self.keys_file_watch.value, **self.extra}
        return sum(1 for grant in grants.values() if grant.usable)

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


def _grants_in_file(keys_file: Path | None) -> dict[str, KeyGrant]:
    """Hash -> grant of the keys in the keys file (none while it is missing).

    Raises:
        InputError: the file is not a Tailor keys file.
    """
    entries = read_key_entries(keys_file) if keys_file is not None else []
    return {entry["sha256"]: _grant(entry) for entry in entries}


def _grant(entry: dict[str, Any]) -> KeyGrant:
    return KeyGrant(key_id=entry["id"], kind=entry["kind"], scopes=frozenset(entry["scopes"]),
                    expires_at=entry.get("expires_at"), revoked=bool(entry.get("revoked_at")))


def load_key_ring(settings: "Settings") -> KeyRing:
    """The key ring of a server: the keys file plus any hashes given in settings.

    Raises:
        InputError: the keys file or a configured hash is malformed.
    """
    configured = {sha256: KeyGrant(key_id(sha256), kind, frozenset(scopes))
                  for sha256, (kind, scopes) in configured_hashes(settings).items()}
    ring = KeyRing(keys_file=keys_file_path(settings), configured=configured)
    ring._reload_if_changed(strict=True)  # a bad file fails at start-up, not on a request
    return ring


@dataclass
class KeyGuard:
    """The key ring and the per-key rate limits of one server (see the module docstring)."""

    ring: KeyRing
    limiter: RateLimiter

    def authorize(self, header_key: str | None, scopes: Iterable[str] = (),
                  query_key: str | None = None) -> KeyGrant:
        """The grant of the request's key, checked for `scopes` (any of them) and its rate.

        Args:
            header_key: the key from a header (`X-Tailor-Key`, `Authorization: Bearer`).
            scopes: the route needs any one of these; empty: any usable key.
            query_key: the key from the URL (`?key=`), accepted for public keys only.

        Raises:
            KeyRefusal: see the module docstring.
        """
        wanted = tuple(scopes)
        if query_key:
            in_url = self.ring.lookup(query_key)
            if in_url is not None and in_url.kind != "public":
                raise KeyRefusal(403, SECRET_KEY_IN_URL)
        plain_key = header_key or query_key
        if not plain_key:
            raise KeyRefusal(401, "missing key: send it in the X-Tailor-Key header or as "
                                  "'Authorization: Bearer <key>'",
                             {"WWW-Authenticate": 'Bearer realm="tailor"'})
        grant = self.ring.lookup(plain_key)
        if grant is None:
            raise KeyRefusal(403, "unknown key: create one with `tailor keys create`")
        if grant.revoked:
            raise KeyRefusal(403, f"key {grant.key_id} was revoked")
        if is_expired(grant.expires_at):
            raise KeyRefusal(403, f"key {grant.key_id} expired at {grant.expires_at}")
        if not grant.allows(*wanted):
            raise KeyRefusal(403, f"{grant.kind} key {grant.key_id} has "
                                  f"{', '.join(sorted(grant.scopes))}; this needs "
                                  f"{' or '.join(wanted)}")
        wait = self.limiter.acquire(grant.key_id)
        if wait > 0:
            raise KeyRefusal(429, f"too many requests for key {grant.key_id}; retry later",
                             {"Retry-After": retry_after_header(wait)})
        return grant


SECRET_KEY_IN_URL = ("secret keys are accepted in the X-Tailor-Key header only, never in a "
                     "URL: URLs end up in logs, so rotate this key now (`tailor keys create` "
                     "a new one, then `tailor keys revoke` this one)")


def key_guard(settings: "Settings", per_second: float, burst: float) -> KeyGuard:
    """A guard over the settings' key ring with a `per_second`/`burst` limit per key.

    Raises:
        InputError: the keys file or a configured hash is malformed.
    """
    return KeyGuard(load_key_ring(settings), RateLimiter(per_second, burst))
