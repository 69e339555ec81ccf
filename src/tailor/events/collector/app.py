"""The HTTP event collector as an ASGI app: its routes, the app factory and `serve_collector`.

Reads request bodies through the other `tailor.events.collector` modules, and the files
under `tailor/events/static/` (the `tailor.js` tracker and the demo shop). Writes (through
the writer thread) valid events and dead-letter rows to the event store at
`settings.event_store_url`.

Routes: `POST /v1/events` (and its CORS preflight), `GET /healthz` and `/readyz` (503 with
the reason while the store cannot be opened or its last write failed), `GET /livez`,
`GET /metrics` (Prometheus text, a `recommendations:read` or `admin` key), `GET /openapi.json`
(the routes' OpenAPI description, open), `GET /tailor.js`, `DELETE /v1/customers/{id}`
(admin: `tailor forget` in the background, `tailor.events.collector.forget_route`; events of
tombstoned ids are dropped before the opt-out filter and anything is stored), the campaign mails'
tracking routes `GET /t/o/<token>.gif` and `GET /t/c/<token>`
(`tailor.events.collector.tracking`, which also reads `campaign_sends`), the opt-out routes
`POST /v1/customers/{id}/opt-out|opt-in` (admin) and `POST /v1/opt-out|opt-in` (the tracker's
own ids; `tailor.events.collector.opt_outs`, which also drops opted-out ids' events before
they are stored), Segment's HTTP Tracking API (`POST /v1/batch`, `/v1/track`, ...:
`tailor.events.collector.segment_routes`), and `GET /shop/…` when the demo shop is on.
Every answer carries the security headers
(`tailor.web.security_headers`); events sent with a public key pass the signed-identity rule
(`tailor.events.identity`) first. A batch is answered only after its events are committed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tailor.config import Settings
from tailor.events.collector.access import (
    CollectorContext,
    bound_origins,
    cors_headers,
    error_response,
    parse_origins,
)
from tailor.events.collector.batches import BatchResult, Submission
from tailor.events.collector.enrichment import (
    clock_skew_seconds,
    device_type_from_user_agent,
    region_from_headers,
)
from tailor.events.collector.forget_route import (
    CUSTOMERS_PATH,
    JOB_PATH,
    forget_customer,
    forget_job,
)
from tailor.events.collector.metrics import CollectorMetrics
from tailor.events.collector.openapi import collector_openapi
from tailor.events.collector.opt_outs import (
    OptOutRegistry,
    admin_opt_change,
    browser_opt_change,
    drop_opted_out,
)
from tailor.events.collector.requests import (
    RequestError,
    check_content_type,
    parse_batch,
    read_capped_body,
)
from tailor.events.collector.segment_routes import segment_routes
from tailor.events.collector.tracker import render_tracker_script
from tailor.events.collector.tracking import TrackedMails, tracking_routes
from tailor.events.collector.writer import NO_COMMIT_HOOK, BatchWriter, CommitHook
from tailor.events.identity import IdentityCheck
from tailor.events.key_ring import key_guard
from tailor.events.keys import ADMIN, EVENTS_WRITE, RECOMMENDATIONS_READ, generate_key
from tailor.events.tombstones import TombstoneSet
from tailor.throttled_log import error_key
from tailor.urls import redact_url
from tailor.web.header_limits import header_limited_protocol
from tailor.web.security_headers import SecurityHeadersMiddleware

log = logging.getLogger(__package__)  # one logger for the whole collector, as before the split

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

SHOP_DIR = STATIC_DIR / "shop"
EVENTS_PATH = "/v1/events"
OPT_OUT_PATHS = ("/v1/opt-out", "/v1/opt-in")
CORS_ALLOWED_HEADERS = "Content-Type, X-Tailor-Key"
CORS_MAX_AGE_SECONDS = 600
METRICS_SCOPES = (RECOMMENDATIONS_READ, ADMIN)  # what reads /metrics (a public key never)


async def post_events(request: Request) -> Response:
    """`POST /v1/events`: authenticate, check limits, store the batch, answer after commit."""
    context: CollectorContext = request.app.state.collector
    started = time.perf_counter()
    browser_origin = request.headers.get("origin") if context.origin_allowed(request) else None
    try:
        kind = context.authenticate(request, EVENTS_WRITE).kind
        context.check_origin(request, kind)
        if kind == "secret":
            browser_origin = None  # secret keys are for servers: no CORS
        response = await _store_batch(request, context, kind)
    except RequestError as error:
        response = error_response(error)
    except Exception as error:  # the store failed: nothing acknowledged, the client retries
        context.log_limiter.log(logging.WARNING, "503 " + error_key(error),
                                "collector: answering 503 after a store error: %s",
                                type(error).__name__)
        response = JSONResponse({"error": "event store unavailable; nothing from this batch "
                                          "was acknowledged, retry it"},
                                status_code=503, headers={"Retry-After": "1"})
    if browser_origin:
        response.headers.update(cors_headers(browser_origin))
    context.metrics.requests.labels(status=str(response.status_code)).inc()
    context.metrics.latency.observe(time.perf_counter() - started)
    return response


async def _store_batch(request: Request, context: CollectorContext, kind: str) -> Response:
    """Read and parse an authenticated request, hand it to the writer, await the commit."""
    settings = context.settings
    check_content_type(request)
    body = await read_capped_body(request, settings.collector_max_batch_bytes)
    received_at = datetime.now(timezone.utc)
    sent_at, events = parse_batch(body, settings.collector_max_batch_events)
    if context.identity is not None:
        events = context.identity.bind(events, kind)
    events, forgotten = _without_forgotten(request.app.state.tombstones, events)
    registry: OptOutRegistry | None = request.app.state.opt_outs
    opted_out = 0
    if registry is not None:  # after the identity rule: a rewritten id is checked as stored
        events, opted_out = drop_opted_out(events, registry.blocked_ids())
        context.metrics.opted_out.inc(opted_out)
    if not events:
        return JSONResponse(_with_opted_out(BatchResult(forgotten=forgotten).to_dict(),
                                            opted_out))
    submission = Submission(
        events=events, received_at=received_at,
        skew_seconds=clock_skew_seconds(sent_at, received_at),
        # A server's own User-Agent says nothing about the shopper's device.
        device_type=(device_type_from_user_agent(request.headers.get("user-agent", ""))
                     if kind == "public" else None),
        region=region_from_headers(request.headers))
    result = await asyncio.wrap_future(context.writer.submit(submission))
    result.forgotten = forgotten
    return JSONResponse(_with_opted_out(result.to_dict(), opted_out))


def _with_opted_out(answer: dict[str, Any], opted_out: int) -> dict[str, Any]:
    """The batch's answer, saying how many events were dropped unstored for an opt-out
    (the key is there only when some were)."""
    return {**answer, "opted_out": opted_out} if opted_out else answer


def _without_forgotten(tombstones: TombstoneSet, events: list[Any]) -> tuple[list[Any], int]:
    """The batch without the events of forgotten customers (`tailor forget` tombstoned their
    customer id or the browser's anonymous id, as the opt-out filter checks both): they are
    dropped before anything is stored, dead letters included, and counted."""
    if not tombstones.current():
        return events, 0
    pairs = [_ids_of(event) for event in events]
    by_customer = tombstones.forgotten_mask(customer for customer, _ in pairs)
    by_browser = tombstones.forgotten_mask(anonymous for _, anonymous in pairs)
    kept = [event for event, one, other in zip(events, by_customer, by_browser)
            if not (one or other)]
    return kept, len(events) - len(kept)


def _ids_of(event: Any) -> tuple[Any, Any]:
    """An event's customer id and `properties.anonymous_id` (None where missing or the event
    is malformed: the validation rejects it later)."""
    if not isinstance(event, dict):
        return None, None
    properties = event.get("properties")
    return event.get("customer_id"), (properties.get("anonymous_id")
                                      if isinstance(properties, dict) else None)


async def preflight_events(request: Request) -> Response:
    """`OPTIONS /v1/events`: the CORS preflight, answered for configured origins only."""
    context: CollectorContext = request.app.state.collector
    origin = request.headers.get("origin")
    if not origin or not context.origin_allowed(request):
        return JSONResponse({"error": f"origin {str(origin)[:100]!r} is not allowed; add it to "
                                      "collector.allowed_origins"}, status_code=403)
    return Response(status_code=204, headers={
        **cors_headers(origin),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": CORS_ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS),
    })


async def healthz(request: Request) -> Response:
    """`GET /healthz` (and `/readyz`): 200 while the event store takes writes (or has not
    been needed yet); 503 with the reason while it cannot be opened or its last write failed."""
    problem = request.app.state.collector.writer.health_problem()
    if problem is not None:
        return JSONResponse({"status": "error", "error": problem}, status_code=503)
    return JSONResponse({"status": "ok"})


async def livez(request: Request) -> Response:
    """`GET /livez`: 200 while the process answers (liveness only, the store is not asked)."""
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    """`GET /metrics`: this app's counters in the Prometheus text format; a key with
    `recommendations:read` or `admin` is needed unless `collector.metrics_without_key` is on."""
    context: CollectorContext = request.app.state.collector
    if not context.settings.collector_metrics_without_key:
        try:
            context.authenticate(request, *METRICS_SCOPES)
        except RequestError as error:
            return error_response(error)
    registry = context.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def openapi_spec(request: Request) -> Response:
    """`GET /openapi.json`: the collector's OpenAPI description (open, like /docs.json of
    the server)."""
    settings = request.app.state.collector.settings
    return JSONResponse(collector_openapi(settings.collector_max_batch_events))


async def tracker_script(request: Request) -> Response:
    """`GET /tailor.js`: the JavaScript tracker, with `events.session_gap_minutes` in it."""
    settings = request.app.state.collector.settings
    return Response(render_tracker_script(settings.events_session_gap_minutes),
                    media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=300"})


async def shop_config(request: Request) -> Response:
    """`GET /shop/config.js`: the demo shop's endpoint and its throw-away public key."""
    key = request.app.state.collector.demo_shop_key
    body = "window.TAILOR_SHOP = " + json.dumps({"endpoint": EVENTS_PATH, "key": key}) + ";\n"
    return Response(body, media_type="application/javascript",
                    headers={"Cache-Control": "no-store"})


