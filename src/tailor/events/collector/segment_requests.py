"""Reading a Segment HTTP Tracking API request: its write key, its (gzip) body within
Segment's limits, and its messages.

Reads the request's headers and body; writes nothing. Refusals are `RequestError`s with
the status Segment answers with: 400 for a body over 500 KB or an event over 32 KB, for
JSON that cannot be read and for a body that is not gzip though it says so; 415 for a
content type or encoding the API does not take.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import msgspec
from starlette.requests import Request

from tailor.events.collector.requests import RequestError, body_encoding, read_capped_body

MAX_BATCH_BYTES = 500 * 1024  # Segment's limit for one /v1/batch request (the JSON, unpacked)
MAX_EVENT_BYTES = 32 * 1024  # Segment's limit for one call, alone or inside a batch
ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")  # analytics.js may send text/plain
ENCODINGS = ("", "identity", "gzip")


@dataclass
class SegmentRequest:
    """One request's messages, its batch-level `sentAt` and the write key in its body."""

    messages: list[Any]
    sent_at: Any
    body_write_key: str | None
    body_bytes: int


def basic_auth_user(request: Request) -> str | None:
    """The user of `Authorization: Basic` (Segment's write key), or None without one.

    Raises:
        RequestError: 401 when the header is Basic but cannot be decoded.
    """
    header = request.headers.get("authorization", "")
    if not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise RequestError(401, "Authorization: Basic credentials are not base64 of "
                                "'<write key>:'") from None
    return decoded.partition(":")[0].strip() or None


def check_encoding(request: Request) -> str:
    """The body's content encoding (`gzip` or ""); 415 for any other type or encoding."""
    encoding = body_encoding(request, ACCEPTED_CONTENT_TYPES, ENCODINGS,
                             "send application/json",
                             "send gzip or an uncompressed body")
    return "gzip" if encoding == "gzip" else ""


async def read_body(request: Request, encoding: str) -> bytes:
    """The body as JSON bytes, unpacked, refused (400) past `MAX_BATCH_BYTES`.

    The packed body is capped at the same size while it is read, and unpacking stops one
    byte past the limit, so neither a large body nor a small gzip bomb is ever held.
    """
    try:
        raw = await read_capped_body(request, MAX_BATCH_BYTES)
    except RequestError as error:
        if error.status != 413:
            raise
        raise RequestError(400, f"body over {MAX_BATCH_BYTES // 1024} KB: Segment's batch limit "
                                "is 500 KB (32 KB per event); send smaller batches") from None
    if encoding != "gzip":
        return raw
    unpacker = zlib.decompressobj(wbits=31)  # gzip header and trailer
    try:
        body = unpacker.decompress(raw, MAX_BATCH_BYTES + 1)
        if len(body) <= MAX_BATCH_BYTES and not unpacker.unconsumed_tail:
            body += unpacker.flush()
    except zlib.error:
        raise RequestError(400, "Content-Encoding is gzip but the body is not gzip data") \
            from None
    if len(body) > MAX_BATCH_BYTES or unpacker.unconsumed_tail:
        raise RequestError(400, f"body over {MAX_BATCH_BYTES // 1024} KB once unpacked: "
                                "Segment's batch limit is 500 KB; send smaller batches")
    if not unpacker.eof:
        raise RequestError(400, "gzip body is truncated")
    return body


def read_document(body: bytes, batch_call: bool = True
                  ) -> tuple[dict[str, Any], list[int] | None]:
    """The body's JSON object, and the size of each element of its `batch` list as sent
    (None when the sizes were not needed or the body was not scanned element by element).

    The common body is read by msgspec's C decoder in one pass (`_decode`); a body it does
    not take (malformed JSON, but also what Python's `json` reads and msgspec does not:
    `NaN`, numbers past a double, lone surrogates) goes the way it always went: the
    standard library's scanner, whose errors name the problem.

    Args:
        body: the request's JSON, unpacked.
        batch_call: the body is a batch (`/v1/batch`, `/v1/b`), not a single call; for
            such a body over 32 KB the `batch` list is split without decoding first, so
            each element's size as sent costs nothing extra.

    Raises:
        RequestError: 400 for a body that is not UTF-8 JSON, or not an object.
    """
    try:
        document, sizes = _decode(body, batch_call)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        document, sizes = _read_slowly(body)
    if not isinstance(document, dict):
        raise RequestError(400, "body must be a JSON object (a call, or {\"batch\": [...]})")
    return document, sizes


class _Batch(msgspec.Struct):
    """What a batch body is read for: its `batch` list, each element left as the bytes
    sent (`msgspec.Raw`), and the batch-level `sentAt` and `writeKey`; any other key is
    checked for JSON syntax and dropped, as nothing reads it."""

    batch: list[msgspec.Raw] | None = None
    sentAt: Any = None  # Segment's names
    writeKey: Any = None


_ANY = msgspec.json.Decoder()
_SPLIT = msgspec.json.Decoder(_Batch)


def _decode(body: bytes, batch_call: bool) -> tuple[Any, list[int] | None]:
    """The body by msgspec: all of it at once, or (a batch over 32 KB, where each element's
    size matters) the `batch` list split into the elements' bytes, then each decoded.

    Raises:
        msgspec.MsgspecError, ValueError, RecursionError: whatever msgspec does not read
            as Python's `json` would; the caller takes the slow path.
    """
    if not batch_call or len(body) <= MAX_EVENT_BYTES:
        return _ANY.decode(body), None
    split = _SPLIT.decode(body)
    if split.batch is None:  # no list: the slow path words the refusal
        raise ValueError("batch is not a list")
    decode = _ANY.decode
    document = {"batch": [decode(item) for item in split.batch]}
    if split.sentAt is not None:
        document["sentAt"] = split.sentAt
    if split.writeKey is not None:
        document["writeKey"] = split.writeKey
    return document, [len(item) for item in split.batch]


