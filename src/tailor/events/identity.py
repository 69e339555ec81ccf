"""Signed customer ids: which events sent from a browser may speak for a known customer.

Reads the shop's identity secret: `TAILOR_IDENTITY_SECRET`, else the file
`collector.identity_secret_file` (default `<home>/identity.key`, mode 0600, re-read when it
changes). Writes that file once, in `create_identity_secret` (`tailor keys create identity`).

Public keys sit in shop pages, so anyone can post events that claim any customer id. A shop
that wants to stop that signs each signed-in customer's id on its own server,
`hex(HMAC-SHA256(identity secret, customer_id))` (`sign_customer_id`), and hands the
signature to the tracker: `tailor.identify(customerId, {signature})`. tailor.js sends it
with every event of that customer as `properties.identity_signature`.

The rule (`IdentityCheck.bind`), applied by the collector to each event of a request made
with a public key, before anything is stored:

- a customer id starting with `anon-` is a browser's anonymous id: nothing to prove;
- a valid signature keeps the customer id and sets `properties.identity = "verified"`;
- otherwise, with `collector.require_signed_identity` on, the event is stored under an
  anonymous id (the browser's `properties.anonymous_id`, else one derived from the
  session id) with `properties.identity = "unverified"`; the claimed id is not kept.
  With the setting off the claimed id stays (a bad signature is still marked
  `unverified`, so a shop can check its signing before turning the setting on).

The signature itself is never stored. Requests made with a secret key come from the shop's
servers and are trusted as sent.

Why the id is rewritten at the door rather than flagged for downstream jobs to skip: every
consumer (the live session features, the feature builds, training, a later join of
anonymous and known histories) reads `customer_id`; one rewrite before the commit makes all
of them right at once, and the store never holds a claim that nobody proved.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from tailor.watched_file import WatchedFile

if TYPE_CHECKING:
    from tailor.config import Settings

log = logging.getLogger(__name__)

SECRET_ENV = "TAILOR_IDENTITY_SECRET"
SECRET_FILE_NAME = "identity.key"
SECRET_PREFIX = "tlr_ik_"
ANONYMOUS_PREFIX = "anon-"
SIGNATURE_PROPERTY = "identity_signature"
IDENTITY_PROPERTY = "identity"
VERIFIED, UNVERIFIED = "verified", "unverified"
RELOAD_SECONDS = 1.0  # how often a running collector looks at the secret file


def identity_secret_path(settings: "Settings") -> Path:
    """The identity secret file the settings name (default `<home>/identity.key`)."""
    configured = settings.collector_identity_secret_file
    return Path(configured).expanduser() if configured else settings.home_path / SECRET_FILE_NAME


def create_identity_secret(path: Path) -> str:
    """Write a new identity secret to `path` (mode 0600) and return it.

    Raises:
        FileExistsError: `path` exists; replacing a secret invalidates every signature made
            with it, so that takes deleting the file first.
    """
    secret = SECRET_PREFIX + secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FileExistsError(f"{path}: an identity secret exists already; the shop signs with "
                              "it (read it there). To rotate, delete the file and create a "
                              "new one: every signature made with the old one stops "
                              "verifying") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return secret


def sign_customer_id(secret: str, customer_id: str) -> str:
    """The signature a shop's server hands to tailor.js: hex HMAC-SHA256 of the id."""
    return hmac.new(secret.encode("utf-8"), customer_id.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def signature_valid(secret: str | None, customer_id: str, signature: Any) -> bool:
    """Whether `signature` is `sign_customer_id(secret, customer_id)` (constant time)."""
    if not secret or not isinstance(signature, str) or len(signature) != 64:
        return False
    try:
        expected = sign_customer_id(secret, customer_id)
    except UnicodeEncodeError:  # a lone surrogate: no shop could have signed it
        return False
    return hmac.compare_digest(expected, signature.lower())


def anonymous_id_for(event: Mapping[str, Any], properties: Mapping[str, Any]) -> str:
    """The anonymous id an unverified event is stored under: the browser's own anonymous id
    when it sent one, else one derived from the session (else a shared bucket)."""
    browser_id = properties.get("anonymous_id")
    if isinstance(browser_id, str) and browser_id.startswith(ANONYMOUS_PREFIX) \
            and len(browser_id) <= 128:
        return browser_id
    session_id = event.get("session_id")
    if isinstance(session_id, str) and session_id:
        digest = hashlib.sha256(("session:" + session_id).encode("utf-8", "replace"))
        return ANONYMOUS_PREFIX + digest.hexdigest()[:32]
    return ANONYMOUS_PREFIX + UNVERIFIED


def _properties_of(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event's properties as a dict (a JSON text is read), or None when there are none
    or they are not an object (the contract check rejects those later)."""
    value = event.get("properties")
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


@dataclass
class IdentityCheck:
    """Applies the module's rule to events; holds the secret, re-read when its file changes
    (`secret_file_watch`, looked at every `RELOAD_SECONDS`).

    Args:
        required: `collector.require_signed_identity`.
        secret_file: where the secret is, when not given by the environment.
        env_secret: the secret from `TAILOR_IDENTITY_SECRET`, if set (wins over the file).
    """

    required: bool
    secret_file: Path | None = None
    env_secret: str | None = None
    secret_file_watch: WatchedFile[str | None] = field(init=False)

    def __post_init__(self) -> None:
        # A file that cannot be looked at counts as missing: no secret until it can be.
        self.secret_file_watch = WatchedFile(self.secret_file, _secret_in_file, None,
                                             RELOAD_SECONDS, missing=(OSError,))

    @classmethod
    def from_settings(cls, settings: "Settings",
                      env: Mapping[str, str] | None = None) -> "IdentityCheck":
        """The check the settings describe; warns when signatures are required but no secret
        exists yet (every browser event then counts as anonymous)."""
        env = os.environ if env is None else env
        check = cls(required=settings.collector_require_signed_identity,
                    secret_file=identity_secret_path(settings),
                    env_secret=(env.get(SECRET_ENV) or "").strip() or None)
        if check.required and check.secret() is None:
            log.warning("collector.require_signed_identity is on but there is no identity "
                        "secret (%s or %s): every browser event counts as anonymous until "
                        "`tailor keys create identity` makes one", SECRET_ENV, check.secret_file)
        return check

    def secret(self) -> str | None:
        """The current secret (the environment's, else the file's), or None."""
        if self.env_secret:
            return self.env_secret
        return self.secret_file_watch.current()

    def bind(self, events: list[Any], key_kind: str) -> list[Any]:
        """The events with the rule applied (changed events are copies; others as sent).

        Args:
            events: the raw JSON events of one request.
            key_kind: `public` or `secret`, the kind of key the request was made with.
        """
        secret = self.secret() if key_kind == "public" else None
        return [self._bound(event, key_kind, secret) if isinstance(event, dict) else event
                for event in events]

    def _bound(self, event: dict[str, Any], key_kind: str, secret: str | None) -> dict[str, Any]:
        properties = _properties_of(event)
        signature = properties.get(SIGNATURE_PROPERTY) if properties is not None else None
        claimed = _claimed_id(event) if key_kind == "public" else None
        if claimed is None or not (self.required or signature is not None):
            if signature is None:
                return event
            return _with_properties(event, _without_signature(properties, {}))
        if signature_valid(secret, claimed, signature):
            return _with_properties(event, _without_signature(properties,
                                                              {IDENTITY_PROPERTY: VERIFIED}))
        marked = _with_properties(event, _without_signature(properties,
                                                             {IDENTITY_PROPERTY: UNVERIFIED}))
        if not self.required:
            return marked
        return {**marked, "customer_id": anonymous_id_for(event, properties or {})}


def _secret_in_file(path: Path | None) -> str | None:
    """The secret the file holds (None while it is missing or empty)."""
    if path is None:
        return None
    return path.read_text(encoding="utf-8").strip() or None


def _claimed_id(event: Mapping[str, Any]) -> str | None:
    """The known customer's id an event claims; None for an anonymous or a missing id."""
    customer_id = event.get("customer_id")
    if isinstance(customer_id, str) and customer_id \
            and not customer_id.startswith(ANONYMOUS_PREFIX):
        return customer_id
    return None


def _without_signature(properties: Mapping[str, Any] | None,
                       additions: Mapping[str, Any]) -> dict[str, Any]:
    """Properties without the signature, plus `additions`."""
    kept = {key: value for key, value in (properties or {}).items()
            if key != SIGNATURE_PROPERTY}
    return {**kept, **additions}


def _with_properties(event: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """A copy of the event with new properties, unless the event's own are neither absent
    nor an object: those are left for the contract check to reject as sent."""
    if _properties_of(event) is None and event.get("properties") not in (None, ""):
        return dict(event)
    return {**event, "properties": properties}
