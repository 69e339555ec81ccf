"""Security headers on every answer of both servers, as one plain ASGI middleware.

Reads nothing; adds response headers only (a header the app set itself is left as it is,
so the middleware can wrap an app that already has it, as the serving app wraps the
mounted collector).

Every answer gets `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, a
`Referrer-Policy` and a `Content-Security-Policy`:

- APIs, `tailor.js`, metrics, the docs page: `API_POLICY`, which lets a document load
  nothing at all (none of them is a page that needs to) and never be framed, and
  `Cache-Control: no-store` (answers hold a customer's recommendations; a route that may
  be cached, such as `tailor.js`, sets its own Cache-Control, which is kept).
- Pages under `page_prefixes` (the demo shop): `PAGE_POLICY`, scripts, styles, images and
  fetches from its own origin only, plus the inline `<style>` blocks the pages carry; no
  inline scripts, no framing, forms post to the same origin.
- The daily report at `/dashboard` sets `REPORT_POLICY` itself: a self-contained page whose
  only needs are its inline styles (the `<style>` block and the inline SVG plots' style
  attributes); nothing else may load or run.

With `hsts_max_age` above 0 (`serving.hsts_max_age_seconds`,
`collector.hsts_max_age_seconds`; only for servers reached over HTTPS) every answer also
carries `Strict-Transport-Security: max-age=<n>; includeSubDomains`.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, MutableMapping, Sequence

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
               "base-uri 'none'; form-action 'self'; object-src 'none'")
REPORT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                 "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
)
API_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    *_COMMON,
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", API_POLICY.encode("ascii")),
    (b"cache-control", b"no-store"),
)
PAGE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    *_COMMON,
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", PAGE_POLICY.encode("ascii")),
)


def route_path(scope: Scope) -> str:
    """The path below the app's mount point (Starlette keeps the full path in `path`)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def with_headers(headers: Sequence[tuple[bytes, bytes]],
                 extra: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` plus each of `extra` whose name is not among them yet."""
    present = {bytes(name).lower() for name, _ in headers}
    return [*headers, *((name, value) for name, value in extra if name not in present)]


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP answer of `app` (see the module docstring).

    Args:
        app: the ASGI app whose answers get the headers.
        page_prefixes: route paths (below the app's mount point) that serve web pages.
        hsts_max_age: seconds of Strict-Transport-Security to send; 0 sends none.
    """

    def __init__(self, app: ASGIApp, page_prefixes: Sequence[str] = (),
                 hsts_max_age: int = 0) -> None:
        self.app = app
        self.page_prefixes = tuple(prefix.rstrip("/") for prefix in page_prefixes)
        hsts = ((b"strict-transport-security",
                 f"max-age={int(hsts_max_age)}; includeSubDomains".encode("ascii")),)
        self.page_headers = PAGE_HEADERS + (hsts if hsts_max_age > 0 else ())
        self.api_headers = API_HEADERS + (hsts if hsts_max_age > 0 else ())

    def _headers_for(self, scope: Scope) -> tuple[tuple[bytes, bytes], ...]:
        path = route_path(scope)
        if any(path == prefix or path.startswith(prefix + "/") for prefix in self.page_prefixes):
            return self.page_headers
        return self.api_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers_for(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_headers(list(message.get("headers", [])),
                                                              extra)}
            await send(message)

        await self.app(scope, receive, send_with_headers)
