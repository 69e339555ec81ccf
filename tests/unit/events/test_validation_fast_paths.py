"""Every fast path decides exactly as the general one: the vectorised (Arrow) paths of
`validate_events` as its lenient pandas paths (text as Python objects or as Arrow strings,
how file import hands it over), and the collector's `validate_records` on JSON objects as
`validate_events` on a frame of the same events: same valid rows, same rejections."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from tailor.events.records import records_frame, split_plain, validate_records
from tailor.events.schema import ValidationResult, parse_timestamps, validate_events

NOW = pd.Timestamp("2026-03-01T12:00:00Z")
TIMESTAMPS = ["2026-01-01T00:00:00Z", "1767225600", "2026-01-01 01:00:00+01:00", "x",
              "2026-01-01", "2026-01-01T00:00", "2026-13-01T00:00:00Z", " 1767225600.5 ",
              "2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:00+0100", "Jan 1 2026",
              "1767225600000", None, "  "]
PRICES = ["3.", ".5", "1e3", "+2", "-1", "0x10", "1_000", "inf", "NaN", " ", " 7 ", "abc", None,
          "4"]


def raw_rows() -> pd.DataFrame:
    n_rows = len(TIMESTAMPS)
    return pd.DataFrame({
        "event_id": [f"e{i}" if i % 5 else None for i in range(n_rows)],
        "customer_id": [" c1 ", "c2", "", None, "c5", "c6", "c7", "c8", "c9", "c10", "c11",
                        "c12", "c13", "c" * 600],
        "event_type": ["purchase", "page_view", "search", "purchase", "nope", "page_view",
                       "page_view", "add_to_cart", "page_view", "click", "page_view",
                       "page_view", "email_open", "page_view"],
        "product_id": ["p1", None, None, "p2", None, None, None, "p3", None, None, None, None,
                       None, None],
        "timestamp": TIMESTAMPS,
        "price": PRICES,
        "quantity": ["2", None, None, "0", "1.5", None, None, "1", None, None, None, None, None,
                     None],
        "properties": ['{"a": 1}', None, None, "{oops", "", "[1]", None, None, None, None,
                       None, None, None, None],
    })


def test_arrow_text_and_object_text_validate_identically() -> None:
    objects = raw_rows()
    arrow = objects.astype(pd.ArrowDtype(pa.string()))
    from_objects = validate_events(objects, now=NOW, first_row_number=10)
    from_arrow = validate_events(arrow, now=NOW, first_row_number=10)
    pd.testing.assert_frame_equal(from_objects.valid, from_arrow.valid)
    pd.testing.assert_frame_equal(from_objects.rejected.drop(columns="raw"),
                                  from_arrow.rejected.drop(columns="raw"))
    assert len(from_objects.valid) + len(from_objects.rejected) == len(objects)
    assert set(from_objects.rejected["reason"]) >= {"malformed_row", "missing_customer_id"}


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-01-01T00:00:00+0100", "2025-12-31T23:00:00Z"),
    (" 1767225600.5 ", "2026-01-01T00:00:00.5Z"),
    ("2026-01-01", "2026-01-01T00:00:00Z"),
    ("Jan 1 2026", "2026-01-01T00:00:00Z"),  # only pandas reads this: the fallback still does
])
def test_timestamp_forms(text: str, expected: str) -> None:
    for values in (pd.Series([text, "1767225600"]),
                   pd.Series([text, "1767225600"], dtype=pd.ArrowDtype(pa.string()))):
        assert parse_timestamps(values).iloc[0] == pd.Timestamp(expected)


def test_an_impossible_date_is_unparseable_not_a_crash() -> None:
    parsed = parse_timestamps(pd.Series(["2026-13-01T00:00:00Z", "2026-01-01T00:00:00Z"]))
    assert pd.isna(parsed.iloc[0]) and parsed.iloc[1] == pd.Timestamp("2026-01-01T00:00:00Z")


# -- the collector's fast path for JSON objects ------------------------------------------------

VALID_EVENT = {"event_id": "e1", "customer_id": "c1", "event_type": "product_view",
               "product_id": "p1", "timestamp": "2026-02-01T12:00:00Z", "session_id": "s1"}
# Each field's values: the plain forms the fast path takes, and forms and faults it must hand on.
FIELD_VALUES: dict[str, list] = {
    "timestamp": ["2026-02-01T12:00:00Z", "2026-02-01T12:00:00.5Z", "2026-02-01 12:00:00-05:30",
                  "2026-02-01T12:00:00.123456789+01:00", "2026-02-01T12:00:00", 1769947200,
                  1769947200.25, " 2026-02-01T12:00:00Z ", "2026-02-30T00:00:00Z",
                  "2026-02-01T24:00:00Z", "2026-02-01T12:00Z", "2026-02-01", "1769947200",
                  "Feb 1 2026", "2027-01-01T00:00:00Z", "2026-03-01T12:04:59.999999999Z",
                  "2026-03-01T12:05:00.000000001Z", None, "", "soon", 1e12, "1677-06-01T00:00:00Z",
                  10 ** 30, 1e300, "2026-02-01T12:00:00Z\ud800"],
    "price": [None, 12, 12.5, "12.5", " 3 ", "3.", ".5", "1e3", "-1", 0, "0", "abc", "inf",
              "1_000", "", 2 ** 60, 1e300, 10 ** 30, 2e12, "1e400"],
    "quantity": [None, 1, 2.0, "3", 0, 1.5, "x", -1, 10 ** 30, 2_000_000, "1e7"],
    "customer_id": ["c1", " c1 ", "", None, 12, 12.5, "c" * 513, "c" * 512, 2 ** 60,
                    "\u00a0c\u00a0", "\ud800", "c\udfff1", 10 ** 30, 1e300],
    "event_type": ["product_view", "page_view", "nope", None, "", " purchase "],
    "product_id": ["p1", None, "", 5, "p\x001"],
    "properties": [None, {"b": 1, "a": [1, 2]}, '{"x": 1}', "[1]", "{oops", "", 5, [1],
                   {"a": "\ud800"}, {"\udc00": 1}, {"n": 10 ** 30}, '{"n": NaN}',
                   {"emoji": "\U0001f600"}],
    "event_id": ["e1", None, "", " e1 ", 10 ** 40],
    "query": [None, "q" * 600, "linen shirt", "linen\x00shirt", "linen \ud83d shirt"],
}


def event_variants(seed: int = 3, mixed: int = 200) -> list[dict]:
    """One event per (field, value), then events mixing random values of every field."""
    import random

    events = [{**VALID_EVENT, "event_id": f"v{field}{number}", field: value}
              for field, values in FIELD_VALUES.items() for number, value in enumerate(values)]
    chooser = random.Random(seed)
    events += [{field: chooser.choice(values) for field, values in FIELD_VALUES.items()}
               for _ in range(mixed)]
    return events


def frame_path(events: list[dict], **options) -> ValidationResult:
    """What the collector did before the fast path: one frame through `validate_events`."""
    return validate_events(records_frame(events), now=NOW, **options)


@pytest.mark.parametrize(("size", "count"), [(1, 60), (13, None), (500, None)])
def test_the_fast_path_and_the_frame_path_agree_on_every_event(size: int,
                                                               count: int | None) -> None:
    events = event_variants()[:count]  # one event per batch: the first values of each field
    fast_rows = 0
    for start in range(0, len(events), size):
        batch = events[start:start + size]
        fast = validate_records(batch, now=NOW, first_row_number=start)
        slow = frame_path(batch)
        pd.testing.assert_frame_equal(fast.valid, slow.valid)
        assert [type(value) for value in fast.valid["properties"]] == \
               [type(value) for value in slow.valid["properties"]]  # None, not NaN, for both
        slow_rejected = slow.rejected.assign(row_number=slow.rejected["row_number"] + start)
        pd.testing.assert_frame_equal(fast.rejected.drop(columns="raw"),
                                      slow_rejected.drop(columns="raw"))
        fast_rows += len(split_plain(batch, now=NOW, max_future_seconds=300,
                                     known_products=None)[0])
    # The comparison means something only if both paths were taken, and often.
    valid_rows = len(frame_path(events).valid)
    assert 20 <= fast_rows <= valid_rows < len(events)


def test_the_paths_agree_with_a_catalogue_and_a_tighter_future_limit() -> None:
    events = event_variants(seed=5) + [{**VALID_EVENT, "product_id": "unknown"}]
    options = {"known_products": {"p1"}, "max_future_seconds": 0}
    fast = validate_records(events, now=NOW, **options)
    slow = frame_path(events, **options)
    pd.testing.assert_frame_equal(fast.valid, slow.valid)
    pd.testing.assert_frame_equal(fast.rejected.drop(columns="raw"),
                                  slow.rejected.drop(columns="raw"))
    assert "unknown_product" in set(fast.rejected["reason"])


def test_events_without_an_id_get_the_frame_paths_derived_id() -> None:
    events = [{**VALID_EVENT, "event_id": None, "session_id": f"s{number}"} for number in range(5)]
    fast = validate_records(events, now=NOW)
    assert len(split_plain(events, now=NOW, max_future_seconds=300, known_products=None)[0]) == 5
    assert fast.valid["event_id"].tolist() == frame_path(events).valid["event_id"].tolist()
    assert fast.valid["event_id"].str.startswith("d-").all()


def test_naive_times_beside_zoned_ones_stay_utc() -> None:
    # pandas' ISO 8601 parser gives naive values the offset of a zoned value before them.
    values = pd.Series(["2026-01-05T12:00:00-05:30", "2026-01-05T12:00:00", 1767614400],
                       dtype=object)
    assert parse_timestamps(values).tolist() == [pd.Timestamp("2026-01-05T17:30:00Z"),
                                                 pd.Timestamp("2026-01-05T12:00:00Z"),
                                                 pd.Timestamp("2026-01-05T12:00:00Z")]
    leftovers = pd.Series(["Jan 5 2026 12:00 +01:00", "2026-02-30T00:00:00Z",
                           "2026-01-05T12:00:00+01:00", "2026-01-05 12:00"], dtype=object)
    assert parse_timestamps(leftovers).tolist()[2:] == [pd.Timestamp("2026-01-05T11:00:00Z"),
                                                        pd.Timestamp("2026-01-05T12:00:00Z")]
