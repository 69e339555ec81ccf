"""Route-labelled HTTP metrics (`tailor.serving.http_metrics`): no label holds a client's text."""

from __future__ import annotations

from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tailor.serving.http_metrics import RouteMetricsMiddleware, method_label, route_label

ROUTES = frozenset({"/homepage", "/collect/v1/events"})


def test_unknown_paths_and_methods_share_one_label() -> None:
    assert route_label("/homepage", ROUTES) == "/homepage"
    assert route_label("/homepage/", ROUTES) == "/homepage"
    assert route_label("/x1-" + "a" * 10_000, ROUTES) == "other"
    assert route_label("/collect/../etc/passwd", ROUTES) == "other"
    assert (method_label("POST"), method_label("BREW")) == ("POST", "other")


def test_every_answer_is_counted_by_route_and_status() -> None:
    async def homepage(request):
        return PlainTextResponse("ok")

    app = RouteMetricsMiddleware(Starlette(routes=[Route("/homepage", homepage)]),
                                 routes=["/homepage"])
    client = TestClient(app)

    def count(route: str, status: str) -> float:
        return REGISTRY.get_sample_value("tailor_http_requests_total", {
            "route": route, "method": "GET", "status": status}) or 0.0

    before = count("/homepage", "200"), count("other", "404")
    assert client.get("/homepage").status_code == 200
    for number in range(3):
        assert client.get(f"/probe-{number}").status_code == 404
    assert (count("/homepage", "200") - before[0], count("other", "404") - before[1]) == (1, 3)
