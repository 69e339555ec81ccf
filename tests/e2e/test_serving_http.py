"""The Tailor server over HTTP: a real `bentoml serve bentos.service:Tailor` (two workers) on
a trained home (tests/e2e/conftest.py). Shapes of every answer, keys, limits and bad input,
the mounted collector, health and metrics. Redis outages and alias moves are in
test_serving_resilience.py, which shares the same server."""

from __future__ import annotations

import uuid

import httpx
import pytest

from serving_home import logged_rows, metric_total
from tailor.serving.schemas import OFFERS

pytestmark = pytest.mark.slow

ANSWER_FIELDS = {"model_version", "variant", "fallback", "fallback_reason", "stale", "request_id",
                 "experiment", "experiment_variant"}
ITEM_FIELDS = {"product_id", "score", "reason", "confidence", "lift"}


def _cart(serving, quantity: int = 1) -> list[dict]:
    return [{"product_id": product, "quantity": quantity, "price": price}
            for product, price in serving.home.cart_products]


def test_a_known_buyer_gets_a_personalised_homepage_with_reasons(serving) -> None:
    response = serving.post("/homepage", {"customer_id": serving.home.known_buyer, "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ANSWER_FIELDS | {"items", "personalised", "layout"}
    assert not body["fallback"] and body["fallback_reason"] is None, body
    assert body["experiment"] is None and body["experiment_variant"] is None  # none started
    assert body["stale"] is False  # the home's events are recent
    assert body["personalised"] and body["variant"] == "champion"
    assert body["model_version"] == serving.champion("homepage")
    assert len(body["items"]) == 5 and len({item["product_id"] for item in body["items"]}) == 5
    for item in body["items"]:
        assert set(item) == ITEM_FIELDS and item["reason"].strip()
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    again = serving.post("/homepage", {"customer_id": serving.home.known_buyer, "k": 5}).json()
    assert again["request_id"] != body["request_id"]
    assert [item["product_id"] for item in again["items"]] == \
        [item["product_id"] for item in body["items"]]


def test_a_new_visitor_gets_products_too(serving) -> None:
    body = serving.post("/homepage", {"customer_id": f"visitor-{uuid.uuid4().hex[:8]}",
                                      "k": 4, "context": {"device": "mobile"}}).json()
    assert not body["fallback"], body
    assert len(body["items"]) == 4 and all(item["reason"] for item in body["items"])


def test_also_bought_gives_companions_with_confidence_and_lift(serving) -> None:
    product = serving.home.product_bought
    response = serving.post("/also_bought", {"product_id": product, "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ANSWER_FIELDS | {"items"}
    assert not body["fallback"] and body["model_version"] == serving.champion("cross_sell"), body
    assert 0 < len(body["items"]) <= 5
    assert product not in {item["product_id"] for item in body["items"]}
    scored = [item for item in body["items"] if item["confidence"] is not None]
    assert all(0 <= item["confidence"] <= 1 and item["lift"] >= 0 for item in scored), scored
    rules = [item for item in scored if item["confidence"] > 0]  # bought together, not just similar
    assert rules and all(item["lift"] > 0 for item in rules), body["items"]


def test_checkout_offer_scores_the_cart(serving) -> None:
    response = serving.post("/checkout_offer", {"customer_id": serving.home.known_buyer,
                                                "session_id": "s-e2e", "cart": _cart(serving)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ANSWER_FIELDS | {"p_abandon", "offer", "reason"}
    assert not body["fallback"] and body["model_version"] == serving.champion("checkout"), body
    assert 0.0 <= body["p_abandon"] <= 1.0 and body["offer"] in OFFERS and body["reason"]


def test_batch_endpoints_answer_each_request_in_order(serving) -> None:
    visitors = [serving.home.known_buyer, "batch-visitor-1", "batch-visitor-2"]
    response = serving.post("/batch/homepage", {"requests": [
        {"customer_id": visitor, "k": k} for k, visitor in enumerate(visitors, start=2)]})
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [len(answer["items"]) for answer in answers] == [2, 3, 4]
    assert answers[0]["personalised"] and not any(answer["fallback"] for answer in answers)
    carts = [{"customer_id": visitor, "session_id": f"s-{visitor}", "cart": _cart(serving, n)}
             for n, visitor in enumerate(visitors, start=1)]
    offers = serving.post("/batch/checkout_offer", {"requests": carts}).json()
    assert len(offers) == 3 and all(0 <= offer["p_abandon"] <= 1 for offer in offers)


def test_every_answer_lands_in_the_prediction_log_once(serving) -> None:
    before = metric_total(serving.get("/metrics", key=serving.secret_key).text,
                          "tailor_predictions_logged_total")
    served = {"homepage": [serving.post("/homepage", {
        "customer_id": serving.home.known_buyer, "k": 3,
        "context": {"session_id": "s-log"}}).json()]}
    served["homepage"] += serving.post("/batch/homepage", {"requests": [
        {"customer_id": "log-visitor-1", "k": 2}, {"customer_id": "log-visitor-2"}]}).json()
    served["also_bought"] = [serving.post("/also_bought", {
        "product_id": serving.home.product_bought, "k": 4}).json()]
    carts = [{"customer_id": serving.home.known_buyer, "session_id": f"s-log-{n}",
              "cart": _cart(serving)} for n in range(3)]
    served["checkout_offer"] = [serving.post("/checkout_offer", carts[0]).json()]
    served["checkout_offer"] += serving.post("/batch/checkout_offer",
                                             {"requests": carts[1:]}).json()
    answers = {answer["request_id"]: (endpoint, answer)
               for endpoint, bodies in served.items() for answer in bodies}
    rows = logged_rows(serving.home.settings, list(answers))
    assert sorted(rows.index) == sorted(answers)  # each answer, once
    for request_id, (endpoint, answer) in answers.items():
        row = rows.loc[request_id]
        assert row["endpoint"] == endpoint and row["variant"] == answer["variant"]
        assert row["model_version"] == answer["model_version"]
        assert row["fallback"] == answer["fallback"]
        assert [item["product_id"] for item in row["items"]] == \
            [item["product_id"] for item in answer.get("items", [])]
    first = rows.loc[served["homepage"][0]["request_id"]]
    assert (first["customer_id"], first["session_id"], first["k"]) == \
        (serving.home.known_buyer, "s-log", 3)
    after = metric_total(serving.get("/metrics", key=serving.secret_key).text,
                         "tailor_predictions_logged_total")
    assert after - before >= len(answers)  # summed over both workers


def test_every_model_endpoint_needs_a_secret_key(serving) -> None:
    body = {"customer_id": serving.home.known_buyer}
    missing = httpx.post(serving.url + "/homepage", json=body)
    assert missing.status_code == 401 and "secret key" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert serving.post("/homepage", body, key="tlr_sk_" + "0" * 40).status_code == 403
    public = serving.post("/homepage", body, key=serving.public_key)
    assert public.status_code == 403 and "public key" in public.json()["error"]
    by_header = httpx.post(serving.url + "/homepage", json=body,
                           headers={"X-Tailor-Key": serving.secret_key})
    assert by_header.status_code == 200
    for path in ("/also_bought", "/checkout_offer", "/batch/homepage", "/batch/checkout_offer"):
        assert httpx.post(serving.url + path, json={}).status_code == 401, path
    assert serving.get("/schema.json").status_code == 401


def test_health_the_index_and_the_spec_need_no_key(serving) -> None:
    for path in ("/healthz", "/livez", "/readyz", "/"):
        assert serving.get(path).status_code == 200, path
    spec = serving.get("/docs.json").json()
    assert {"/homepage", "/also_bought", "/checkout_offer", "/batch/homepage"} <= set(spec["paths"])
    assert serving.get("/metrics").status_code == 401
    assert serving.get("/metrics", key=serving.secret_key).status_code == 200


def test_the_kubernetes_probes_are_answered_by_the_real_server(serving) -> None:
    """Every httpGet probe of the serving Deployment (deploy/kubernetes/) gets 200 without a
    key from this server, and its port is the one `bentoml serve` listens on in the image."""
    from pathlib import Path

    import yaml
    from bentoml._internal.configuration.containers import BentoMLContainer

    manifest = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / \
        "tailor-serving-deployment.yaml"
    [container] = yaml.safe_load(manifest.read_text())["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    probes = [container[kind]["httpGet"] for kind in
              ("readinessProbe", "livenessProbe", "startupProbe")]
    for probe in probes:
        assert ports[probe["port"]] == BentoMLContainer.http.port.get()
        assert serving.get(probe["path"]).status_code == 200, probe


def test_the_dashboard_is_the_daily_report_with_this_servers_latency(
        serving, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tailor report` reads this server's /metrics with a secret key; /dashboard (secret key
    only) serves the page it wrote, with the homepage's latency in it."""
    from tailor.config import REPORT_METRICS_KEY_ENV
    from tailor.reports.job import run_daily_report

    for _ in range(3):
        assert serving.post("/homepage", {"customer_id": serving.home.known_buyer}).is_success
    monkeypatch.setenv(REPORT_METRICS_KEY_ENV, serving.secret_key)
    settings = serving.home.settings.replace(report_metrics_url=serving.url + "/metrics")
    run = run_daily_report(settings, refresh=False)
    assert run.payload["server"]["status"] == "read", run.payload["server"]["note"]
    homepage = run.payload["server"]["endpoints"][0]
    assert homepage["endpoint"] == "homepage" and homepage["requests"] >= 3
    assert homepage["p50"] is not None

    assert serving.get("/dashboard").status_code == 401
    assert serving.get("/dashboard", key=serving.public_key).status_code == 403
    page = serving.get("/dashboard", key=serving.secret_key)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="latency-homepage-p50" data-value="' + repr(homepage["p50"]) in page.text


@pytest.mark.parametrize(("body", "field"), [
    ({"customer_id": "c1", "k": "ten"}, "k"),
    ({"customer_id": "c1", "k": 0}, "k"),
    ({"customer_id": "c1", "k": 10_000}, "k"),
    ({"k": 5}, "customer_id"),
    ({"customer_id": ""}, "customer_id"),
    ({"customer_id": 42}, "customer_id"),
    ({"customer_id": "c1", "kk": 3}, "kk"),
    ({"customer_id": "c1", "context": {"categories": "shoes"}}, "context"),
])
def test_a_bad_homepage_request_is_400_naming_the_field(serving, body: dict, field: str) -> None:
    response = serving.post("/homepage", body)
    assert response.status_code == 400, response.text
    assert field in {str(part) for error in response.json()["detail"] for part in error["loc"]}


def test_a_bad_cart_names_the_line_and_field(serving) -> None:
    cart = _cart(serving)
    cart[1]["quantity"] = 0
    response = serving.post("/checkout_offer", {"customer_id": "c1", "session_id": "s",
                                                "cart": cart})
    assert response.status_code == 400
    assert ["cart", 1, "quantity"] in [error["loc"] for error in response.json()["detail"]]
    empty = serving.post("/checkout_offer", {"customer_id": "c1", "session_id": "s", "cart": []})
    assert empty.status_code == 400


def test_malformed_json_and_oversized_batches_are_400(serving) -> None:
    headers = {"Authorization": f"Bearer {serving.secret_key}",
               "Content-Type": "application/json"}
    broken = httpx.post(serving.url + "/homepage", content=b'{"customer_id": "c1",',
                        headers=headers)
    assert broken.status_code == 400
    assert broken.json()["detail"][0]["type"] == "json_invalid"
    for path in ("/homepage", "/batch/homepage"):
        broken = httpx.post(serving.url + path, content=b"\x00", headers=headers)
        assert broken.status_code == 400, (path, broken.text)
    too_many = serving.post("/batch/homepage",
                            {"requests": [{"customer_id": f"c{n}"} for n in range(33)]})
    assert too_many.status_code == 400
    assert too_many.json()["detail"][0]["loc"] == ["requests"]


def test_bodies_over_the_limit_are_413_whether_declared_or_streamed(serving) -> None:
    huge = {"customer_id": "c1", "context": {"page": "x" * 70_000}}
    assert serving.post("/homepage", huge).status_code == 413

    def chunks():
        for _ in range(20):
            yield b"x" * 8_192

    streamed = httpx.post(serving.url + "/homepage", content=chunks(),
                          headers={"Authorization": f"Bearer {serving.secret_key}",
                                   "Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_the_collector_is_mounted_under_collect(serving) -> None:
    from tailor.events.store import open_event_store

    store = open_event_store(serving.home.settings.event_store_url)
    try:
        last_seq = store.max_seq()
        events = [{"event_id": f"e2e-serve-{n}", "customer_id": "c-serve",
                   "event_type": "page_view", "timestamp": "2026-01-01T00:00:00Z"}
                  for n in range(3)]
        refused = httpx.post(serving.url + "/collect/v1/events", json={"events": events})
        assert refused.status_code == 401  # the collector's own check: no secret key needed
        response = httpx.post(serving.url + "/collect/v1/events", json={"events": events},
                              headers={"X-Tailor-Key": serving.public_key})
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 3
        stored = store.events_after(last_seq, 100)
    finally:
        store.close()
    assert set(stored["event_id"]) == {f"e2e-serve-{n}" for n in range(3)}
    tracker = httpx.get(serving.url + "/collect/tailor.js")
    assert tracker.status_code == 200 and "javascript" in tracker.headers["content-type"]


def test_metrics_add_up_every_worker(serving) -> None:
    before = serving.get("/metrics", key=serving.secret_key).text
    sent = 24
    for _ in range(sent):  # a new connection each time: the kernel spreads them over workers
        assert serving.post("/also_bought", {"product_id": serving.home.product_bought}
                            ).status_code == 200
    after = serving.get("/metrics", key=serving.secret_key).text
    counted = (metric_total(after, "tailor_requests_total", endpoint="also_bought")
               - metric_total(before, "tailor_requests_total", endpoint="also_bought"))
    assert counted == sent
    assert metric_total(after, "tailor_request_seconds_count", endpoint="also_bought") >= sent
    assert metric_total(after, "tailor_model_info", model="homepage",
                        version=serving.champion("homepage")) >= 1
    assert metric_total(after, "tailor_http_requests_total", route="/also_bought",
                        status="200") >= sent  # every answer, by route (not BentoML's by path)


def test_the_server_log_holds_no_access_lines_with_client_addresses(serving) -> None:
    assert serving.post("/homepage", {"customer_id": "log-check"}).status_code == 200
    log = serving.log_path.read_text(errors="replace")
    assert "Service Tailor initialized" in log  # the log is this server's
    assert "scheme=http" not in log, "BentoML's access log (client IP and port) is on"
