"""The serving app's own pages: the API index at `/` and the Prometheus text at `/metrics`.

Reads the metrics of every worker (`tailor.serving.http_metrics.metrics_text`); writes
nothing. Mounted by the BentoML service in place of BentoML's index page, which is the
Swagger UI with a third-party tag manager script on the API's origin: the index
here is plain HTML without any script, listing the endpoints and linking the OpenAPI spec
(`/docs.json`) for tools that render it elsewhere. `/metrics` replaces BentoML's (turned
off with its path-labelled HTTP metrics); the key check stays with `ApiKeyMiddleware`.
"""

from __future__ import annotations

import html
from typing import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tailor.serving.http_metrics import metrics_text

SPEC_PATH = "/docs.json"


def index_html(endpoints: Sequence[tuple[str, str]], spec_path: str = SPEC_PATH) -> str:
    """The API index page: each endpoint and what it does, and where the spec is."""
    rows = "\n".join(f"<tr><td><code>{html.escape(endpoint)}</code></td>"
                     f"<td>{html.escape(meaning)}</td></tr>" for endpoint, meaning in endpoints)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Tailor API</title></head><body>\n<h1>Tailor API</h1>\n"
            "<p>Every endpoint but health, this page and the spec needs a secret key: "
            "<code>Authorization: Bearer &lt;key&gt;</code> (<code>tailor keys create "
            "secret</code>).</p>\n"
            f"<table>\n{rows}\n</table>\n"
            f"<p>OpenAPI spec: <a href=\"{html.escape(spec_path)}\">{html.escape(spec_path)}"
            "</a></p>\n</body></html>\n")


def create_ops_app(endpoints: Sequence[tuple[str, str]]) -> Starlette:
    """A Starlette app with `GET /` (the index page) and `GET /metrics`.

    Args:
        endpoints: (endpoint, meaning) pairs listed on the index page.
    """
    page = index_html(endpoints)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    async def metrics(request: Request) -> Response:
        body, content_type = metrics_text()
        return Response(body, media_type=content_type)

    return Starlette(routes=[Route("/", index, methods=["GET"]),
                             Route("/metrics", metrics, methods=["GET"])])
