"""`GET /dashboard` of the serving app, in process: the newest daily report page behind a
secret key (even when /metrics is open), served with a policy that lets it load nothing, and
404 before the first report."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tailor.config import Settings, load_settings
from tailor.events.keys import create_key, keys_file_path
from tailor.pages.files import write_atomically
from tailor.reports.files import latest_page
from tailor.serving.http import OPEN_PATHS, ApiKeyMiddleware
from tailor.serving.ops_routes import create_ops_app
from tailor.web.security_headers import REPORT_POLICY, SecurityHeadersMiddleware

PAGE = "<!doctype html><html><body><td id=\"day-revenue\" data-value=\"65.0\">65.00</td>"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={})


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    path = keys_file_path(settings)
    return {"secret": create_key("secret", path), "public": create_key("public", path)}


def serving_client(settings: Settings, metrics_without_key: bool = False) -> TestClient:
    """The ops app behind the key check and the security headers, as the service has them."""
    open_paths = OPEN_PATHS + (("/metrics",) if metrics_without_key else ())
    app = create_ops_app([("GET  /dashboard", "the daily report")],
                         dashboard_page=latest_page(settings))
    return TestClient(SecurityHeadersMiddleware(ApiKeyMiddleware(app, settings,
                                                                 open_paths=open_paths)))


def test_the_dashboard_needs_a_secret_key(settings: Settings, keys: dict[str, str]) -> None:
    write_atomically(latest_page(settings), PAGE)
    client = serving_client(settings, metrics_without_key=True)
    assert client.get("/metrics").status_code == 200
    assert client.get("/dashboard").status_code == 401
    assert client.get("/dashboard", headers={"X-Tailor-Key": keys["public"]}).status_code == 403
    assert client.get("/dashboard", headers={"X-Tailor-Key": "nope"}).status_code == 403
    answer = client.get("/dashboard", headers={"Authorization": f"Bearer {keys['secret']}"})
    assert answer.status_code == 200 and answer.text == PAGE
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == REPORT_POLICY
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


def test_each_request_reads_the_newest_page(settings: Settings, keys: dict[str, str]) -> None:
    client = serving_client(settings)
    headers = {"X-Tailor-Key": keys["secret"]}
    missing = client.get("/dashboard", headers=headers)
    assert missing.status_code == 404 and "tailor report" in missing.json()["error"]
    write_atomically(latest_page(settings), PAGE)
    assert client.get("/dashboard", headers=headers).text == PAGE
    write_atomically(latest_page(settings), PAGE.replace("65", "70"))
    assert "70.00" in client.get("/dashboard", headers=headers).text
