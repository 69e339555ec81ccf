"""Raw HTTP/1.1 over a socket, for requests httpx would not send as they are: oversized
request heads sent without their end, and thousands of headers.

Reads nothing and writes nothing but the socket.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

SECURITY_HEADERS = ("x-content-type-options", "content-security-policy", "x-frame-options",
                    "referrer-policy")


@dataclass
class RawAnswer:
    """What came back: the status (0 when nothing readable did), headers, body, and how many
    bytes of the request were sent before the server stopped taking them."""

    status: int
    headers: dict[str, str]
    body: bytes
    sent: int


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return 0, {}, data
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def send_raw(url: str, head: bytes, *, chunk: int = 65_536, repeat_last: int = 0,
             timeout: float = 30.0) -> RawAnswer:
    """Send `head` (and then its last chunk again `repeat_last` times) to the server of `url`,
    stopping as soon as the server closes; then read whatever it answered.

    A server that waits for the rest of an oversized head never answers: the read times out
    and the status is 0.
    """
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            for start in range(0, len(head), chunk):
                sent += sock.send(head[start:start + chunk])
            for _ in range(repeat_last):
                sent += sock.send(head[-chunk:])
        except OSError:  # the server closed the connection: the answer may be waiting
            pass
        data = b""
        try:
            while True:
                received = sock.recv(65_536)
                if not received:
                    break
                data += received
                status, headers, body = _parse(data)
                length = headers.get("content-length")
                if status and length is not None and len(body) >= int(length):
                    break
        except OSError:  # a timeout (no answer) or a reset after the answer
            pass
    status, headers, body = _parse(data)
    return RawAnswer(status=status, headers=headers, body=body, sent=sent)


def oversized_header(path: str, size: int, name: str = "X-Tailor-Key") -> bytes:
    """A request head whose one header value is `size` bytes, without the blank line that
    would end it (the server must refuse before the end arrives)."""
    return (f"GET {path} HTTP/1.1\r\nHost: probe\r\n{name}: ".encode("ascii") + b"a" * size)


def many_headers(path: str, count: int, extra: str = "") -> bytes:
    """A complete request head with `count` small headers."""
    lines = "".join(f"X-Probe-{number}: {number}\r\n" for number in range(count))
    return f"GET {path} HTTP/1.1\r\nHost: probe\r\n{extra}{lines}Connection: close\r\n\r\n".encode()


def assert_oversized_heads_are_refused(url: str, path: str) -> None:
    """A 20 KB header gets 431 (JSON, with the security headers); a 50 MB one is cut off
    long before its end (the probe's key), so the server never reads it whole."""
    answer = send_raw(url, oversized_header(path, 20_000))
    assert answer.status == 431, answer
    assert "request headers too large" in answer.body.decode()
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    huge = send_raw(url, oversized_header(path, 65_536), repeat_last=800, timeout=10.0)
    assert huge.sent < 50_000_000, f"the server read all {huge.sent:,} bytes"