def _read_slowly(body: bytes) -> tuple[Any, list[int] | None]:
    """The body by the standard library's C scanner (value by value, with the batch's
    element sizes), else `json.loads`, whose errors become the 400's message."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "malformed JSON: the body is not UTF-8 text") from None
    try:
        return _scan_document(text)
    except (ValueError, StopIteration, RecursionError, IndexError):
        return _loads(text), None  # the standard parser names the problem


def body_write_key(document: dict[str, Any]) -> str | None:
    """The `writeKey` a body carries (analytics.js sends it there), or None."""
    key = document.get("writeKey")
    return (key.strip() or None) if isinstance(key, str) else None


def parse_request(body: bytes, batch_call: bool) -> SegmentRequest:
    """The messages of a body: a batch's `batch` list, or the single call itself.

    Raises:
        RequestError: 400 for JSON that cannot be read, a body that is not an object, a
            batch without a `batch` list, or a call over 32 KB (alone, or inside a batch).
    """
    document, sizes = read_document(body, batch_call)
    return request_messages(document, sizes, len(body), batch_call)


def request_messages(document: dict[str, Any], sizes: list[int] | None, body_bytes: int,
                     batch_call: bool) -> SegmentRequest:
    """A read body's messages, checked against Segment's limits (see `parse_request`)."""
    key = body_write_key(document)
    if not batch_call:
        if body_bytes > MAX_EVENT_BYTES:
            raise RequestError(400, f"call of {body_bytes:,} bytes is over Segment's 32 KB "
                                    "limit")
        return SegmentRequest([document], document.get("sentAt"), key, body_bytes)
    messages = document.get("batch")
    if not isinstance(messages, list):
        raise RequestError(400, "batch: missing or not a list; send {\"batch\": [{...}], "
                                "\"sentAt\": \"<ISO time>\"}")
    if body_bytes > MAX_EVENT_BYTES:
        for index, size in enumerate(sizes if sizes is not None else _sizes(messages)):
            if size > MAX_EVENT_BYTES:
                raise RequestError(400, f"batch[{index}]: event of {size:,} bytes is over "
                                        "Segment's 32 KB limit per event")
    return SegmentRequest(messages, document.get("sentAt"), key, body_bytes)


def _loads(text: str) -> Any:
    """`json.loads`, its errors as 400s naming line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RequestError(400, f"malformed JSON: {error.msg} at line {error.lineno} "
                                f"column {error.colno}") from None
    except (ValueError, RecursionError):
        raise RequestError(400, "malformed JSON: nested too deeply or not JSON") from None


_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner
_SPACES = " \t\n\r"


def _skip(text: str, at: int) -> int:
    """The position of the first character at or after `at` that is not JSON whitespace."""
    while at < len(text) and text[at] in _SPACES:
        at += 1
    return at


def _scan_document(text: str) -> tuple[dict[str, Any], list[int] | None]:
    """The top-level object, read with the C scanner value by value, and the size in bytes
    of each element of its `batch` list as sent (what the libraries count), so the 32 KB
    rule costs no second encoding. Anything unusual raises, and the caller falls back to
    `json.loads` (which then names the problem).
    """
    at = _skip(text, 0)
    if text[at] != "{":
        raise ValueError("not an object")
    document: dict[str, Any] = {}
    sizes: list[int] | None = None
    at = _skip(text, at + 1)
    if text[at] == "}":
        return document, sizes
    while True:
        if text[at] != '"':
            raise ValueError("key expected")
        key, at = _SCAN(text, at)
        at = _skip(text, at)
        if text[at] != ":":
            raise ValueError("colon expected")
        at = _skip(text, at + 1)
        if key == "batch" and text[at] == "[":
            document[key], sizes, at = _scan_list(text, at)
        else:
            document[key], at = _SCAN(text, at)
        at = _skip(text, at)
        if text[at] == "}":
            if _skip(text, at + 1) != len(text):
                raise ValueError("extra data")
            return document, sizes
        if text[at] != ",":
            raise ValueError("comma expected")
        at = _skip(text, at + 1)


def _scan_list(text: str, at: int) -> tuple[list[Any], list[int], int]:
    """A JSON list starting at `at`: its items, each item's size in UTF-8 bytes, the end."""
    items: list[Any] = []
    sizes: list[int] = []
    at = _skip(text, at + 1)
    if text[at] == "]":
        return items, sizes, at + 1
    while True:
        item, end = _SCAN(text, at)
        items.append(item)
        span = end - at  # characters; bytes only when they could matter
        sizes.append(span if span * 4 <= MAX_EVENT_BYTES or text[at:end].isascii()
                     else len(text[at:end].encode("utf-8")))
        at = _skip(text, end)
        if text[at] == "]":
            return items, sizes, at + 1
        if text[at] != ",":
            raise ValueError("comma expected")
        at = _skip(text, at + 1)


def _sizes(messages: list[Any]) -> list[int]:
    """Each message's size as compact JSON (when the body was not scanned)."""
    return [len(json.dumps(message, separators=(",", ":"), ensure_ascii=False,
                           default=str).encode("utf-8")) for message in messages]


def read_sent_at(value: Any) -> datetime | None:
    """A `sentAt` as an aware datetime; None when absent or unreadable (Segment does not
    refuse a call for it: its timestamps are then taken as sent)."""
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None
