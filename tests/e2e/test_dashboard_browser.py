"""The daily report in a real browser: headless Chromium opens the page `tailor report` wrote,
a screenshot is kept beside the test's files, and every figure read from the page by its id
equals what the warehouse (and the audit table) say, computed here with queries of its own.
The same page through the serving app's `/dashboard` (its key check, security headers and
Content-Security-Policy, under uvicorn in this process) renders with no policy refusal.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` dev extra (skipped without
them, failed under CI=true); the shop is tests/report_homes.py's, small enough to count.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
from browsers import browser_paths, start_browser
from collector_process import free_port
from report_homes import EXPECTED_VARIANTS, NOW, REPORT_DAY, build_report_home

from tailor.config import Settings, load_settings
from tailor.events.keys import create_key, keys_file_path
from tailor.reports.files import latest_page
from tailor.reports.job import ReportRun, run_daily_report
from tailor.warehouse import query_warehouse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, ReportRun]:
    browser_paths()
    folder = tmp_path_factory.mktemp("dashboard")
    settings = load_settings(home=folder / "home", env={}).replace(
        report_metrics_url="http://127.0.0.1:9/metrics")
    build_report_home(settings, folder / "shop")
    return settings, run_daily_report(settings, REPORT_DAY, now=NOW.to_pydatetime())


@pytest.fixture
def page(report: tuple[Settings, ReportRun], tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """The report open in Chromium, and the screenshot taken of it."""
    driver = start_browser(tmp_path)
    try:
        driver.get(Path(report[1].paths["html"]).as_uri())
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, height + 100)
        screenshot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(screenshot)), "no screenshot"
        yield driver, screenshot
    finally:
        driver.quit()


def shown(driver: Any, element_id: str) -> tuple[str, str]:
    """(data-value, visible text) of the element with this id."""
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, element_id)
    assert element.is_displayed(), f"{element_id} is not visible"
    return element.get_attribute("data-value"), element.text


def warehouse_days(settings: Settings) -> pd.DataFrame:
    """Sessions, buyers, orders and revenue per UTC day, asked of the warehouse directly."""
    sessions = query_warehouse(settings, """
        SELECT CAST(started_at AS DATE) AS day, COUNT(*) AS sessions,
               SUM(CASE WHEN purchased THEN 1 ELSE 0 END) AS converted_sessions
        FROM sessions GROUP BY 1""")
    orders = query_warehouse(settings, """
        SELECT CAST(order_time AS DATE) AS day, COUNT(*) AS orders, SUM(revenue) AS revenue
        FROM orders GROUP BY 1""")
    days = sessions.merge(orders, on="day", how="outer").fillna(0)
    days["day"] = pd.to_datetime(days["day"]).dt.date
    return days.set_index("day")


def test_the_page_shows_the_warehouses_numbers(report: tuple[Settings, ReportRun],
                                               page: tuple[Any, Path]) -> None:
    settings, _ = report
    driver, screenshot = page
    where = f"(screenshot: {screenshot})"
    assert screenshot.stat().st_size > 20_000, where
    assert driver.title == f"Tailor daily report {REPORT_DAY.isoformat()}", where
    days = warehouse_days(settings)
    for day in pd.date_range(end=REPORT_DAY, periods=settings.report_days).date:
        row = days.loc[day] if day in days.index else pd.Series(0, index=days.columns)
        for field in ("sessions", "converted_sessions", "orders"):
            value, text = shown(driver, f"shop-{day}-{field}")
            assert int(value) == int(row[field]), f"{day} {field} {where}"
            assert text == f"{int(row[field]):,}", f"{day} {field} {where}"
        value, text = shown(driver, f"shop-{day}-revenue")
        assert float(value) == pytest.approx(float(row["revenue"])), f"{day} revenue {where}"
        assert text == f"{row['revenue']:,.2f}", where
        value, text = shown(driver, f"shop-{day}-conversion")
        if row["sessions"]:
            conversion = row["converted_sessions"] / row["sessions"]
            assert float(value) == pytest.approx(conversion), f"{day} conversion {where}"
            assert text == f"{100 * conversion:.2f}%", where
        else:
            assert (value, text) == ("", "–"), where
    today = days.loc[REPORT_DAY]
    assert float(shown(driver, "day-aov")[0]) == pytest.approx(today["revenue"] / today["orders"])
    assert shown(driver, "day-conversion")[1] == "75.00%", where


def test_the_variants_models_and_answers_match_their_sources(
        report: tuple[Settings, ReportRun], page: tuple[Any, Path]) -> None:
    from tailor.monitoring.audit import history

    settings, _ = report
    driver, screenshot = page
    where = f"(screenshot: {screenshot})"
    for (model, variant), (sessions, converted, orders, revenue) in EXPECTED_VARIANTS.items():
        prefix = f"variant-{model}-{variant}"
        assert shown(driver, f"{prefix}-sessions")[0] == str(sessions), f"{prefix} {where}"
        assert shown(driver, f"{prefix}-converted_sessions")[0] == str(converted), where
        assert shown(driver, f"{prefix}-orders")[0] == str(orders), where
        assert float(shown(driver, f"{prefix}-revenue")[0]) == revenue, where
    logged = query_warehouse(settings, """
        SELECT endpoint, COUNT(*) AS answers, COUNT(*) FILTER (WHERE fallback) AS fallbacks
        FROM predictions WHERE CAST(served_at AS DATE) = ? GROUP BY 1""", [REPORT_DAY])
    for row in logged.itertuples():
        assert int(shown(driver, f"answers-{row.endpoint}-answers")[0]) == row.answers, where
        assert int(shown(driver, f"answers-{row.endpoint}-fallbacks")[0]) == row.fallbacks, \
            where
    newest = next(decision for decision in history(settings, "homepage")
                  if decision.decided_at <= NOW.isoformat())
    assert float(shown(driver, "accuracy-homepage-current")[0]) \
        == newest.evidence["current"], where
    assert float(shown(driver, "accuracy-homepage-baseline")[0]) \
        == newest.evidence["baseline"], where
    drifted = newest.evidence["drift"][0]
    assert shown(driver, "drift-homepage-profile") == (
        str(len(drifted["drifted"])), f"{len(drifted['drifted'])}/{drifted['columns']}"), where


@pytest.fixture
def dashboard_server(report: tuple[Settings, ReportRun]) -> Iterator[tuple[str, str]]:
    """The ops app with /dashboard behind the key check and the security headers, as the
    service mounts it, under uvicorn on a free port; yields its URL and a secret key."""
    import uvicorn

    from tailor.server import ENDPOINTS
    from tailor.serving.http import ApiKeyMiddleware
    from tailor.serving.ops_routes import create_ops_app
    from tailor.web.security_headers import SecurityHeadersMiddleware

    settings, _ = report
    key = create_key("secret", keys_file_path(settings))
    app = SecurityHeadersMiddleware(ApiKeyMiddleware(
        create_ops_app(ENDPOINTS, dashboard_page=latest_page(settings)), settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", key
    server.should_exit = True
    thread.join(timeout=10)


def test_the_dashboard_route_renders_under_its_policy(dashboard_server: tuple[str, str],
                                                      tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    url, key = dashboard_server
    driver = start_browser(tmp_path)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                               {"headers": {"Authorization": f"Bearer {key}"}})
        driver.get(url + "/dashboard")
        screenshot = tmp_path / "dashboard-route.png"
        driver.save_screenshot(str(screenshot))
        where = f"(screenshot: {screenshot})"
        assert driver.title == f"Tailor daily report {REPORT_DAY.isoformat()}", where
        assert shown(driver, "day-revenue") == ("65.0", "65.00"), where
        plots = driver.find_elements(By.TAG_NAME, "svg")
        assert plots and all(plot.size["height"] > 100 for plot in plots), where
        refusals = [entry["message"] for entry in driver.get_log("browser")
                    if "Content Security Policy" in entry["message"]]
        assert refusals == [], f"{len(refusals)} refusals, first: {refusals[0][:300]} {where}"
    finally:
        driver.quit()
