"""The demo shop's app without a server: its key, its routes' answers and refusals, its
headers, and the collector taking the shop's events from the server's own origin."""

from __future__ import annotations

import json
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # Starlette now suggests httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from tailor.config import Settings, load_settings
from tailor.events.collector.app import create_collector_app
from tailor.events.identity import create_identity_secret, identity_secret_path, sign_customer_id
from tailor.events.keys import EVENTS_WRITE, keys_file_path, list_keys, revoke_key
from tailor.serving.schemas import HomepageRequest, HomepageResponse, RecommendedItem
from tailor.shop.app import create_shop_app
from tailor.shop.publishable_key import KEY_FILE_NAME, demo_shop_key
from tailor.web.security_headers import API_POLICY, PAGE_POLICY


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return load_settings(home=tailor_home, env={})


class FakePipeline:
    """Answers homepage requests with one product whose reason names the customer."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def ahomepage(self, request: HomepageRequest) -> HomepageResponse:
        self.asked.append(request)
        return HomepageResponse(
            items=[RecommendedItem(product_id="p-1", score=0.5,
                                   reason=f"because you bought for {request.customer_id}")],
            model_version="3", variant="champion", fallback=False, request_id="r-1",
            personalised=True, layout="carousel")


def test_the_shop_key_is_one_public_key_per_home_and_a_new_one_after_a_revoke(
        settings: Settings) -> None:
    key = demo_shop_key(settings)
    assert demo_shop_key(settings) == key  # every worker, every restart: the same key
    assert stat.S_IMODE((settings.home_path / KEY_FILE_NAME).stat().st_mode) == 0o600
    (listed,) = list_keys(settings)
    assert (listed.kind, listed.scopes) == ("public", (EVENTS_WRITE,))
    revoke_key(keys_file_path(settings), listed.id)
    renewed = demo_shop_key(settings)
    assert renewed != key and renewed.startswith("tlr_pk_")


def test_the_pages_get_the_page_policy_and_the_config_names_the_collector(
        settings: Settings) -> None:
    client = TestClient(create_shop_app(settings, public_key="tlr_pk_test"))
    page = client.get("/")
    assert page.status_code == 200 and 'id="recommendations"' in page.text
    assert page.headers["content-security-policy"] == PAGE_POLICY
    assert "/collect/tailor.js" in page.text and "https://" not in page.text  # no CDN
    config = client.get("/config.js").text
    shop = json.loads(config.split("=", 1)[1].rstrip(";\n"))
    assert shop == {"endpoint": "/collect/v1/events", "key": "tlr_pk_test",
                    "tracker": "/collect/tailor.js"}
    for name in ("product.html", "cart.html", "checkout.html", "shop.js", "shop.css"):
        assert client.get(f"/{name}").status_code == 200, name
    cart = client.get("/cart.html").text  # the shared frame around the page's own content
    assert "<title>Cart · Tailor demo shop</title>" in cart and 'data-page="cart"' in cart
    assert 'id="cart-table"' in cart and 'id="who-form"' in cart and "$" not in cart
    assert client.get("/layout.html").status_code == 404  # the frame is not a page


def test_the_answer_routes_give_the_pipelines_answer_and_refuse_bad_bodies_by_field(
        settings: Settings) -> None:
    app = create_shop_app(settings, public_key="tlr_pk_test")
    client = TestClient(app)
    body = {"customer_id": "c-7", "k": 3, "context": {"session_id": "s-1"}}
    starting = client.post("/api/homepage", json=body)
    assert starting.status_code == 503  # the worker's pipeline is not handed over yet
    app.state.shop.pipeline = pipeline = FakePipeline()
    answer = client.post("/api/homepage", json=body)
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == API_POLICY
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["items"][0]["reason"] == "because you bought for c-7"
    assert answer.json()["layout"] == "carousel"
    assert pipeline.asked[0].context == {"session_id": "s-1"}
    refused = client.post("/api/homepage", json={**body, "k": 0})
    assert refused.status_code == 400 and refused.json()["error"].startswith("k:")
    assert client.post("/api/homepage", content=b"{nope").json() == {"error": "body: not JSON"}
    unknown = client.post("/api/homepage", json={**body, "customer": "c-7"})
    assert unknown.status_code == 400 and "customer" in unknown.json()["error"]
    assert len(pipeline.asked) == 1


def test_identity_signs_as_the_shops_server_would_and_says_none_without_a_secret(
        settings: Settings) -> None:
    client = TestClient(create_shop_app(settings, public_key="tlr_pk_test"))
    assert client.get("/api/identity?customer_id=c-9").json() == {
        "customer_id": "c-9", "signature": None}
    secret = create_identity_secret(identity_secret_path(settings))
    client = TestClient(create_shop_app(settings, public_key="tlr_pk_test"))
    signed = client.get("/api/identity?customer_id=c-9").json()
    assert signed["signature"] == sign_customer_id(secret, "c-9")
    assert client.get("/api/identity").status_code == 400


def test_without_a_warehouse_the_catalogue_is_empty_and_says_why(settings: Settings) -> None:
    answer = TestClient(create_shop_app(settings, public_key="tlr_pk_test")).get(
        "/api/catalogue").json()
    assert answer["products"] == [] and answer["customers"] == []
    assert answer["error"].startswith("catalogue unavailable")


def test_the_collector_takes_the_shops_events_from_the_servers_own_origin_only(
        settings: Settings) -> None:
    key = demo_shop_key(settings)
    own, other = "http://127.0.0.1:3000", "http://elsewhere.example"
    event = {"event_id": "e-1", "customer_id": "anon-1", "event_type": "page_view",
             "timestamp": "2026-01-01T00:00:00Z"}
    served = create_collector_app(settings, shop_origins=frozenset({own}))
    plain = create_collector_app(settings)
    with TestClient(served) as client, TestClient(plain) as without_shop:
        for app_client, origin, status in ((client, own, 200), (client, other, 403),
                                           (without_shop, own, 403)):
            answer = app_client.post("/v1/events", json={"events": [event]},
                                     headers={"X-Tailor-Key": key, "Origin": origin})
            assert answer.status_code == status, (origin, answer.text)


def test_every_page_is_labelled_for_screen_readers_and_phones() -> None:
    """The markup's accessibility basics, page by page (the browser test sees them work)."""
    from html.parser import HTMLParser

    from tailor.shop.app import PAGES, render_page

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict[str, str | None]]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append((tag, dict(attrs)))

    for page in PAGES:
        parser = Tags()
        parser.feed(render_page(page))
        tags = parser.tags
        assert ("html", {"lang": "en"}) in tags, page
        assert any(tag == "meta" and attrs.get("name") == "viewport" for tag, attrs in tags), page
        assert {"header", "nav", "main", "footer"} <= {tag for tag, _ in tags}, page
        labelled = {attrs.get("for") for tag, attrs in tags if tag == "label"}
        fields = {attrs.get("id") for tag, attrs in tags if tag in ("select", "input")}
        assert fields <= labelled, page  # every field has a label
        assert any(attrs.get("aria-live") or attrs.get("role") == "status"
                   for _, attrs in tags), page  # answers are announced
        assert not [attrs for tag, attrs in tags if tag == "script" and "src" not in attrs], \
            page  # no inline script: the page policy forbids it


