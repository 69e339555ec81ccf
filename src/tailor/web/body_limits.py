"""The request-body size limit both servers apply: a declared Content-Length checked first,
then the bytes actually received counted, so a missing or lying header cannot make a
server read more than the limit.

Reads nothing and writes nothing: the callers (`tailor.events.collector` on a Starlette
request, `tailor.serving.http.BodyLimitMiddleware` on raw ASGI messages) feed it the
header and the chunks, and turn its `BodyLimitError` into their own answers.
"""

from __future__ import annotations


class BodyLimitError(Exception):
    """A body refused: 400 for a malformed Content-Length, 413 for one over the limit.

    Attributes:
        status: the HTTP status to answer with.
        declared: the Content-Length header as sent (400), else None.
        declared_bytes: the size the header declared (413 before reading), else None.
    """

    def __init__(self, status: int, *, declared: str | None = None,
                 declared_bytes: int | None = None) -> None:
        super().__init__(f"request body refused with {status}")
        self.status = status
        self.declared = declared
        self.declared_bytes = declared_bytes


def check_declared_length(declared: str | None, max_bytes: int) -> None:
    """Refuse a Content-Length that is not a whole number, or one over `max_bytes`.

    Args:
        declared: the Content-Length header, or None when the request has none.
        max_bytes: the largest body accepted.

    Raises:
        BodyLimitError: 400 (with `declared`) or 413 (with `declared_bytes`).
    """
    if declared is None:
        return
    if not declared.strip().isdigit():
        raise BodyLimitError(400, declared=declared)
    if int(declared) > max_bytes:
        raise BodyLimitError(413, declared_bytes=int(declared))


class CappedBody:
    """The chunks of a body as they arrive, refused as soon as they pass `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._body = bytearray()

    def add(self, chunk: bytes) -> None:
        """Append a received chunk.

        Raises:
            BodyLimitError: 413 once the body is over the limit.
        """
        self._body += chunk
        if len(self._body) > self.max_bytes:
            raise BodyLimitError(413)

    def bytes(self) -> bytes:
        """The body received so far."""
        return bytes(self._body)
