"""Limits on request headers for both servers: the size of a request's head and the number
of its headers, refused with 431 before the app sees the request.

Reads nothing (the limits are the `serving.max_header_*` and `collector.max_header_*`
settings, passed in); writes the 431 answers.

uvicorn reads requests with httptools when it is installed, and httptools buffers a
request head of any size: a 50 MB `X-Tailor-Key` costs 50 MB per connection before any
app code runs. h11 stops reading at a size limit while the head is still arriving, so both
servers use `header_limited_protocol`, uvicorn's h11 protocol with:

- h11's buffer limit set to the largest head (`max_incomplete_event_size`); uvicorn
  answers a head over it with a bare 400, this protocol with 431 and a JSON error (and a
  malformed request with a JSON 400), with the security headers, and closes the
  connection without reading the rest;
- the number of headers checked once the head is complete (431 as well; a head under the
  size limit holds at most a few thousand);
- the security headers added to every answer (`SecurityHeadersMiddleware` as the
  outermost layer), so that answers made outside the app's own middleware (BentoML's
  500, 503 and 504) carry them too.

`tailor collect` hands the protocol class to uvicorn. `bentoml serve` builds uvicorn's
settings itself and offers no parser option, so `use_in_bentoml_workers` names the protocol
as uvicorn's `auto` parser: each worker imports the service module (which calls it) before
its uvicorn server resolves the parser by that name (`uvicorn.config.HTTP_PROTOCOLS`).
A test against a real `bentoml serve` keeps that true for the pinned versions.
"""

from __future__ import annotations

import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from tailor.web.security_headers import (
    API_HEADERS,
    ASGIApp,
    Receive,
    Scope,
    SecurityHeadersMiddleware,
    Send,
)

# What `uvicorn.config.HTTP_PROTOCOLS["auto"]` resolves to once `use_in_bentoml_workers` ran.
WORKER_PROTOCOL_NAME = f"{__name__}:BENTOML_WORKER_PROTOCOL"
BENTOML_WORKER_PROTOCOL: type[H11Protocol] | None = None


def _error_body(status: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a JSON `{"error": message}` answer that closes the connection."""
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode("ascii")),
               (b"connection", b"close"), *API_HEADERS]
    return headers, body


def too_many_headers(count: int, max_headers: int) -> str:
    """The message of a 431 for too many headers."""
    return (f"request has {count:,} headers, over the limit of {max_headers:,}; send fewer "
            "headers (the server's max_header_count setting)")


def head_too_large(max_bytes: int) -> str:
    """The message of a 431 for an oversized request head."""
    return (f"request headers too large: the request line and headers are over "
            f"{max_bytes:,} bytes (the server's max_header_bytes setting); send smaller "
            "headers (a key is 47 characters)")


class HeaderCountGuard:
    """An ASGI wrapper that answers 431 to a request with more than `max_headers` headers."""

    def __init__(self, app: ASGIApp, max_headers: int) -> None:
        self.app = app
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        count = len(scope.get("headers", ()))
        if scope["type"] != "http" or count <= self.max_headers:
            await self.app(scope, receive, send)
            return
        headers, body = _error_body(431, too_many_headers(count, self.max_headers))
        await send({"type": "http.response.start", "status": 431, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _HeaderLimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the limits of the class attributes (see the module)."""

    max_head_bytes: int = 16_384
    max_headers: int = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_bytes)
        self.app = HeaderCountGuard(SecurityHeadersMiddleware(self.app), self.max_headers)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 cannot read: 431 when the head is too large,
        else 400; JSON with the security headers either way, then the connection closes."""
        if len(self.conn.trailing_data[0]) > self.max_head_bytes:
            status, reason = 431, b"Request Header Fields Too Large"
            message = head_too_large(self.max_head_bytes)
        else:
            status, reason = 400, b"Bad Request"
            message = "malformed HTTP request: not a valid HTTP/1.1 request line and headers"
        headers, body = _error_body(status, message)
        for event in (h11.Response(status_code=status, headers=headers, reason=reason),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def header_limited_protocol(max_head_bytes: int, max_headers: int) -> type[H11Protocol]:
    """A uvicorn HTTP protocol class (h11) that refuses heads over `max_head_bytes` bytes and
    requests with more than `max_headers` headers with 431.

    Raises:
        ValueError: a limit is not positive.
    """
    if max_head_bytes < 1 or max_headers < 1:
        raise ValueError(f"header limits must be positive, got {max_head_bytes} bytes and "
                         f"{max_headers} headers")
    return type("HeaderLimitedH11Protocol", (_HeaderLimitedH11Protocol,),
                {"max_head_bytes": max_head_bytes, "max_headers": max_headers})


def use_in_bentoml_workers(max_head_bytes: int, max_headers: int) -> None:
    """Make this process's uvicorn servers that ask for the `auto` parser (as BentoML's
    workers do) use `header_limited_protocol(max_head_bytes, max_headers)`."""
    import uvicorn.config

    global BENTOML_WORKER_PROTOCOL
    BENTOML_WORKER_PROTOCOL = header_limited_protocol(max_head_bytes, max_headers)
    uvicorn.config.HTTP_PROTOCOLS["auto"] = WORKER_PROTOCOL_NAME
