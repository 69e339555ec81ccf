"""The ASGI guards: secret keys on every path but the open ones, body limits, passthrough."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tailor.config import Settings, load_settings
from tailor.events.keys import create_key, keys_file_path
from tailor.serving.http import ApiKeyMiddleware, BodyLimitMiddleware

LIMIT = 1_000


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"path": request.url.path, "bytes": len(body)})


def inner_app() -> Starlette:
    return Starlette(routes=[Route(path, echo, methods=["GET", "POST"])
                             for path in ("/", "/healthz", "/readyz", "/homepage", "/metrics",
                                          "/collect/v1/events", "/collector")])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={})


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    path = keys_file_path(settings)
    return {"secret": create_key("secret", path, "shop backend"),
            "public": create_key("public", path, "shop pages")}


@pytest.fixture
def client(settings: Settings, keys: dict[str, str]) -> TestClient:
    app = BodyLimitMiddleware(ApiKeyMiddleware(inner_app(), settings), LIMIT)
    return TestClient(app)


def test_a_missing_key_is_401_with_a_json_reason(client: TestClient) -> None:
    response = client.post("/homepage", json={"customer_id": "c1"})
    assert response.status_code == 401
    assert "missing API key" in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_public_and_unknown_keys_are_403(client: TestClient, keys: dict[str, str]) -> None:
    public = client.post("/homepage", headers={"Authorization": f"Bearer {keys['public']}"})
    assert public.status_code == 403 and "public key" in public.json()["error"]
    unknown = client.post("/homepage", headers={"X-Tailor-Key": keys["secret"] + "0"})
    assert unknown.status_code == 403 and "unknown key" in unknown.json()["error"]


def test_a_secret_key_passes_in_either_header(client: TestClient, keys: dict[str, str]) -> None:
    for headers in ({"Authorization": f"Bearer {keys['secret']}"},
                    {"authorization": f"bearer  {keys['secret']} "},
                    {"X-Tailor-Key": keys["secret"]}):
        response = client.post("/homepage", headers=headers, content=b"{}")
        assert response.status_code == 200, headers
        assert response.json() == {"path": "/homepage", "bytes": 2}
    assert client.get("/metrics").status_code == 401  # metrics are not open



def test_a_secret_key_in_the_url_is_refused_with_rotate_advice_and_logged_without_it(
        client: TestClient, keys: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    secret = keys["secret"]
    with caplog.at_level("WARNING", logger="tailor.serving.http"):
        alone = client.post(f"/homepage?key={secret}")
        # Refused even beside a valid header key: the key is in URLs (and logs) now.
        beside = client.post(f"/homepage?other=1&key={secret}", headers={"X-Tailor-Key": secret})
    for answer in (alone, beside):
        assert answer.status_code == 403 and "rotate this key" in answer.json()["error"]
        assert secret not in answer.text
    assert "refused a secret key sent in a URL" in caplog.text and secret not in caplog.text
    # A public or unknown key in the URL opens nothing either; a header key still works.
    assert client.post(f"/homepage?key={keys['public']}").status_code == 403
    assert client.post("/homepage?key=tlr_sk_nothing").status_code == 403
    assert client.post("/homepage?keys=1", headers={"X-Tailor-Key": secret}).status_code == 200

def test_open_paths_and_the_collector_need_no_key(client: TestClient) -> None:
    for path in ("/", "/healthz", "/readyz"):
        assert client.get(path).status_code == 200, path
    # The collector checks its own keys; a path that merely starts alike is not under it.
    assert client.post("/collect/v1/events", content=b"[]").status_code == 200
    assert client.post("/collector").status_code == 401


def test_a_key_added_to_the_keys_file_later_is_accepted(client: TestClient, settings: Settings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The key ring looks at the file at most once a second; here at every request.
    key_ring = client.app.app.keys  # BodyLimitMiddleware -> ApiKeyMiddleware -> its ring
    monkeypatch.setattr(key_ring.keys_file_watch, "recheck_seconds", 0.0)
    late = create_key("secret", keys_file_path(settings), "added while serving")
    assert client.get("/metrics", headers={"X-Tailor-Key": late}).status_code == 200


def test_an_oversized_body_is_413_by_header_and_by_stream(client: TestClient,
                                                          keys: dict[str, str]) -> None:
    headers = {"X-Tailor-Key": keys["secret"]}
    fits = client.post("/homepage", headers=headers, content=b"x" * LIMIT)
    assert fits.status_code == 200 and fits.json()["bytes"] == LIMIT
    declared = client.post("/homepage", headers=headers, content=b"x" * (LIMIT + 1))
    assert declared.status_code == 413 and "over the limit of 1,000 bytes" in \
        declared.json()["error"]

    def chunks():  # no Content-Length: the body arrives chunked
        for _ in range(5):
            yield b"y" * 300

    streamed = client.post("/homepage", headers=headers, content=chunks())
    assert streamed.status_code == 413


def test_the_collector_prefix_is_not_size_limited_here(client: TestClient) -> None:
    response = client.post("/collect/v1/events", content=b"z" * (LIMIT * 3))
    assert response.status_code == 200 and response.json()["bytes"] == LIMIT * 3


async def _call(app, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, dict]:
    """Drive the ASGI app by hand (a client library would fix a bad Content-Length)."""
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/homepage", "headers": headers,
             "query_string": b"", "http_version": "1.1", "scheme": "http",
             "server": ("test", 80), "client": ("test", 1), "root_path": ""}
    await app(scope, receive, send)
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]) or b"{}")


@pytest.mark.parametrize("length", [b"abc", b"-5", b"12, 12", b""])
def test_a_malformed_content_length_is_400(settings: Settings, keys: dict[str, str],
                                           length: bytes) -> None:
    app = BodyLimitMiddleware(ApiKeyMiddleware(inner_app(), settings), LIMIT)
    headers = [(b"x-tailor-key", keys["secret"].encode()), (b"content-length", length)]
    status, body = asyncio.run(_call(app, headers, b"{}"))
    assert status == 400 and "Content-Length" in body["error"]


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        BodyLimitMiddleware(inner_app(), 0)


def test_each_path_needs_its_scope(settings: Settings) -> None:
    from tailor.events.keys import ADMIN, RECOMMENDATIONS_READ

    path = keys_file_path(settings)
    admin = create_key("secret", path, "ops", scopes=[ADMIN])
    reader = create_key("secret", path, "backend", scopes=[RECOMMENDATIONS_READ])
    app = Starlette(routes=[Route(p, echo, methods=["GET", "POST", "DELETE"])
                            for p in ("/homepage", "/metrics", "/v1/customers/{id}")])
    client = TestClient(ApiKeyMiddleware(app, settings))
    as_admin, as_reader = {"X-Tailor-Key": admin}, {"X-Tailor-Key": reader}
    refused = client.post("/homepage", headers=as_admin)
    assert refused.status_code == 403 and "recommendations:read" in refused.json()["error"]
    assert client.post("/homepage", headers=as_reader).status_code == 200
    assert client.delete("/v1/customers/c1", headers=as_reader).status_code == 403
    assert client.delete("/v1/customers/c1", headers=as_admin).status_code == 200
    assert client.get("/metrics", headers=as_admin).status_code == 200
    assert client.get("/metrics", headers=as_reader).status_code == 200


def test_a_key_over_its_rate_gets_429_with_retry_after(settings: Settings,
                                                       keys: dict[str, str]) -> None:
    limited = settings.replace(serving_rate_limit_per_second=0.01, serving_rate_limit_burst=3)
    client = TestClient(ApiKeyMiddleware(inner_app(), limited))
    headers = {"X-Tailor-Key": keys["secret"]}
    statuses = [client.post("/homepage", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.post("/homepage", headers=headers)
    assert int(refused.headers["retry-after"]) >= 1 and "too many" in refused.json()["error"]
    assert client.get("/healthz").status_code == 200  # open paths are not counted


# -- hostile keys and headers; the headers every answer carries --------------------------------


def test_hostile_keys_never_reach_the_app_and_never_get_a_5xx(settings: Settings,
                                                              keys: dict[str, str]) -> None:
    from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

    reached: list[str] = []

    async def counting(request: Request) -> JSONResponse:
        reached.append(request.url.path)
        return JSONResponse({})

    app = Starlette(routes=[Route("/homepage", counting, methods=["POST"])])
    client = TestClient(BodyLimitMiddleware(ApiKeyMiddleware(app, settings), LIMIT))
    near_misses = st.sampled_from([keys["public"], keys["secret"][:-1], keys["secret"] + " x",
                                   keys["secret"].upper(), "Bearer", "tlr_sk_", "\x00"])

    @given(key=st.binary(max_size=120) | near_misses.map(str.encode),
           header=st.sampled_from([b"x-tailor-key", b"authorization", b"x-tailor-key "]),
           bearer=st.booleans())
    @hypothesis_settings(max_examples=100, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    def call(key: bytes, header: bytes, bearer: bool) -> None:
        value = (b"Bearer " + key) if bearer else key
        if b"\r" in value or b"\n" in value:
            return  # not a header value any client can send
        answer = client.post("/homepage", headers=[(header, value)])
        assert answer.status_code in (401, 403), (key, answer.status_code)
        assert "error" in answer.json()

    call()
    assert reached == []


def test_the_serving_api_sends_no_cors_headers_and_the_security_headers(
        settings: Settings, keys: dict[str, str]) -> None:
    from tailor.web.security_headers import SecurityHeadersMiddleware

    hsts = TestClient(SecurityHeadersMiddleware(ApiKeyMiddleware(inner_app(), settings),
                                                hsts_max_age=31_536_000))
    for headers in ({"Origin": "https://evil.example"},
                    {"Origin": "https://evil.example", "X-Tailor-Key": keys["secret"]}):
        answer = hsts.post("/homepage", headers=headers)
        assert "access-control-allow-origin" not in answer.headers
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["strict-transport-security"] == \
            "max-age=31536000; includeSubDomains"
    preflight = hsts.options("/homepage", headers={"Origin": "https://evil.example",
                                                    "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 401 and "access-control-allow-origin" not in \
        preflight.headers
    plain = TestClient(SecurityHeadersMiddleware(inner_app()))
    assert "strict-transport-security" not in plain.get("/healthz").headers


def test_bodies_that_are_not_json_are_415_except_for_the_collector() -> None:
    from tailor.serving.http import JsonOnlyMiddleware

    client = TestClient(JsonOnlyMiddleware(inner_app()))
    for content_type in ("text/plain", "application/xml", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "text/html; charset=utf-8"):
        refused = client.post("/homepage", content=b'{"customer_id": "c1"}',
                              headers={"Content-Type": content_type})
        assert refused.status_code == 415 and "application/json" in refused.json()["error"]
    for content_type in ("application/json", "application/json; charset=utf-8",
                         "application/problem+json"):
        assert client.post("/homepage", content=b"{}",
                           headers={"Content-Type": content_type}).status_code == 200
    assert client.post("/homepage", content=b"{}").status_code == 200  # none: left to the app
    beacon = client.post("/collect/v1/events", content=b"[]",
                         headers={"Content-Type": "text/plain"})
    assert beacon.status_code == 200
