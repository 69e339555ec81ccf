"""The vectorised (Arrow) paths of `validate_events` decide exactly as the lenient pandas
paths do: text arriving as Python objects and as Arrow strings (how file import hands it
over) gives the same valid rows and the same rejections."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from tailor.events.schema import parse_timestamps, validate_events

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
