"""The event contract: each bad value is rejected for the right reason, naming the field;
good rows next to bad ones are kept and normalised."""

import json

import pandas as pd
import pytest

from tailor.events.schema import (
    EVENT_COLUMNS, ContractError, derive_event_ids, parse_timestamps, validate_events,
)

NOW = pd.Timestamp("2026-03-01T12:00:00Z")
GOOD = {"event_id": "e1", "customer_id": "c1", "event_type": "purchase", "product_id": "p1",
        "timestamp": "2026-02-01T10:00:00+01:00", "price": "9.5", "quantity": "2", "order_id": "o1"}


def run(rows: list[dict], **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = validate_events(pd.DataFrame(rows), now=NOW, **kwargs)
    return result.valid, result.rejected


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"customer_id": None}, "missing_customer_id", "customer_id"),
        ({"customer_id": "   "}, "missing_customer_id", "customer_id"),
        ({"event_type": "purch@se"}, "malformed_row", "event_type"),
        ({"timestamp": "yesterday"}, "malformed_row", "timestamp"),
        ({"timestamp": None}, "malformed_row", "timestamp"),
        ({"price": "abc"}, "malformed_row", "price"),
        ({"quantity": "1.5"}, "malformed_row", "quantity"),
        ({"quantity": "0"}, "malformed_row", "quantity"),
        ({"properties": "[1, 2]"}, "malformed_row", "properties"),
        ({"properties": "{oops"}, "malformed_row", "properties"),
        ({"product_id": None}, "missing_product_id", "product_id"),
        ({"timestamp": "2036-01-01T00:00:00Z"}, "future_timestamp", "timestamp"),
        ({"price": "0"}, "nonpositive_price", "price"),
        ({"price": "-3"}, "nonpositive_price", "price"),
        ({"customer_id": "c" * 600}, "malformed_row", "customer_id"),
    ],
)
def test_each_problem_is_rejected_for_its_reason_and_field(change: dict, reason: str, field: str) -> None:
    valid, rejected = run([GOOD | {"event_id": "good"}, GOOD | change])
    assert list(valid["event_id"]) == ["good"]
    assert rejected["reason"].tolist() == [reason]
    assert rejected["field"].tolist() == [field]
    assert rejected["detail"].iloc[0].startswith(field)
    assert rejected["row_number"].tolist() == [1]


def test_unknown_product_only_checked_against_a_catalogue() -> None:
    rows = [GOOD, GOOD | {"event_id": "e2", "product_id": "p-unknown"}]
    valid, rejected = run(rows, known_products={"p1"})
    assert rejected["reason"].tolist() == ["unknown_product"]
    valid, rejected = run(rows, known_products=None)
    assert len(valid) == 2 and rejected.empty


def test_rejected_rows_keep_the_original_values() -> None:
    _, rejected = run([GOOD | {"price": "abc", "query": "red shoes"}])
    raw = json.loads(rejected["raw"].iloc[0])
    assert raw["price"] == "abc" and raw["query"] == "red shoes" and raw["customer_id"] == "c1"


def test_valid_rows_are_normalised() -> None:
    valid, _ = run([GOOD])
    assert list(valid.columns) == list(EVENT_COLUMNS)
    row = valid.iloc[0]
    assert row["timestamp"] == pd.Timestamp("2026-02-01T09:00:00Z")
    assert row["price"] == 9.5 and row["quantity"] == 2.0
    assert str(valid["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_optional_columns_may_be_absent_and_ids_are_derived_deterministically() -> None:
    rows = [{"customer_id": "c1", "event_type": "page_view", "timestamp": 1767225600},
            {"customer_id": "c2", "event_type": "page_view", "timestamp": "1767225600"}]
    first, rejected = run(rows)
    again, _ = run(rows)
    assert rejected.empty
    assert first["event_id"].tolist() == again["event_id"].tolist()
    assert first["event_id"].nunique() == 2
    assert first["timestamp"].iloc[0] == pd.Timestamp("2026-01-01T00:00:00Z")


def test_derived_ids_change_with_any_identifying_field() -> None:
    base = pd.DataFrame([{"customer_id": "c1", "event_type": "purchase", "product_id": "p1",
                          "session_id": None, "order_id": "o1",
                          "timestamp": pd.Timestamp("2026-01-01", tz="UTC")}])
    other = base.assign(product_id="p2")
    assert derive_event_ids(base).iloc[0] != derive_event_ids(other).iloc[0]


def test_missing_required_column_names_it() -> None:
    with pytest.raises(ContractError, match="missing required column\\(s\\): timestamp"):
        validate_events(pd.DataFrame([{"customer_id": "c1", "event_type": "page_view"}]), now=NOW)


def test_timestamps_in_mixed_forms() -> None:
    parsed = parse_timestamps(pd.Series(["2026-01-01T00:00:00Z", "1767225600", "2026-01-01 01:00:00+01:00", "x"]))
    assert parsed.iloc[:3].tolist() == [pd.Timestamp("2026-01-01T00:00:00Z")] * 3
    assert pd.isna(parsed.iloc[3])


def test_every_row_is_in_exactly_one_output() -> None:
    rows = [GOOD | {"event_id": f"e{i}", "price": price}
            for i, price in enumerate(["1", "0", "x", "2", None])]
    valid, rejected = run(rows)
    assert len(valid) + len(rejected) == len(rows)
    assert sorted(valid["event_id"]) == ["e0", "e3", "e4"]


@pytest.mark.parametrize("value", [1e20, "1e20", -1e19])
def test_out_of_range_epoch_seconds_are_implausible_not_a_crash(value: object) -> None:
    valid, rejected = run([GOOD | {"event_id": "good"}, GOOD | {"timestamp": value}])
    assert list(valid["event_id"]) == ["good"]
    assert rejected["reason"].tolist() == ["implausible_timestamp"]  # not malformed
    assert rejected["field"].tolist() == ["timestamp"]
