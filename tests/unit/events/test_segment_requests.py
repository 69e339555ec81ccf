"""Reading a Segment body: msgspec's fast reader gives what the standard library's scanner
gives (the document's keys that are read, and each batch element's size as sent), and the
bodies only Python's `json` reads still go the old way."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from tailor.events.collector.requests import RequestError
from tailor.events.collector.segment_requests import (
    MAX_EVENT_BYTES,
    _read_slowly,
    parse_request,
    read_document,
)

READ_KEYS = ("batch", "sentAt", "writeKey")  # what the routes read from a batch body
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
MESSAGES = st.lists(st.one_of(st.dictionaries(st.text(max_size=8), VALUES, max_size=5), SCALARS),
                    max_size=6)


def body_of(document: dict[str, Any], spaces: bool, ascii_only: bool) -> bytes:
    separators = (" , ", " : ") if spaces else (",", ":")
    return json.dumps(document, separators=separators, ensure_ascii=ascii_only).encode()


@settings(max_examples=60, deadline=None, database=None)
@given(messages=MESSAGES, filler=st.integers(0, 40_000), spaces=st.booleans(),
       ascii_only=st.booleans(), extra=st.dictionaries(st.sampled_from(
           ["sentAt", "writeKey", "context", "integrations"]), SCALARS, max_size=3))
def test_the_fast_reader_reads_what_the_scanner_reads(messages: list[Any], filler: int,
                                                      spaces: bool, ascii_only: bool,
                                                      extra: dict[str, Any]) -> None:
    # A filler element takes about half the bodies past 32 KB, where the sizes are read.
    batch = [*messages, {"blob": "é" * (filler // 2)}]
    body = body_of({**extra, "batch": batch}, spaces, ascii_only)
    fast, fast_sizes = read_document(body)
    slow, slow_sizes = _read_slowly(body)
    assert {key: fast.get(key) for key in READ_KEYS} == {key: slow.get(key) for key in READ_KEYS}
    if len(body) > MAX_EVENT_BYTES:  # each element's UTF-8 bytes as sent, as Segment counts
        separators = (" , ", " : ") if spaces else (",", ":")
        assert fast_sizes == [len(json.dumps(item, separators=separators,
                                             ensure_ascii=ascii_only).encode()) for item in batch]
        # The scanner counts characters where an element cannot reach 32 KB: same verdicts.
        assert [size > MAX_EVENT_BYTES for size in fast_sizes] == \
            [size > MAX_EVENT_BYTES for size in slow_sizes]


def test_an_event_over_32_kb_in_utf8_bytes_is_refused_by_its_position() -> None:
    under = {"type": "track", "event": "Product Viewed", "properties": {"x": "a" * 20_000}}
    over = {"type": "track", "event": "Product Viewed", "properties": {"x": "é" * 17_000}}
    body = json.dumps({"batch": [under, over]}, ensure_ascii=False).encode()
    with pytest.raises(RequestError) as refused:  # 17,000 characters, 34,000 bytes
        parse_request(body, batch_call=True)
    assert refused.value.status == 400 and "batch[1]" in refused.value.message


def test_what_only_pythons_json_reads_still_goes_the_old_way() -> None:
    body = b'{"batch": [{"type": "track", "properties": {"ratio": NaN, "big": 1e400}}], ' \
           b'"sentAt": "2026-03-01T10:00:00Z", "filler": "' + b"f" * MAX_EVENT_BYTES + b'"}'
    document, sizes = read_document(body)
    properties = document["batch"][0]["properties"]
    assert math.isnan(properties["ratio"]) and properties["big"] == math.inf
    assert document["sentAt"] == "2026-03-01T10:00:00Z"
    assert sizes == [len(b'{"type": "track", "properties": {"ratio": NaN, "big": 1e400}}')]
    surrogate, _ = read_document(b'{"batch": [{"userId": "\\ud800"}]}')
    assert surrogate["batch"][0]["userId"] == "\ud800"


@pytest.mark.parametrize(("body", "batch_call", "words"), [
    (b'{"batch": [', True, "malformed JSON: Expecting value at line 1 column 12"),
    (b'{"batch": {"a": 1}}' + b" " * MAX_EVENT_BYTES, True, "batch: missing or not a list"),
    (b"[1, 2]", True, "body must be a JSON object"),
    (b'{"type": "track"} trailing', False, "malformed JSON: Extra data"),
    (b'{"userId": "\xff"}', False, "not UTF-8"),
])
def test_refusals_keep_their_words(body: bytes, batch_call: bool, words: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_request(body, batch_call)
    assert refused.value.status == 400 and words in refused.value.message
