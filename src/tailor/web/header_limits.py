"""Limits on how requests arrive for both servers: the size of a request's head and the
number of its headers (431 before the app sees the request), and how long a request may
stall half-sent (408).

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
  500, 503 and 504) carry them too;
- a read timeout: a request whose head or body stops arriving for `read_timeout` seconds
  (a slow-loris client that sends half a request and stalls; `serving.read_timeout_seconds`,
  `collector.read_timeout_seconds`) gets 408 when no answer has started, the app sees the
  client disconnect (so nothing from the half-sent body is stored), and the connection
  closes. Time the server itself is not reading (flow control while the app is busy)
  does not count. A fresh connection that sends nothing is closed after the same time.

`tailor collect` hands the protocol class to uvicorn. `bentoml serve` builds uvicorn's
settings itself and offers no parser option, so `use_in_bentoml_workers` names the protocol
as uvicorn's `auto` parser: each worker imports the service module (which calls it) before
its uvicorn server resolves the parser by that name (`uvicorn.config.HTTP_PROTOCOLS`).
A test against a real `bentoml serve` keeps that true for the pinned versions.
"""

from __future__ import annotations

import asyncio
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
    read_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_bytes)
        self.app = HeaderCountGuard(SecurityHeadersMiddleware(self.app), self.max_headers)
        self.read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_timer(fresh=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def _cancel_read_timer(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def _mid_request(self) -> bool:
        """Whether part of a request has arrived and the rest is awaited."""
        if self.conn.their_state is h11.SEND_BODY:
            return True
        return self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])

    def _arm_read_timer(self, fresh: bool = False) -> None:
        """(Re)start the read timeout while a request is half-received (or on a fresh
        connection that has sent nothing yet)."""
        self._cancel_read_timer()
        if fresh or self._mid_request():
            self.read_timer = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _read_timed_out(self) -> None:
        """No byte for `read_timeout` seconds mid-request: 408 if no answer started, the
        app told the client left, the connection closed."""
        self.read_timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.flow is not None and self.flow.read_paused:  # we are not reading: not its fault
            self._arm_read_timer()
            return
        cycle = self.cycle
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE) and self._mid_request() and \
                (cycle is None or not cycle.response_started):
            headers, body = _error_body(408, f"request not received in time: nothing arrived for "
                                             f"{self.read_timeout:g} s (read_timeout_seconds)")
            try:
                for event in (h11.Response(status_code=408, headers=headers,
                                           reason=b"Request Timeout"),
                              h11.Data(data=body), h11.EndOfMessage()):
                    self.transport.write(self.conn.send(event))
            except h11.LocalProtocolError:
                pass
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's next receive() is http.disconnect
            cycle.message_event.set()
        self.transport.close()

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


def header_limited_protocol(max_head_bytes: int, max_headers: int,
                            read_timeout: float = 10.0) -> type[H11Protocol]:
    """A uvicorn HTTP protocol class (h11) that refuses heads over `max_head_bytes` bytes and
    requests with more than `max_headers` headers with 431, and half-sent requests that
    stall for `read_timeout` seconds with 408.

    Raises:
        ValueError: a limit is not positive.
    """
    if max_head_bytes < 1 or max_headers < 1 or not read_timeout > 0:
        raise ValueError(f"header limits and the read timeout must be positive, got "
                         f"{max_head_bytes} bytes, {max_headers} headers, {read_timeout} s")
    return type("HeaderLimitedH11Protocol", (_HeaderLimitedH11Protocol,),
                {"max_head_bytes": max_head_bytes, "max_headers": max_headers,
                 "read_timeout": float(read_timeout)})


def use_in_bentoml_workers(max_head_bytes: int, max_headers: int,
                           read_timeout: float = 10.0) -> None:
    """Make this process's uvicorn servers that ask for the `auto` parser (as BentoML's
    workers do) use `header_limited_protocol(max_head_bytes, max_headers, read_timeout)`."""
    import uvicorn.config

    global BENTOML_WORKER_PROTOCOL
    BENTOML_WORKER_PROTOCOL = header_limited_protocol(max_head_bytes, max_headers,
                                                      read_timeout)
    uvicorn.config.HTTP_PROTOCOLS["auto"] = WORKER_PROTOCOL_NAME