async def shop_home(request: Request) -> Response:
    """`GET /shop`: on to the demo shop's home page."""
    return RedirectResponse("/shop/")


def _routes(demo_shop: bool) -> list[Any]:
    routes: list[Any] = [
        Route(EVENTS_PATH, post_events, methods=["POST"]),
        Route(EVENTS_PATH, preflight_events, methods=["OPTIONS"]),
        # Segment's HTTP Tracking API (/v1/batch, /v1/track, ...): early in the list, as each
        # request is matched against the routes in order.
        *segment_routes(),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", healthz, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_spec, methods=["GET"]),
        Route(CUSTOMERS_PATH, forget_customer, methods=["DELETE"]),
        Route(JOB_PATH, forget_job, methods=["GET"]),
        Route("/tailor.js", tracker_script, methods=["GET"]),
        *(Route("/v1/customers/{customer_id:path}/" + action, admin_opt_change, methods=["POST"])
          for action in ("opt-out", "opt-in")),
        *(Route(path, handler, methods=[method]) for path in OPT_OUT_PATHS
          for handler, method in ((browser_opt_change, "POST"), (preflight_events, "OPTIONS"))),
        *tracking_routes(),
    ]
    if demo_shop:
        routes += [
            Route("/shop/config.js", shop_config, methods=["GET"]),
            Route("/shop", shop_home, methods=["GET"]),
            Mount("/shop", app=StaticFiles(directory=SHOP_DIR, html=True), name="shop"),
        ]
    return routes


