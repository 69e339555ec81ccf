"""Who may send events to the collector: keys, allowed origins and CORS, and the context
the routes share.

Reads the request's key (`X-Tailor-Key`, `Authorization: Bearer` or, for public keys
only, `?key=`) and Origin header, and the key ring (`tailor.events.keys`); writes nothing
but a throttled warning when a secret key arrives in a URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from starlette.requests import Request

from tailor.config import Settings
from tailor.events.collector.metrics import CollectorMetrics
from tailor.events.collector.requests import RequestError
from tailor.events.collector.writer import BatchWriter
from tailor.events.identity import IdentityCheck
from tailor.events.keys import KeyRing
from tailor.throttled_log import ThrottledLog

log = logging.getLogger(__package__)  # one logger for the whole collector, as before the split

KEY_HEADER = "x-tailor-key"
SECRET_KEY_IN_URL = ("secret keys are accepted in the X-Tailor-Key header only, never in a "
                     "URL: URLs end up in logs, so rotate this key now (`tailor keys create "
                     "secret`)")


def parse_origins(text: str) -> frozenset[str]:
    """Comma-separated origins, normalised (lower case, no trailing slash)."""
    return frozenset(part.strip().rstrip("/").lower() for part in text.split(",") if part.strip())


def bound_origins(host: str, port: int) -> frozenset[str]:
    """The origins a browser uses for a server bound to `host:port` (plain HTTP).

    A loopback or wildcard address gives the loopback names (127.0.0.1, localhost, [::1]);
    pages reached through any other name must be listed in `collector.allowed_origins`.
    """
    host = host.strip().lower()
    if host in ("", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1", "[::1]"):
        return frozenset(f"http://{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))
    return frozenset({f"http://{host}:{port}"})


@dataclass
class CollectorContext:
    """Everything the routes share: limits, keys, allowed origins, metrics and the writer."""

    settings: Settings
    key_ring: KeyRing
    allowed_origins: frozenset[str]
    metrics: CollectorMetrics
    writer: BatchWriter
    demo_shop_key: str | None = None
    identity: IdentityCheck | None = None  # signed customer ids (tailor.events.identity)
    shop_origins: frozenset[str] = frozenset()  # where the demo shop's own pages are served
    log_limiter: ThrottledLog = field(default_factory=lambda: ThrottledLog(log))

    def authenticate(self, request: Request) -> str:
        """The kind of the request's key (`public` or `secret`).

        The key comes from the `X-Tailor-Key` header, `Authorization: Bearer`, or (public
        keys only, for sendBeacon, which cannot set headers) the `key` query parameter.

        Raises:
            RequestError: 401 without a key, 403 for an unknown key or a secret key in a URL.
        """
        header_key = request.headers.get(KEY_HEADER, "").strip()
        authorization = request.headers.get("authorization", "")
        if not header_key and authorization.lower().startswith("bearer "):
            header_key = authorization[7:].strip()
        query_key = request.query_params.get("key", "").strip()
        if query_key and self.key_ring.kind_of(query_key) == "secret":
            # Refused whatever else the request carries: the key is in URLs and logs now,
            # and a silent success would leave nobody knowing it must be rotated.
            self.log_limiter.log(logging.WARNING, "secret key in URL",
                                 "collector: refused a secret key sent in a URL (?key=); "
                                 "rotate that key")
            raise RequestError(403, SECRET_KEY_IN_URL)
        plain_key = header_key or query_key
        if not plain_key:
            raise RequestError(401, "missing key: send it in the X-Tailor-Key header (or as "
                                    "?key= for a public key from sendBeacon)")
        kind = self.key_ring.kind_of(plain_key)
        if kind is None:
            raise RequestError(403, "unknown key: create one with `tailor keys create public`")
        return kind

    def origin_allowed(self, request: Request) -> bool:
        """Whether the request's Origin may use a public key (and see CORS headers)."""
        origin = request.headers.get("origin", "").rstrip("/").lower()
        if not origin:
            return False
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        # The demo shop is served by the collector itself, at the origins it is bound to
        # (never the request's Host header, which the sender chooses).
        return self.demo_shop_key is not None and origin in self.shop_origins

    def check_origin(self, request: Request, kind: str) -> None:
        """Refuse (403) a public key used from a page whose origin is not configured."""
        origin = request.headers.get("origin")
        if kind == "public" and origin is not None and not self.origin_allowed(request):
            raise RequestError(403, f"origin {origin[:100]!r} may not send events with a public "
                                    "key; add it to collector.allowed_origins")


def cors_headers(origin: str) -> dict[str, str]:
    """Headers that let a browser page at `origin` read the collector's answer."""
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
