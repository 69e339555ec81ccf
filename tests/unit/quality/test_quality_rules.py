"""Each data-quality rule passing and failing, with exact counts, on real SQLite (and once on
PostgreSQL) stores filled through the ingest path."""

from __future__ import annotations

import pandas as pd
import pytest

from tailor.config import Settings
from tailor.events.store import open_event_store
from tailor.quality import run_quality_gate

NOW = pd.Timestamp("2026-03-01T12:00:00Z")
ROW_RULES = ("missing_customer_id", "nonpositive_price", "future_timestamp", "malformed_row",
             "unknown_product", "missing_product_id")


def gate(settings: Settings, now: pd.Timestamp = NOW, **overrides: object):
    return run_quality_gate(settings.replace(**overrides) if overrides else settings, now=now,
                            write=False, alert=False)


def fill(settings: Settings, rows: pd.DataFrame, ingest_rows, batch_id: str = "b1") -> None:
    store = open_event_store(settings.event_store_url)
    try:
        ingest_rows(store, rows, batch_id)
    finally:
        store.close()


def check_exact_counts(settings: Settings, ingest_faulty_file) -> None:
    store = open_event_store(settings.event_store_url)
    try:
        injected, duplicates = ingest_faulty_file(store)
    finally:
        store.close()
    received = 1000 + sum(injected.values()) + duplicates
    report = gate(settings)

    assert (report.received, report.stored) == (received, 1000)
    for name, count in injected.items():
        rule = report.rule(name)
        assert (rule.count, rule.status, rule.blocking) == (count, "fail", True), name
        assert rule.value == pytest.approx(count / received)
    duplicate = report.rule("duplicate_event_id")
    assert (duplicate.count, duplicate.status, duplicate.blocking) == (duplicates, "pass", False)
    assert not report.passed
    assert {rule.name for rule in report.failed_rules} == set(injected)


def test_counts_are_exact_for_a_file_with_known_faults(settings: Settings,
                                                        ingest_faulty_file) -> None:
    check_exact_counts(settings, ingest_faulty_file)


@pytest.mark.postgres
def test_counts_are_exact_on_postgresql(settings: Settings, postgres_url: str,
                                        ingest_faulty_file) -> None:
    check_exact_counts(settings.replace(database_url=postgres_url), ingest_faulty_file)


def test_a_clean_store_passes_every_rule(settings: Settings, ingest_rows,
                                         make_daily_rows) -> None:
    fill(settings, make_daily_rows([100] * 10), ingest_rows)
    report = gate(settings, now=pd.Timestamp("2026-02-25T06:00:00Z"))

    assert report.passed
    assert [rule.status for rule in report.rules] == ["pass"] * 10
    assert [rule.name for rule in report.rules] == [
        "missing_customer_id", "duplicate_event_id", "nonpositive_price", "future_timestamp",
        "implausible_timestamp", "malformed_row", "unknown_product", "missing_product_id",
        "volume_anomaly", "freshness"]


def test_row_rules_within_their_threshold_warn_but_pass(settings: Settings,
                                                        ingest_faulty_file) -> None:
    store = open_event_store(settings.event_store_url)
    ingest_faulty_file(store)
    store.close()
    report = gate(settings, quality_max_reject_rate=0.01)  # the worst fault is 7/1035 = 0.68%

    assert report.passed
    assert [report.rule(name).status for name in ROW_RULES] == ["warn"] * 6


def test_violations_in_stored_rows_are_counted(settings: Settings, ingest_rows,
                                               make_daily_rows) -> None:
    fill(settings, make_daily_rows([100] * 10), ingest_rows)
    store = open_event_store(settings.event_store_url)
    # Another writer skipped validation: rows the contract would have rejected are stored.
    store.insert_events(pd.DataFrame({
        "event_id": ["x1", "x2", "x3", "x4"], "customer_id": [None, "c1", "c1", "c1"],
        "event_type": ["page_view", "purchase", "purchase", "page_view"],
        "product_id": [None, "p1", "p1", None], "price": [None, 0.0, -2.0, None],
        "timestamp": pd.to_datetime(["2026-02-20T10:00Z", "2026-02-20T10:00Z",
                                     "2026-02-20T11:00Z", "2026-03-05T00:00Z"], utc=True),
    }), "other-writer")
    store.close()
    report = gate(settings)

    assert report.rule("missing_customer_id").count == 1
    assert report.rule("nonpositive_price").count == 2
    assert report.rule("future_timestamp").count == 1
    assert "1 among stored events" in report.rule("future_timestamp").details
    assert report.rule("malformed_row").count == 0