def test_the_demo_ends_with_the_shops_url_and_the_command_that_serves_it(
        settings: Settings) -> None:
    from rich.console import Console

    from tailor.demo import _print_shop_invitation

    console = Console(record=True, width=200)
    _print_shop_invitation(console, settings.replace(serving_port="3210"))
    text = console.export_text()
    assert "http://127.0.0.1:3210/shop/" in text
    assert f"tailor serve --demo-shop --home {settings.home_path}" in text
    assert "tailor demo --serve" in text


def test_the_keyless_routes_share_one_rate_limit_and_the_pages_do_not(
        settings: Settings) -> None:
    now = [100.0]
    limited = settings.replace(serving_demo_shop_rate_per_second=2.0)  # a bucket of 4
    app = create_shop_app(limited, public_key="tlr_pk_test", clock=lambda: now[0])
    app.state.shop.pipeline = FakePipeline()
    client = TestClient(app)
    body = {"customer_id": "c-7", "k": 3}
    answers = [client.post("/api/homepage", json=body).status_code for _ in range(4)]
    assert answers == [200] * 4
    refused = client.get("/api/identity", params={"customer_id": "c-7"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["error"]
    assert client.get("/").status_code == 200  # the pages are static files: not limited
    now[0] += 0.5  # one token back
    assert client.post("/api/homepage", json=body).status_code == 200
    assert client.post("/api/homepage", json=body).status_code == 429
    off = create_shop_app(settings.replace(serving_demo_shop_rate_per_second=0.0),
                          public_key="tlr_pk_test", clock=lambda: now[0])
    off.state.shop.pipeline = FakePipeline()
    with TestClient(off) as unlimited:
        assert {unlimited.post("/api/homepage", json=body).status_code
                for _ in range(20)} == {200}
