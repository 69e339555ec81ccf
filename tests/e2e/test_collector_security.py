"""Issue 21 against a real `tailor collect --demo-shop` (uvicorn): unknown paths leave the
metrics alone, /metrics needs a secret key (or the setting that opens it), request heads
are capped with 431, and every answer, shop pages included, carries the security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest

from collector_process import CollectorProcess, start_collector
from http_probe import SECURITY_HEADERS, assert_oversized_heads_are_refused, many_headers, send_raw
from tailor.events.keys import create_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorProcess,
                                                                          dict[str, str]]]:
    home = tmp_path_factory.mktemp("collector-security") / "home"
    keys = {kind: create_key(kind, home / "collector_keys.json") for kind in ("public", "secret")}
    process = start_collector(home, demo_shop=True)
    yield process, keys
    process.stop()


def _metrics(collector: CollectorProcess, key: str) -> str:
    answer = httpx.get(f"{collector.url}/metrics", headers={"X-Tailor-Key": key})
    assert answer.status_code == 200, answer.text
    return answer.text


def test_unknown_paths_do_not_grow_the_metrics(collector) -> None:
    process, keys = collector
    before = _metrics(process, keys["secret"])
    with httpx.Client(timeout=30.0) as client:
        for number in range(200):
            answer = client.get(f"{process.url}/x{number}-" + "a" * 10_000)
            assert answer.status_code == 404
    after = _metrics(process, keys["secret"])
    assert "/x0-" not in after
    assert len(after) - len(before) < 2_000, "unknown paths became metric series"


def test_metrics_need_a_secret_key(collector) -> None:
    process, keys = collector
    assert httpx.get(f"{process.url}/metrics").status_code == 401
    public = httpx.get(f"{process.url}/metrics", headers={"X-Tailor-Key": keys["public"]})
    assert public.status_code == 403 and "recommendations:read" in public.json()["error"]
    assert "tailor_collector_requests_total" in _metrics(process, keys["secret"])


def test_a_setting_opens_metrics_to_a_private_scraper(tmp_path: Path) -> None:
    process = start_collector(tmp_path / "home", settings={
        "TAILOR_COLLECTOR_METRICS_WITHOUT_KEY": "true"})
    try:
        answer = httpx.get(f"{process.url}/metrics")
    finally:
        process.stop()
    assert answer.status_code == 200 and "tailor_collector_requests_total" in answer.text


def test_an_oversized_header_is_431_before_it_is_read_whole(collector) -> None:
    process, _ = collector
    assert_oversized_heads_are_refused(process.url, "/v1/events")
    assert httpx.get(f"{process.url}/healthz").status_code == 200


def test_too_many_headers_are_431(collector) -> None:
    process, _ = collector
    answer = send_raw(process.url, many_headers("/healthz", 20_000))
    assert answer.status in (431,), answer
    assert send_raw(process.url, many_headers("/healthz", 500)).status == 431
    assert send_raw(process.url, many_headers("/healthz", 20)).status == 200


@pytest.mark.parametrize(("path", "status", "page"), [
    ("/shop/index.html", 200, True),
    ("/shop/shop.js", 200, True),
    ("/shop/config.js", 200, True),
    ("/tailor.js", 200, False),
    ("/healthz", 200, False),
    ("/v1/events", 405, False),
    ("/no-such-path", 404, False),
])
def test_every_answer_carries_the_security_headers(collector, path: str, status: int,
                                                   page: bool) -> None:
    process, _ = collector
    answer = httpx.get(process.url + path)
    assert answer.status_code == status
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    if page:
        assert "script-src 'self'" in policy and "unsafe-eval" not in policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    else:
        assert policy.startswith("default-src 'none'")
    refused = httpx.post(f"{process.url}/v1/events", json={"events": []})
    assert refused.status_code == 401 and "nosniff" in refused.headers["x-content-type-options"]


def test_a_malformed_request_is_a_json_400_with_the_security_headers(collector) -> None:
    process, _ = collector
    answer = send_raw(process.url, b"GET /healthz HTTP/1.1\r\nHost probe\r\n\r\n")
    assert answer.status == 400 and "malformed HTTP request" in answer.body.decode(), answer
    assert all(name in answer.headers for name in SECURITY_HEADERS)
