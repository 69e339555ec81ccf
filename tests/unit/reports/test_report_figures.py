"""The daily report's figures on a shop small enough to count by hand (tests/report_homes.py):
conversion, orders, revenue and AOV per day, by variant, the prediction log's answers, the
models against their baselines and their drift flags."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from report_homes import (
    EXPECTED_ANSWERS, EXPECTED_DAY, EXPECTED_DAY_BEFORE, EXPECTED_VARIANTS, NOW, REPORT_DAY,
)

from tailor.config import Settings
from tailor.reports.daily import build_daily_report, default_day
from tailor.reports.shop_figures import ShopDay, shop_figures


def test_each_day_counts_sessions_buyers_orders_and_revenue(report_settings: Settings) -> None:
    figures = shop_figures(report_settings, date(2026, 2, 28), REPORT_DAY)
    by_day = {row.day: row for row in figures.days}
    assert list(by_day) == [date(2026, 2, 28), date(2026, 3, 1), REPORT_DAY]
    empty, before, day = by_day.values()
    assert (empty.sessions, empty.orders, empty.revenue) == (0, 0, 0.0)
    assert empty.conversion is None and empty.aov is None
    assert {key: getattr(before, key) for key in EXPECTED_DAY_BEFORE} == EXPECTED_DAY_BEFORE
    assert {key: getattr(day, key) for key in EXPECTED_DAY} == EXPECTED_DAY
    assert day.conversion == pytest.approx(3 / 4)
    assert day.aov == pytest.approx(65.0 / 3)
    assert before.conversion == pytest.approx(1 / 2) and before.aov == pytest.approx(20.0)


def test_a_sessions_variant_is_its_first_answers(report_settings: Settings) -> None:
    figures = shop_figures(report_settings, REPORT_DAY, REPORT_DAY)
    found = {(row.model, row.variant): (row.sessions, row.converted_sessions, row.orders,
                                        row.revenue) for row in figures.variants}
    assert found == EXPECTED_VARIANTS
    challenger = next(row for row in figures.variants if row.variant == "challenger")
    assert challenger.conversion == pytest.approx(0.5) and challenger.aov == pytest.approx(5.0)


def test_the_prediction_log_gives_answers_and_fallbacks_per_endpoint(
        report_settings: Settings) -> None:
    figures = shop_figures(report_settings, REPORT_DAY, REPORT_DAY)
    assert {row.endpoint: (row.answers, row.fallbacks) for row in figures.answers} \
        == EXPECTED_ANSWERS
    checkout = next(row for row in figures.answers if row.endpoint == "checkout_offer")
    assert checkout.fallback_rate == 1.0


def test_a_day_without_logged_answers_has_no_variant_rows(report_settings: Settings) -> None:
    figures = shop_figures(report_settings, date(2026, 2, 28), date(2026, 2, 28))
    assert figures.variants == [] and figures.answers == [] and figures.note == ""


def test_a_warehouse_built_before_the_prediction_log_says_why(report_settings: Settings,
                                                              tmp_path) -> None:
    import duckdb
    import shutil

    copy = report_settings.replace(warehouse_path=str(tmp_path / "copy.duckdb"))
    shutil.copy(report_settings.warehouse_file, copy.warehouse_file)
    connection = duckdb.connect(str(copy.warehouse_file))
    connection.execute("DROP VIEW predictions")  # a warehouse built before the log
    connection.close()
    figures = shop_figures(copy, REPORT_DAY, REPORT_DAY)
    assert figures.variants is None and figures.answers is None
    assert "no predictions view" in figures.note
    assert figures.days[0].sessions == EXPECTED_DAY["sessions"]


def test_the_report_takes_each_models_newest_round_by_the_next_morning(
        report_settings: Settings) -> None:
    report = build_daily_report(report_settings, REPORT_DAY, NOW.to_pydatetime())
    models = {status.model: status for status in report.models}
    assert list(models) == ["homepage", "cross_sell", "churn", "checkout"]
    homepage = models["homepage"]
    assert (homepage.decision, homepage.baseline, homepage.current) == ("escalated", 0.20, 0.17)
    assert homepage.drop == pytest.approx(0.15)
    assert [(flag.dataset, flag.flagged, len(flag.drifted), flag.columns)
            for flag in homepage.drift] == [("profile", True, 2, 12), ("scored", False, 0, 5)]
    # churn's round came after the cutoff (the end of the day after the report's day)
    assert models["churn"].decision is None and models["cross_sell"].decision is None
    assert [(point.model, round(point.change, 4)) for point in report.accuracy] == [
        ("homepage", -0.025), ("homepage", -0.15)]
    assert report.decisions_cutoff == NOW.to_pydatetime()


def test_the_report_spans_report_days_ending_with_its_day(report_settings: Settings) -> None:
    report = build_daily_report(report_settings.replace(report_days=3), REPORT_DAY,
                                NOW.to_pydatetime())
    assert [row.day for row in report.shop.days] == [REPORT_DAY - timedelta(days=2),
                                                     REPORT_DAY - timedelta(days=1), REPORT_DAY]
    assert isinstance(report.today, ShopDay) and report.today.revenue == 65.0
    assert report.previous.revenue == 20.0
    assert [row.model for row in report.variants_today()] == ["checkout", "homepage",
                                                              "homepage"]


def test_the_default_day_is_yesterday_and_the_future_is_refused(
        report_settings: Settings) -> None:
    assert default_day(datetime(2026, 3, 3, 3, 15, tzinfo=timezone.utc)) == REPORT_DAY
    with pytest.raises(ValueError, match="in the future"):
        build_daily_report(report_settings, date(2026, 3, 5), NOW.to_pydatetime())


def test_an_old_days_report_does_not_read_the_servers_counters_of_today(
        report_settings: Settings) -> None:
    report = build_daily_report(report_settings, REPORT_DAY - timedelta(days=5),
                                NOW.to_pydatetime())
    assert report.server.status == "not read" and "describe now" in report.server.note
