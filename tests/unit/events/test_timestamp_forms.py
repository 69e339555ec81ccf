"""Which timestamp forms are read without being told (ISO 8601, epoch seconds and
milliseconds), which need the import's format or day-first flag, and the non-finite
numbers every path refuses: the contract check, the collector's fast path and the stores."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from tailor.events.records import validate_records
from tailor.events.schema import TimestampRules, validate_events
from tailor.events.store import open_event_store
from tailor.events.timestamps import read_timestamps

NOW = pd.Timestamp("2026-06-01T00:00:00Z")


def read(values: list, rules: TimestampRules | None = None, arrow: bool = False) -> list:
    series = pd.Series(values, dtype=pd.ArrowDtype(pa.string()) if arrow else object)
    return read_timestamps(series, rules).parsed.tolist()


def events(stamps: list, **columns) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": "c1", "event_type": "page_view",
                         "timestamp": pd.Series(stamps, dtype=object), **columns})


@pytest.mark.parametrize("arrow", [False, True], ids=["object", "arrow"])
def test_iso_and_epoch_numbers_are_read_without_being_told(arrow: bool) -> None:
    stamps = read(["2026-01-05T10:03:00Z", "2026-01-05 10:03:00 UTC", "2026-01-05T11:03:00+0100",
                   "1767607380", "1767607380000", "1767607380123"], arrow=arrow)
    expected = pd.Timestamp("2026-01-05T10:03:00Z")
    assert stamps[:5] == [expected] * 5
    assert stamps[5] == expected + pd.Timedelta(milliseconds=123)  # exact, not float-rounded


def test_epoch_milliseconds_as_json_numbers_agree_on_both_collector_paths() -> None:
    records = [{"event_id": "e1", "customer_id": "c1", "event_type": "page_view",
                "timestamp": 1767607380123}]
    fast = validate_records(records, now=NOW)
    slow = validate_events(pd.DataFrame(records), now=NOW)
    assert fast.valid["timestamp"].tolist() == slow.valid["timestamp"].tolist() == [
        pd.Timestamp("2026-01-05T10:03:00.123Z")]


@pytest.mark.parametrize("value", ["05/01/2026 10:03", "5.1.2026", "13/01/26"])
def test_a_day_month_date_is_never_guessed(value: str) -> None:
    result = validate_events(events([value]), now=NOW)
    assert result.valid.empty
    (detail,) = result.rejected["detail"]
    assert result.rejected["field"].tolist() == ["timestamp"]
    assert "--dayfirst" in detail and "--timestamp-format" in detail and repr(value) in detail


def test_dayfirst_reads_day_month_year_and_refuses_impossible_dates() -> None:
    rules = TimestampRules(dayfirst=True)
    result = validate_events(events(["05/01/2026 10:03", "13.01.26", "2026-01-05T10:03:00Z",
                                     "01/13/2026"]), now=NOW, timestamps=rules)
    assert result.valid["timestamp"].tolist() == [
        pd.Timestamp("2026-01-05T10:03:00Z"), pd.Timestamp("2026-01-13T00:00:00Z"),
        pd.Timestamp("2026-01-05T10:03:00Z")]
    assert "not a valid day/month/year date" in result.rejected["detail"].iloc[0]
    assert result.timestamp_forms == {"dayfirst": 2, "iso8601": 1}


def test_a_given_format_goes_first_and_other_forms_still_read() -> None:
    rules = TimestampRules(timestamp_format="%Y%m%d %H%M", naive_timezone="Europe/Berlin")
    result = validate_events(events(["20260105 1103", "2026-01-05T10:03:00Z", "Jan 5 2026"]),
                             now=NOW, timestamps=rules)
    assert result.valid["timestamp"].tolist() == [pd.Timestamp("2026-01-05T10:03:00Z")] * 2
    assert result.naive_timestamps == 1  # the format has no zone: read in Europe/Berlin
    assert "does not match the timestamp format '%Y%m%d %H%M'" in result.rejected["detail"][0]
    assert result.timestamp_forms == {"timestamp_format": 1, "iso8601": 1}


def test_other_text_needs_a_format() -> None:
    result = validate_events(events(["Jan 5 2026 10:03", "5 January 2026"]), now=NOW)
    assert result.valid.empty
    assert result.rejected["detail"].str.contains("pass its format with --timestamp-format").all()
    with_format = validate_events(events(["Jan 5 2026 10:03"]), now=NOW,
                                  timestamps=TimestampRules(timestamp_format="%b %d %Y %H:%M"))
    assert with_format.valid["timestamp"].tolist() == [pd.Timestamp("2026-01-05T10:03:00Z")]


@pytest.mark.parametrize(("field", "value"), [
    ("price", "inf"), ("price", "-inf"), ("price", "1e309"), ("price", "nan"), ("price", "NaN"),
    ("quantity", "inf"), ("quantity", "nan"), ("price", float("inf")), ("quantity", 1e400),
])
def test_non_finite_numbers_are_malformed_naming_the_field(field: str, value: object) -> None:
    frame = events(["2026-01-05T10:03:00Z"] * 2, event_type="purchase", product_id="p1",
                   price=pd.Series([5.0, 5.0], dtype=object), quantity=pd.Series([1, 1],
                                                                                 dtype=object))
    frame.loc[1, field] = value
    for result in (validate_events(frame, now=NOW),
                   validate_records(frame.to_dict("records"), now=NOW)):
        assert len(result.valid) == 1
        assert result.rejected[["reason", "field"]].values.tolist() == [["malformed_row", field]]
        assert "is not a finite number" in result.rejected["detail"].iloc[0]


def test_an_infinite_epoch_time_is_malformed_not_a_far_future() -> None:
    result = validate_events(events([float("inf"), "inf", 1e300]), now=NOW)
    assert result.rejected[["reason", "field"]].values.tolist() == [
        ["malformed_row", "timestamp"], ["malformed_row", "timestamp"],
        ["implausible_timestamp", "timestamp"]]
    assert "inf is not a finite number" in result.rejected["detail"][0]


@pytest.mark.parametrize("url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_no_store_keeps_an_infinite_number(url: str, tmp_path, request) -> None:
    store_url = (f"sqlite:///{tmp_path / 'events.db'}" if url == "sqlite"
                 else request.getfixturevalue("postgres_url"))
    store = open_event_store(store_url)
    try:
        frame = events(["2026-01-05T10:03:00Z"], event_type="purchase", product_id="p1",
                       price=[float("inf")])
        with pytest.raises(ValueError, match="price holds a number that is not finite"):
            store.insert_events(frame, "b1")
        assert store.count_events() == 0
        store.upsert_products(pd.DataFrame({"product_id": ["p1"], "price": ["inf"],
                                            "rating": [float("nan")], "inventory": ["1e309"]}))
        stored = store.products().iloc[0]
        assert pd.isna(stored["price"]) and pd.isna(stored["inventory"])
    finally:
        store.close()
