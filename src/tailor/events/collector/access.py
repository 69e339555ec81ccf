"""Who may call the collector: keys with scopes, per-key rate limits, allowed origins and
CORS, and the context the routes share.

Reads the request's key (`X-Tailor-Key`, `Authorization: Bearer` or, for public keys
only, `?key=`) and Origin header, and the key guard (`tailor.events.key_ring`); writes
nothing but a throttled warning when a secret key arrives in a URL.

Guarding a route by scope (the privacy endpoints use `admin`):

    from tailor.events.collector.access import scoped
    from tailor.events.keys import ADMIN

    @scoped(ADMIN)
    async def forget_customer(request: Request) -> Response: ...

or, inside a handler, `grant = require_scope(request, ADMIN)` (raises `RequestError`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tailor.config import Settings
from tailor.events.collector.metrics import CollectorMetrics
from tailor.events.collector.requests import RequestError
from tailor.events.collector.writer import BatchWriter
from tailor.events.identity import IdentityCheck
from tailor.events.key_ring import SECRET_KEY_IN_URL, KeyGrant, KeyGuard, KeyRefusal, KeyRing
from tailor.throttled_log import ThrottledLog

log = logging.getLogger(__package__)  # one logger for the whole collector, as before the split

KEY_HEADER = "x-tailor-key"
Endpoint = Callable[[Request], Awaitable[Response]]


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
    guard: KeyGuard
    allowed_origins: frozenset[str]
    metrics: CollectorMetrics
    writer: BatchWriter
    demo_shop_key: str | None = None
    identity: IdentityCheck | None = None  # signed customer ids (tailor.events.identity)
    shop_origins: frozenset[str] = frozenset()  # where a demo shop's own pages are served
    log_limiter: ThrottledLog = field(default_factory=lambda: ThrottledLog(log))

    @property
    def key_ring(self) -> KeyRing:
        return self.guard.ring

    def authenticate(self, request: Request, *scopes: str) -> KeyGrant:
        """The grant of the request's key, which must hold one of `scopes` (none: any).

        The key comes from the `X-Tailor-Key` header, `Authorization: Bearer`, or (public
        keys only, for sendBeacon, which cannot set headers) the `key` query parameter.

        Raises:
            RequestError: 401 without a key; 403 for an unknown, revoked or expired key, a
                key without the scope, or a secret key in a URL; 429 over the key's rate.
        """
        header_key = request.headers.get(KEY_HEADER, "").strip()
        authorization = request.headers.get("authorization", "")
        if not header_key and authorization.lower().startswith("bearer "):
            header_key = authorization[7:].strip()
        query_key = request.query_params.get("key", "").strip()
        try:
            grant = self.guard.authorize(header_key or None, scopes, query_key or None)
        except KeyRefusal as refusal:
            if refusal.message == SECRET_KEY_IN_URL:
                # Refused whatever else the request carries: the key is in URLs and logs
                # now, and a silent success would leave nobody knowing it must be rotated.
                self.log_limiter.log(logging.WARNING, "secret key in URL",
                                     "collector: refused a secret key sent in a URL (?key=); "
                                     "rotate that key")
            raise RequestError(refusal.status, refusal.message, refusal.headers) from None
        request.state.key_grant = grant
        return grant

    def origin_allowed(self, request: Request) -> bool:
        """Whether the request's Origin may use a public key (and see CORS headers)."""
        origin = request.headers.get("origin", "").rstrip("/").lower()
        if not origin:
            return False
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        # A demo shop is served by this server itself, at the origins it is bound to
        # (never the request's Host header, which the sender chooses); without one the
        # set is empty.
        return origin in self.shop_origins

    def check_origin(self, request: Request, kind: str) -> None:
        """Refuse (403) a public key used from a page whose origin is not configured."""
        origin = request.headers.get("origin")
        if kind == "public" and origin is not None and not self.origin_allowed(request):
            raise RequestError(403, f"origin {origin[:100]!r} may not send events with a public "
                                    "key; add it to collector.allowed_origins")


def cors_headers(origin: str) -> dict[str, str]:
    """Headers that let a browser page at `origin` read the collector's answer."""
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def require_scope(request: Request, *scopes: str) -> KeyGrant:
    """Check the request's key for one of `scopes` on a collector route (any of them will do)
    and count it against the key's rate limit.

    Returns:
        The key's grant (`key_id`, `kind`, `scopes`); also kept as `request.state.key_grant`.

    Raises:
        RequestError: 401, 403 or 429 (with `headers` to send: Retry-After, WWW-Authenticate).
    """
    context: CollectorContext = request.app.state.collector
    return context.authenticate(request, *scopes)


def error_response(error: RequestError) -> JSONResponse:
    """The JSON answer to a refused request: `{"error": message}`, its status and headers."""
    return JSONResponse({"error": error.message}, status_code=error.status,
                        headers=error.headers)


def scoped(*scopes: str) -> Callable[[Endpoint], Endpoint]:
    """Decorate a collector endpoint so it runs only for a key holding one of `scopes`;
    other requests get the JSON refusal of `require_scope` (401/403/429)."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            try:
                require_scope(request, *scopes)
            except RequestError as error:
                return error_response(error)
            return await endpoint(request)

        return guarded

    return decorate