def create_collector_app(settings: Settings, *, demo_shop: bool | None = None,
                         shop_origins: frozenset[str] | None = None,
                         commit_hook: CommitHook = NO_COMMIT_HOOK,
                         opt_outs: OptOutRegistry | None = None,
                         freeze_heap: bool = False) -> Starlette:
    """The collector as an ASGI app (also mounted inside the BentoML service).

    Args:
        settings: resolved settings; the `collector` section, the event store URL and
            `ingest.max_future_seconds` are used.
        demo_shop: serve the demo shop under /shop/ with a throw-away public key that
            lives in this process only; None follows `collector.demo_shop`.
        shop_origins: the origins a demo shop's pages are served from, which may use a
            public key without being in `collector.allowed_origins`. Default: with
            `demo_shop`, the loopback origins of `serving.host`/`serving.port`; without,
            none. The BentoML service passes its own origins when it serves the showcase
            shop (`serving.demo_shop`, `tailor.shop.app`).
        commit_hook: told of every group of committed events (the session-feature pusher
            of `tailor.features.collector_hook`); by default nobody is.
        opt_outs: the opt-out list (`tailor.privacy.opt_out_list.OptOutList`): events of
            its ids are dropped, and the opt-out routes change it. Without it nothing is
            dropped and those routes answer 503 (tests of other parts leave it out; `tailor
            collect` and the BentoML service always pass it).
        freeze_heap: once started, exempt everything loaded so far from Python's cyclic
            garbage collector (`gc.freeze`), as `tailor collect` does: each full pass over
            the start-up heap costs about 50 ms. Off where the app shares a process
            (tests; the BentoML service freezes its own heap).

    Returns:
        A Starlette app. Its writer thread starts with the app's lifespan, or on the first
        batch when the host does not run lifespans.

    Raises:
        ValueError: the keys file or a configured key hash is malformed.
    """
    demo_shop = settings.collector_demo_shop if demo_shop is None else demo_shop
    metrics_ = CollectorMetrics()
    context = CollectorContext(
        settings=settings,
        guard=key_guard(settings, settings.collector_rate_limit_per_second,
                        settings.collector_rate_limit_burst),
        allowed_origins=parse_origins(settings.collector_allowed_origins),
        metrics=metrics_, writer=BatchWriter(settings, metrics_, commit_hook),
        identity=IdentityCheck.from_settings(settings))
    if demo_shop:
        context.demo_shop_key = generate_key("public")
        context.key_ring.add(context.demo_shop_key, "public")
        context.shop_origins = shop_origins if shop_origins is not None else bound_origins(
            settings.serving_host, settings.serving_port)
    elif shop_origins is not None:
        context.shop_origins = shop_origins

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(context.writer.start)
        except Exception as error:  # keep serving: 503s and /healthz say why until it opens
            log.warning("collector: starting without an event store (%s); batches get 503 "
                        "and /healthz says why until it can be opened", error_key(error))
        if context.key_ring.count() == 0:
            log.warning("collector: no keys yet; every batch gets 401/403 until one is made "
                        "with `tailor keys create public` (or secret)")
        if freeze_heap:
            # The start-up heap (pandas, the store, the feature code) lives as long as the
            # process: leave it out of the cyclic collector's full passes, which the
            # batches' short-lived objects would otherwise trigger over and over.
            gc.freeze()
        yield
        await run_in_threadpool(context.writer.stop)
        await run_in_threadpool(app.state.tracked_mails.close)

    app = Starlette(routes=_routes(demo_shop), lifespan=lifespan,
                    middleware=[Middleware(SecurityHeadersMiddleware, page_prefixes=("/shop",),
                                           hsts_max_age=settings.collector_hsts_max_age_seconds)])
    app.state.collector = context
    app.state.opt_outs = opt_outs
    app.state.tracked_mails = TrackedMails(settings.event_store_url)
    app.state.tombstones = TombstoneSet(settings.home_path)  # forgotten customers
    return app


def serve_collector(settings: Settings, *, host: str, port: int, opt_outs: OptOutRegistry,
                    demo_shop: bool | None = None,
                    commit_hook: CommitHook = NO_COMMIT_HOOK) -> None:
    """Run the collector with uvicorn until interrupted (access log off: it would hold IPs;
    request heads capped at `collector.max_header_bytes` and `collector.max_header_count`).
    `opt_outs` and `commit_hook` are passed on to `create_collector_app`."""
    import uvicorn

    app = create_collector_app(settings, demo_shop=demo_shop,
                               shop_origins=bound_origins(host, port), commit_hook=commit_hook,
                               opt_outs=opt_outs, freeze_heap=True)
    log.info("collector on http://%s:%d%s -> %s", host, port, EVENTS_PATH,
             redact_url(settings.event_store_url))
    if app.state.collector.demo_shop_key:
        log.info("the tracker's test shop: http://%s:%d/shop/ (the showcase shop with live "
                 "recommendations on a trained home: tailor serve --demo-shop)", host, port)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info",
                server_header=False,
                http=header_limited_protocol(settings.collector_max_header_bytes,
                                             settings.collector_max_header_count,
                                             settings.collector_read_timeout_seconds))
