"""HTTP guards of the serving app as plain ASGI middlewares: API keys and body size.

Reads the key ring (`tailor.events.key_ring`: the keys file and the configured hashes,
re-read when the file changes). Writes nothing; a refused request gets a JSON body
`{"error": "..."}` and never reaches the app.

- `ApiKeyMiddleware`: every path but the open ones needs a key, sent as
  `Authorization: Bearer <key>` or `X-Tailor-Key: <key>`, holding the scope its path
  needs (`SCOPE_RULES`, first matching prefix wins; else `recommendations:read`): 401
  without one, 403 for an unknown, revoked or expired key or one without the scope (a
  public key never has more than `events:write`), 429 with `Retry-After` over the key's
  rate (`serving.rate_limit_per_second`, `serving.rate_limit_burst`). A secret key sent in
  the URL (`?key=`) is refused with 403 "rotate this key" whatever the headers hold, and
  logged without the key (once a minute), as the collector does. The key's grant is
  left in `scope["state"]["key_grant"]` for the app.
- `JsonOnlyMiddleware`: 415 for a body sent as anything but JSON (`text/plain`, a form,
  XML, multipart): the model endpoints read JSON only, and BentoML would otherwise parse
  a `text/plain` body as JSON anyway.
- `BodyLimitMiddleware`: 413 when the declared or the streamed body is over the limit,
  400 for a malformed Content-Length (the checks of `tailor.web.body_limits`, which the
  collector applies too), 408 when the body stalls longer than the body timeout.

Paths under `passthrough_prefixes` (the mounted event collector) go through both
untouched: the collector checks its own keys (public keys are valid there) and its own
1 MB limit.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, MutableMapping, Sequence
from urllib.parse import parse_qsl

from tailor.config import Settings
from tailor.throttled_log import ThrottledLog
from tailor.web.body_limits import BodyLimitError, CappedBody, check_declared_length

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# No key for health probes, the index page and the API description (the BentoML service
# adds /metrics when serving.metrics_without_key is on).
OPEN_PATHS: tuple[str, ...] = ("/healthz", "/livez", "/readyz", "/docs.json", "/")
PASSTHROUGH_PREFIXES: tuple[str, ...] = ("/collect",)
BEARER = "bearer "
# (path prefix, scopes of which a key needs one); paths matching none need DEFAULT_SCOPES.
SCOPE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/v1/customers", ("admin",)),
    ("/admin", ("admin",)),
    ("/metrics", ("recommendations:read", "admin")),
    ("/dashboard", ("recommendations:read", "admin")),
)
DEFAULT_SCOPES: tuple[str, ...] = ("recommendations:read",)

log = logging.getLogger(__name__)


async def send_json_error(send: Send, status: int, message: str,
                          headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Answer `{"error": message}` with `status`."""
    body = json.dumps({"error": message}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode("ascii")), *headers]})
    await send({"type": "http.response.body", "body": body})


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == prefix or path.startswith(prefix.rstrip("/") + "/")
               for prefix in prefixes)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def presented_key(scope: Scope) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-Tailor-Key`, else None."""
    authorization = _header(scope, b"authorization")
    if authorization and authorization[:len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER):].strip() or None
    key = (_header(scope, b"x-tailor-key") or "").strip()
    return key or None


def url_key(scope: Scope) -> str | None:
    """The `key` query parameter, else None (serving takes keys from headers only; a key in
    the URL is looked at so that a secret one is refused with the advice to rotate it)."""
    query = scope.get("query_string", b"").decode("latin-1")
    if "key=" not in query:
        return None
    key = next((value for name, value in parse_qsl(query) if name == "key"), "").strip()
    return key or None


class ApiKeyMiddleware:
    """Refuse requests without a key holding the path's scope (see the module docstring).

    Args:
        app: the ASGI app to guard.
        settings: where the key ring is (`collector.keys_file`, configured hashes) and the
            per-key rate limit (`serving.rate_limit_per_second`, `serving.rate_limit_burst`).
        open_paths: paths served without a key (exact match).
        passthrough_prefixes: path prefixes passed through untouched.
        scope_rules: (path prefix, scopes) pairs, first match wins; other paths need
            `DEFAULT_SCOPES`.

    Raises:
        ValueError: the keys file or a configured hash is malformed (at start-up).
    """

    def __init__(self, app: ASGIApp, settings: Settings,
                 open_paths: Sequence[str] = OPEN_PATHS,
                 passthrough_prefixes: Sequence[str] = PASSTHROUGH_PREFIXES,
                 scope_rules: Sequence[tuple[str, Sequence[str]]] = SCOPE_RULES) -> None:
        from tailor.events.key_ring import key_guard

        self.app = app
        self.open_paths = frozenset(open_paths)
        self.passthrough_prefixes = tuple(passthrough_prefixes)
        self.scope_rules = tuple((prefix, tuple(scopes)) for prefix, scopes in scope_rules)
        self.guard = key_guard(settings, settings.serving_rate_limit_per_second,
                               settings.serving_rate_limit_burst)
        self.keys = self.guard.ring
        self.log_limiter = ThrottledLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in self.open_paths or _under(path, self.passthrough_prefixes):
            await self.app(scope, receive, send)
            return
        from tailor.events.key_ring import SECRET_KEY_IN_URL, KeyRefusal

        try:
            grant = self.guard.authorize(presented_key(scope), self.scopes_for(path),
                                         url_key(scope))
        except KeyRefusal as refusal:
            if refusal.message == SECRET_KEY_IN_URL:
                self.log_limiter.log(logging.WARNING, "secret key in URL",
                                     "serving: refused a secret key sent in a URL (?key=); "
                                     "rotate that key")
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            message = refusal.message
            if refusal.status == 401:
                message = ("missing API key: send a secret key with recommendations:read as "
                           "'Authorization: Bearer <key>' or 'X-Tailor-Key: <key>' (create "
                           "one with `tailor keys create secret`)")
            await send_json_error(send, refusal.status, message,
                                  [(name.lower().encode("ascii"), value.encode("ascii"))
                                   for name, value in refusal.headers.items()])
            return
        scope.setdefault("state", {})["key_grant"] = grant
        await self.app(scope, receive, send)

    def scopes_for(self, path: str) -> tuple[str, ...]:
        """The scopes of which a key needs one to call `path`."""
        for prefix, scopes in self.scope_rules:
            if _under(path, (prefix,)):
                return scopes
        return DEFAULT_SCOPES


class JsonOnlyMiddleware:
    """Refuse (415) requests with a body whose Content-Type is not JSON (see the module
    docstring); requests without a Content-Type are left to the app.

    Args:
        app: the ASGI app to guard.
        passthrough_prefixes: path prefixes passed through untouched (the collector takes
            `text/plain` from sendBeacon).
    """

    def __init__(self, app: ASGIApp,
                 passthrough_prefixes: Sequence[str] = PASSTHROUGH_PREFIXES) -> None:
        self.app = app
        self.passthrough_prefixes = tuple(passthrough_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = _header(scope, b"content-type") if scope["type"] == "http" else None
        if content_type is None or _under(scope.get("path", ""), self.passthrough_prefixes) \
                or _is_json(content_type):
            await self.app(scope, receive, send)
            return
        media_type = content_type.split(";")[0].strip()[:60]
        await send_json_error(send, 415, f"Content-Type {media_type!r} is not accepted; send "
                                         "the request as application/json")


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/")
                                                 and media_type.endswith("+json"))


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413 before the app sees them.

    The body is read up to the limit and handed to the app whole, so a chunked upload
    without Content-Length is cut off as soon as it passes the limit.

    Args:
        app: the ASGI app to guard.
        max_bytes: the largest body accepted.
        passthrough_prefixes: path prefixes passed through untouched.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 passthrough_prefixes: Sequence[str] = PASSTHROUGH_PREFIXES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes: must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.passthrough_prefixes = tuple(passthrough_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _under(scope.get("path", ""), self.passthrough_prefixes):
            await self.app(scope, receive, send)
            return
        try:
            check_declared_length(_header(scope, b"content-length"), self.max_bytes)
            body, closing = await self._read_body(receive)
        except BodyLimitError as error:
            if error.declared is not None:
                await send_json_error(send, 400, "Content-Length: not a whole number of bytes")
            elif error.declared_bytes is not None:
                await send_json_error(send, 413,
                                      self._over_limit(f"{error.declared_bytes:,} bytes"))
            else:
                await send_json_error(send, 413, self._over_limit("the body"))
            return
        await self.app(scope, self._replay(body, closing, receive), send)

    def _over_limit(self, what: str) -> str:
        return f"request body too large: {what} is over the limit of {self.max_bytes:,} bytes"

    async def _read_body(self, receive: Receive) -> tuple[bytes, Message | None]:
        """The whole body, or `BodyLimitError` (413); a disconnect ends it early (and is
        replayed)."""
        body = CappedBody(self.max_bytes)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return body.bytes(), message
            body.add(message.get("body", b""))
            if not message.get("more_body", False):
                return body.bytes(), None

    @staticmethod
    def _replay(body: bytes, closing: Message | None, receive: Receive) -> Receive:
        """A receive that gives the app the buffered body, then the real stream's messages."""
        pending: list[Message] = [closing] if closing is not None else \
            [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        return replayed
