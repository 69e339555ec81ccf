"""Reading a collector request: its content type, its body (within the size limit) and
the batch in it.

Reads the request's headers and body; writes nothing. Refusals are `RequestError`s that
carry the HTTP status the routes answer with.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from starlette.requests import ClientDisconnect, Request

from tailor.web.body_limits import BodyLimitError, CappedBody, check_declared_length

ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")  # sendBeacon sends text/plain


class RequestError(Exception):
    """A request the collector refuses: the HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}  # e.g. Retry-After on 429, WWW-Authenticate on 401


def check_content_type(request: Request) -> None:
    """Accept JSON or plain text bodies (sendBeacon's text/plain), uncompressed; else 415."""
    body_encoding(request, ACCEPTED_CONTENT_TYPES, ("", "identity"),
                  "send application/json (or text/plain from sendBeacon)",
                  "send the body uncompressed")


def body_encoding(request: Request, media_types: tuple[str, ...], encodings: tuple[str, ...],
                  send_type: str, send_encoding: str) -> str:
    """The request's content encoding (lower case, "" when absent) once its media type is one
    of `media_types` and its encoding one of `encodings`; else 415 saying what to send."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in media_types:
        raise RequestError(415, f"Content-Type {media_type or '(none)'!r} is not accepted; "
                                f"{send_type}")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in encodings:
        raise RequestError(415, f"Content-Encoding {encoding!r} is not supported; "
                                f"{send_encoding}")
    return encoding


async def read_capped_body(request: Request, max_bytes: int,
                           limit_name: str = "collector.max_batch_bytes") -> bytes:
    """The request body, refusing (413) as soon as it exceeds `max_bytes`.

    The declared Content-Length is checked first, but the count of bytes actually
    received is what holds: a missing or lying header cannot make the collector read more.
    `limit_name` says in the 413's message which limit it was (a setting, or a fixed one).
    """
    body = CappedBody(max_bytes)
    try:
        check_declared_length(request.headers.get("content-length"), max_bytes)
        async for chunk in request.stream():
            body.add(chunk)
    except ClientDisconnect:  # gone, or timed out half-sent (tailor.web.header_limits)
        raise RequestError(400, "the client disconnected before the body was complete; "
                                "nothing was stored") from None
    except BodyLimitError as error:
        if error.declared is not None:
            raise RequestError(400, f"Content-Length {error.declared[:20]!r} is not a number") \
                from None
        if error.declared_bytes is not None:
            raise RequestError(413, f"body of {error.declared_bytes:,} bytes is over the limit "
                                    f"of {max_bytes:,} bytes ({limit_name})") from None
        raise RequestError(413, f"body is over the limit of {max_bytes:,} bytes "
                                f"({limit_name})") from None
    return body.bytes()


def parse_batch(body: bytes, max_events: int) -> tuple[datetime | None, list[Any]]:
    """The client's `sent_at` and the list of raw events from a request body.

    Args:
        body: `{"sent_at": ISO or epoch seconds, "events": [...]}`, or a bare list of events.
        max_events: the most events one batch may hold.

    Returns:
        `(sent_at or None, events)`; events are not checked here, one by one, but later.

    Raises:
        RequestError: 400 for text that is not JSON or the wrong shape, 413 for too many events.
    """
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise RequestError(400, "malformed JSON: the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"malformed JSON: {error.msg} at line {error.lineno} "
                                f"column {error.colno}") from None
    except ValueError as error:  # from _refuse_constant
        raise RequestError(400, f"malformed JSON: {error}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    sent_at = None
    if isinstance(document, dict):
        events = document.get("events")
        if not isinstance(events, list):
            raise RequestError(400, "events: missing or not a list; send "
                                    '{"sent_at": "<ISO time>", "events": [{...}, ...]}')
        sent_at = parse_sent_at(document.get("sent_at"))
    elif isinstance(document, list):
        events = document
    else:
        raise RequestError(400, "body must be a JSON object with an events list, or a list")
    if len(events) > max_events:
        raise RequestError(413, f"batch of {len(events):,} events is over the limit of "
                                f"{max_events:,} (collector.max_batch_events); split it")
    return sent_at, events


def _refuse_constant(name: str) -> None:
    """Python's json module reads NaN and Infinity; JSON has no such numbers."""
    raise ValueError(f"{name} is not a JSON number")


def parse_sent_at(value: Any) -> datetime | None:
    """`sent_at` as an aware UTC datetime (ISO 8601, naive meaning UTC, or epoch seconds).

    Raises:
        RequestError: 400 when it is present but cannot be read as a time.
    """
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(value)
            return datetime.fromtimestamp(value, tz=timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed
    except (ValueError, OverflowError, OSError):
        pass
    raise RequestError(400, f"sent_at: cannot parse {str(value)[:40]!r} as ISO 8601 or epoch "
                            "seconds")
