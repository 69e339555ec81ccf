"""The serving app's own pages: the API index at `/`, the Prometheus text at `/metrics` and
the daily report at `/dashboard`.

Reads the metrics of every worker (`tailor.serving.http_metrics.metrics_text`) and the newest
daily report page (`<home>/reports/daily/latest.html`, written by `tailor report`, read
whole at each request: the report job replaces it by renaming, so a request gets the old page
or the new one, never half of one); writes nothing. Mounted by the BentoML service in place
of BentoML's index page, which is the Swagger UI with a third-party tag manager script on the
API's origin: the index here is plain HTML without any script, listing the endpoints and
linking the OpenAPI spec (`/docs.json`) for tools that render it elsewhere. `/metrics`
replaces BentoML's (turned off with its path-labelled HTTP metrics); the key check stays
with `ApiKeyMiddleware`, for `/dashboard` too (the shop's revenue is not for the public).
The page needs only its inline styles, so it is served with `REPORT_POLICY` as its
Content-Security-Policy.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tailor.serving.http_metrics import metrics_text
from tailor.web.security_headers import REPORT_POLICY

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


def _read_page(path: Path | None) -> bytes | None:
    """The page's bytes, or None while there is none."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


NO_REPORT = ("no daily report yet: `tailor report` writes it (the scheduler runs it daily); "
             "the page is {path}")


def create_ops_app(endpoints: Sequence[tuple[str, str]],
                   dashboard_page: Path | None = None) -> Starlette:
    """A Starlette app with `GET /` (the index page), `GET /metrics` and `GET /dashboard`.

    Args:
        endpoints: (endpoint, meaning) pairs listed on the index page.
        dashboard_page: the HTML file `/dashboard` serves (404 while it does not exist).
    """
    page = index_html(endpoints)

    async def dashboard(request: Request) -> Response:
        body = await run_in_threadpool(_read_page, dashboard_page)
        if body is None:
            return JSONResponse({"error": NO_REPORT.format(path=dashboard_page)}, 404)
        return Response(body, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": REPORT_POLICY})

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    async def metrics(request: Request) -> Response:
        body, content_type = metrics_text()
        return Response(body, media_type=content_type)

    return Starlette(routes=[Route("/", index, methods=["GET"]),
                             Route("/metrics", metrics, methods=["GET"]),
                             Route("/dashboard", dashboard, methods=["GET"])])
