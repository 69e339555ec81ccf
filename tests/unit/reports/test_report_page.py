"""The report page without a browser: every figure in a cell with a stable id and its exact
value, the plots inline, nothing loaded from elsewhere (the browser test reads the same ids)."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from report_homes import EXPECTED_DAY, EXPECTED_VARIANTS, NOW, REPORT_DAY

from tailor.config import Settings
from tailor.reports.daily import build_daily_report
from tailor.reports.page import element_id, render_page


class _Values(HTMLParser):
    """id -> (data-value, text) of every element that has a data-value."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, tuple[str, str]] = {}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-value" in found and found.get("id"):
            self._open = found["id"]
            self.values[self._open] = (found["data-value"] or "", "")

    def handle_data(self, data: str) -> None:
        if self._open:
            value, text = self.values[self._open]
            self.values[self._open] = (value, text + data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None


@pytest.fixture(scope="module")
def page(report_settings: Settings) -> str:
    return render_page(build_daily_report(report_settings, REPORT_DAY, NOW.to_pydatetime()))


def values(page: str) -> dict[str, tuple[str, str]]:
    parser = _Values()
    parser.feed(page)
    return parser.values


def test_the_days_figures_are_in_cells_by_id(page: str) -> None:
    found = values(page)
    assert found["day-sessions"] == ("4", "4")
    assert found["day-conversion"] == ("0.75", "75.00%")
    assert found["day-revenue"] == ("65.0", "65.00")
    assert float(found["day-aov"][0]) == pytest.approx(65 / 3) and found["day-aov"][1] == "21.67"
    for field, value in EXPECTED_DAY.items():
        assert float(found[f"shop-2026-03-02-{field}"][0]) == value
    assert found["shop-2026-02-28-conversion"] == ("", "–")  # no sessions that day


def test_variants_models_drift_and_answers_have_their_cells(page: str) -> None:
    found = values(page)
    for (model, variant), (sessions, _, orders, revenue) in EXPECTED_VARIANTS.items():
        assert found[element_id("variant", model, variant, "sessions")][0] == str(sessions)
        assert float(found[element_id("variant", model, variant, "revenue")][0]) == revenue
    assert found["accuracy-homepage-current"] == ("0.17", "0.1700")
    assert found["accuracy-homepage-drop"][1] == "-15.0%"
    assert found["accuracy-homepage-z"] == ("3.5", "3.50")
    assert found["accuracy-homepage-served"] == (repr(0.17 - 0.01), "0.1600 (1,234 answers)")
    assert found["accuracy-churn-served"] == ("", "–")
    assert found["drift-homepage-profile"] == ("2", "2/12")
    assert found["answers-checkout_offer-fallback_rate"] == ("1.0", "100.00%")


def test_the_page_is_self_contained(page: str) -> None:
    assert page.count("<svg") >= 3  # shop, variants, accuracy, serving
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert re.findall(r'(?:src|href)="(?!#)', page) == []


def test_the_servers_latency_and_rates_have_their_cells(report_settings: Settings) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from tailor.reports.server_metrics import ServerFigures, endpoint_figures, parse_counters
    from tailor.serving.metrics import ServingMetrics

    metrics = ServingMetrics(CollectorRegistry())
    for number in range(100):  # 98 quick answers, two past the top bucket, one fallback
        metrics.observe("homepage", 0.0008 if number > 1 else 9.0,
                        "fallback" if number == 0 else "ok")
    metrics.fallback("homepage", "timeout")
    endpoints = endpoint_figures(parse_counters(generate_latest(metrics.registry).decode()))
    report = replace(build_daily_report(report_settings, REPORT_DAY, NOW.to_pydatetime()),
                     server=ServerFigures("read", "http://server/metrics", "since the server "
                                          "started (no earlier reading)", endpoints=endpoints))
    found = values(render_page(report))
    homepage = endpoints[0]
    assert found["latency-homepage-requests"] == ("100.0", "100")
    assert found["latency-homepage-p50"] == (repr(homepage.p50), "0.8 ms")
    assert found["latency-homepage-fallback_rate"] == ("0.01", "1.00%")
    assert found["latency-homepage-p99"] == ("2.5", "≥ 2500.0 ms")
    assert found["latency-also_bought-p50"] == ("", "–")