def test_duplicates_above_their_rate_warn_without_blocking(settings: Settings, ingest_rows,
                                                           make_daily_rows) -> None:
    rows = make_daily_rows([100] * 10)
    fill(settings, rows, ingest_rows, "b1")
    fill(settings, rows.iloc[:150], ingest_rows, "b2")  # a client resent 150 events
    report = gate(settings)

    duplicate = report.rule("duplicate_event_id")
    assert (duplicate.count, duplicate.status) == (150, "warn")
    assert duplicate.value == pytest.approx(150 / 1150)
    assert report.passed and report.stored == 1000


@pytest.mark.parametrize(("last_day", "status", "ratio"),
                         [(10, "fail", 0.1), (90, "pass", 0.9), (500, "fail", 5.0)])
def test_volume_of_the_newest_full_day_against_the_trailing_median(
        settings: Settings, ingest_rows, make_daily_rows, last_day: int, status: str,
        ratio: float) -> None:
    counts = [100, 120, 80, 100, 110, 100, 90, 100] + [last_day]  # median of the 7 before: 100
    # Feb 15 .. Feb 23, and Feb 24 under way ("today": never the checked day).
    fill(settings, make_daily_rows(counts + [4]), ingest_rows)
    report = gate(settings, now=pd.Timestamp("2026-02-24T23:59:00Z"))

    volume = report.rule("volume_anomaly")
    assert (volume.status, volume.count, volume.value) == (status, last_day, pytest.approx(ratio))
    assert "2026-02-23" in volume.details
    assert report.passed is (status == "pass")


def test_volume_skips_partial_days_and_needs_history(settings: Settings, ingest_rows,
                                                     make_daily_rows) -> None:
    fill(settings, make_daily_rows([100] * 8 + [3]), ingest_rows)  # Feb 23 has 3 events so far
    today = gate(settings, now=pd.Timestamp("2026-02-23T23:00:00Z")).rule("volume_anomaly")
    assert (today.status, today.count, today.value) == ("pass", 100, pytest.approx(1.0))
    assert "2026-02-22" in today.details
    # Days later, Feb 23 is over, but the data ends on it: a backfill cut short mid-day is
    # not a volume drop (whether data stopped arriving is the freshness rule's question).
    backfill = gate(settings).rule("volume_anomaly")
    assert (backfill.status, backfill.count) == ("pass", 100)
    assert "2026-02-22" in backfill.details

    short = gate(settings, now=pd.Timestamp("2026-02-18T01:00:00Z"),
                 quality_volume_trailing_days=14).rule("volume_anomaly")
    assert short.status == "pass" and "not enough history" in short.details


def test_freshness_warns_unless_configured_to_block(settings: Settings, ingest_rows,
                                                    make_daily_rows) -> None:
    fill(settings, make_daily_rows([100] * 9), ingest_rows)
    newest = pd.Timestamp("2026-02-23T00:00:00Z") + pd.Timedelta(seconds=99 * 860)
    fresh = gate(settings, now=pd.Timestamp("2026-02-24T06:00:00Z")).rule("freshness")
    expected_hours = (pd.Timestamp("2026-02-24T06:00:00Z") - newest).total_seconds() / 3600
    assert fresh.status == "pass" and fresh.value == pytest.approx(expected_hours, abs=1e-3)

    stale = gate(settings)  # Mar 1 noon: about 132 hours later
    assert stale.rule("freshness").status == "warn" and stale.passed
    assert stale.rule("freshness").value == pytest.approx((NOW - newest).total_seconds() / 3600)

    blocking = gate(settings, quality_freshness_blocking=True)
    assert blocking.rule("freshness").status == "fail" and not blocking.passed


def test_an_empty_store_passes_with_notes(settings: Settings) -> None:
    report = gate(settings)
    assert report.received == 0 and report.passed
    assert "no full day" in report.rule("volume_anomaly").details
    assert report.rule("freshness").status == "warn"


def test_counts_are_exact_after_a_real_file_import(settings: Settings, tmp_path,
                                                   faulty_csv) -> None:
    from tailor.events.ingest.job import ingest_files

    events_csv, products_csv, injected, duplicates = faulty_csv(tmp_path)
    with events_csv.open("a") as handle:  # one line the CSV parser cannot split into columns
        handle.write('broken,"line,with,too,many,fields",,,,,,,,,,,,,,,,,,,\n')
    injected["malformed_row"] += 1
    ingest_files(settings, events_csv, products_path=products_csv, now=NOW, progress=False)
    report = gate(settings)

    assert report.stored == 1000
    assert {name: report.rule(name).count for name in injected} == injected
    assert report.rule("duplicate_event_id").count == duplicates
    assert report.received == 1000 + sum(injected.values()) + duplicates
