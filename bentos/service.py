"""The Tailor BentoML services: HTTP glue over `tailor.serving`, where all request logic lives.

`Tailor` is the entry service: `POST /homepage`, `/also_bought`, `/checkout_offer` (one
request each, the JSON bodies of `tailor.serving.schemas`), `POST /batch/homepage` and
`/batch/checkout_offer` (`{"requests": [...]}` of the same requests; an object rather than a
bare list, whose malformed JSON BentoML would answer with a 500), the event collector under
`/collect`, BentoML's `/healthz`, `/livez` (the process answers), `/readyz` (503 until the
pipeline has started, while a model that exists failed to load, and while the collector's
event store refuses writes; the reason goes to the log once a minute), the OpenAPI spec at
`/docs.json`, and Tailor's own `/` (a script-free index of the endpoints, in place of
BentoML's Swagger page), `/metrics` (every `tailor_*` series, summed over the workers) and
`/dashboard` (the newest daily report page of `tailor report`), and with
`serving.demo_shop` on the demo shop under `/shop` (`tailor.shop.app`: pages and
same-origin routes answered by this worker's pipeline, without a key).
Every path but health, the index and the spec needs a key with the path's scope
(`tailor.serving.http.SCOPE_RULES`: `recommendations:read` for the model endpoints,
`admin` under `/v1/customers`; `/metrics` too unless `serving.metrics_without_key`), within
its rate limit (429); a request that stalls half-sent gets 408 after
`serving.read_timeout_seconds`; a body that is not JSON gets 415; bodies are capped at `serving.max_request_bytes`, request
heads at `serving.max_header_bytes` and `serving.max_header_count` (431); every answer
carries the security headers. BentoML's own HTTP metrics are off: they label requests with
their raw paths (`tailor.serving.http_metrics` counts by route instead). The collector keeps
its own keys and limits.

`Scorer` exists only when `serving.adaptive_batching` is on: its batchable methods merge
concurrent requests (up to `serving.max_batch_size`, waiting at most
`serving.max_latency_ms`) into one call of the pipeline's batch scoring, and `Tailor`
awaits them for homepage and checkout requests; when the scorer refuses (BentoML's
dispatcher answers 503 when it expects to miss `max_latency_ms`), fails or takes longer
than `serving.timeout_ms`, `Tailor` answers in-process with its own pipeline (itself
bounded by `serving.timeout_ms`). With batching off, `Tailor` scores in-process. Every
answer `Tailor` returns goes to the prediction log (`tailor.serving.prediction_recorder`,
off the request path): the pipeline records its own answers, `Tailor` the scorer's.

Reads the settings from the environment (TAILOR_*, as `tailor serve` passes them) once, at
import: the worker counts and batch limits are part of the service definitions, and the
header limits must be in place before the worker's uvicorn server picks its parser
(`tailor.web.header_limits.use_in_bentoml_workers`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Annotated, Awaitable, Callable

import bentoml
from pydantic import Field

from tailor.config import load_settings
from starlette.routing import Route

from tailor.events.collector.access import bound_origins
from tailor.events.collector.app import create_collector_app
from tailor.features.collector_hook import session_feature_hook
from tailor.privacy.opt_out_list import OptOutList
from tailor.reports.files import latest_page
from tailor.server import ENDPOINTS
from tailor.serving.http import OPEN_PATHS as SERVING_OPEN_PATHS
from tailor.serving.http import ApiKeyMiddleware, BodyLimitMiddleware, JsonOnlyMiddleware
from tailor.serving.http_metrics import RouteMetricsMiddleware
from tailor.serving.ops_routes import create_ops_app
from tailor.serving.schemas import (
    AlsoBoughtRequest,
    AlsoBoughtResponse,
    CheckoutOfferRequest,
    CheckoutOfferResponse,
    HomepageRequest,
    HomepageResponse,
)
from tailor.throttled_log import ThrottledLog
from tailor.web.header_limits import use_in_bentoml_workers
from tailor.web.security_headers import SecurityHeadersMiddleware

log = logging.getLogger("tailor.bentos")

SETTINGS = load_settings()
# Each worker process imports this module: its threads (the event loop, the scoring threads)
# hand the interpreter over after serving.switch_interval_ms instead of Python's 5 ms.
sys.setswitchinterval(SETTINGS.serving_switch_interval_ms / 1000)
use_in_bentoml_workers(SETTINGS.serving_max_header_bytes,
                       SETTINGS.serving_max_header_count,
                       SETTINGS.serving_read_timeout_seconds)
BATCHING = SETTINGS.serving_adaptive_batching
COLLECTOR_PREFIX = "/collect"
# Everything but the open paths of tailor.serving.http (metrics included, unless
# serving.metrics_without_key) needs a secret key.
OPEN_PATHS = SERVING_OPEN_PATHS + (("/metrics",) if SETTINGS.serving_metrics_without_key else ())
SHOP_PREFIX = "/shop"
DEMO_SHOP = SETTINGS.serving_demo_shop
# The collector checks its own keys; the demo shop's routes need none (tailor.shop.app).
OPEN_PREFIXES = (COLLECTOR_PREFIX,) + ((SHOP_PREFIX,) if DEMO_SHOP else ())
SYSTEM_ROUTES = ("/healthz", "/livez", "/readyz", "/metrics", "/docs.json", "/", "/schema.json",
                 "/dashboard")
COLLECTOR_APP = create_collector_app(
    SETTINGS, commit_hook=session_feature_hook(SETTINGS), opt_outs=OptOutList(SETTINGS),
    # the demo shop's pages, served here, send events with a public key from this origin
    shop_origins=bound_origins(SETTINGS.serving_host, SETTINGS.serving_port) if DEMO_SHOP
    else None)
# The demo shop (serving.demo_shop): its pages and same-origin routes answered in process
# by this worker's pipeline (tailor.shop.app), so no key with recommendations:read reaches
# a browser.
SHOP_APP = None
if DEMO_SHOP:
    from tailor.shop.app import create_shop_app

    SHOP_APP = create_shop_app(SETTINGS)
    log.warning("serving.demo_shop is on: /shop/ answers any customer's recommendations and "
                "signs in as any customer without a key; for demo homes only")
OPS_APP = create_ops_app(ENDPOINTS, dashboard_page=latest_page(SETTINGS))
BATCH_LIMIT = Field(min_length=1, max_length=SETTINGS.serving_max_batch_size)
HomepageBatch = Annotated[list[HomepageRequest], BATCH_LIMIT]
CheckoutBatch = Annotated[list[CheckoutOfferRequest], BATCH_LIMIT]
SCORER_TIMEOUT_SECONDS = SETTINGS.serving_timeout_ms / 1000.0
# No access log: its lines hold the shoppers' IP addresses (the collector keeps none either).
# No BentoML HTTP metrics: they label each request with its raw path (unbounded series).
# No OpenTelemetry span per request unless serving.tracing (every path excluded).
SERVICE_CONFIG = {"workers": SETTINGS.serving_workers,
                  "logging": {"access": {"enabled": False}},
                  "metrics": {"enabled": False},
                  **({} if SETTINGS.serving_tracing else {"tracing": {"excluded_urls": [".*"]}})}


def _pipeline(record_predictions: bool = True):
    """The request pipeline: loads the champion models now, then follows their aliases; the
    objects loaded by then are exempt from the cyclic garbage collector (`freeze_heap`).
    `record_predictions`: whether its answers go to the prediction log (the scorer's are
    recorded by `Tailor`, which returns them, so an answer it did not use is not logged)."""
    from tailor.serving.pipeline import ServingPipeline

    return ServingPipeline(SETTINGS, freeze_heap=True, record_predictions=record_predictions)


@bentoml.service(name="TailorScorer", **SERVICE_CONFIG)
class Scorer:
    """Adaptive batching: concurrent requests merged into one pipeline call."""

    def __init__(self) -> None:
        self.pipeline = _pipeline(record_predictions=False)

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.serving_max_batch_size,
                 max_latency_ms=SETTINGS.serving_max_latency_ms)
    def homepage_batch(self, requests: list[HomepageRequest], /) -> list[HomepageResponse]:
        return self.pipeline.homepage_batch(requests)

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.serving_max_batch_size,
                 max_latency_ms=SETTINGS.serving_max_latency_ms)
    def checkout_batch(self, requests: list[CheckoutOfferRequest], /
                       ) -> list[CheckoutOfferResponse]:
        return self.pipeline.checkout_batch(requests)

    def __is_ready__(self) -> bool:
        return _ready(self.pipeline)

    @bentoml.on_shutdown
    def close(self) -> None:
        self.pipeline.close()


NOT_READY_LOG = ThrottledLog(log)


def _ready(pipeline, collector=None) -> bool:
    """Whether the service may take traffic: the pipeline is ready and (for the service that
    mounts it) the collector's event store takes writes. The reason is logged when not."""
    problem = pipeline.unready_reason()
    if problem is None and collector is not None:
        problem = collector.state.collector.writer.health_problem()
    if problem is not None and problem != "starting":
        NOT_READY_LOG.log(logging.WARNING, problem, "/readyz: not ready: %s", problem)
    return problem is None


def _with_shop(service_class: type) -> type:
    """Mount the demo shop at /shop when it is on."""
    if SHOP_APP is None:
        return service_class
    return bentoml.asgi_app(SHOP_APP, path=SHOP_PREFIX, name="shop")(service_class)


@bentoml.service(name="Tailor", **SERVICE_CONFIG)
@bentoml.asgi_app(COLLECTOR_APP, path=COLLECTOR_PREFIX, name="collector")
@_with_shop
@bentoml.asgi_app(OPS_APP, path="/", name="ops")
class Tailor:
    """Recommendations, checkout offers and event collection for an online shop."""

    if BATCHING:
        scorer = bentoml.depends(Scorer)

    def __init__(self) -> None:
        self.pipeline = _pipeline()
        if SHOP_APP is not None:
            SHOP_APP.state.shop.pipeline = self.pipeline

    @bentoml.api(route="/homepage")
    async def homepage(self, request: HomepageRequest, /) -> HomepageResponse:
        """Homepage products for a customer, each with the reason it is shown."""
        if BATCHING:
            answers = await self._scored(self.scorer.to_async.homepage_batch, "homepage",
                                         [request])
            if answers:
                return answers[0]
        return await self.pipeline.ahomepage(request)

    @bentoml.api(route="/also_bought")
    async def also_bought(self, request: AlsoBoughtRequest, /) -> AlsoBoughtResponse:
        """Products bought together with a product, with confidence and lift."""
        return await self.pipeline.aalso_bought(request)

    @bentoml.api(route="/checkout_offer")
    async def checkout_offer(self, request: CheckoutOfferRequest, /) -> CheckoutOfferResponse:
        """P(abandon) of a cart and the incentive to show, if any."""
        if BATCHING:
            answers = await self._scored(self.scorer.to_async.checkout_batch,
                                         "checkout_offer", [request])
            if answers:
                return answers[0]
        return await self.pipeline.acheckout_offer(request)

    @bentoml.api(route="/batch/homepage")
    async def homepage_batch(self, requests: HomepageBatch) -> list[HomepageResponse]:
        """Several homepage requests in one call (at most serving.max_batch_size)."""
        if BATCHING:
            answers = await self._scored(self.scorer.to_async.homepage_batch, "homepage",
                                         requests)
            if answers:
                return answers
        return await asyncio.gather(*(self.pipeline.ahomepage(request) for request in requests))

    @bentoml.api(route="/batch/checkout_offer")
    async def checkout_batch(self, requests: CheckoutBatch) -> list[CheckoutOfferResponse]:
        """Several carts in one call (at most serving.max_batch_size)."""
        if BATCHING:
            answers = await self._scored(self.scorer.to_async.checkout_batch,
                                         "checkout_offer", requests)
            if answers:
                return answers
        return await asyncio.gather(*(self.pipeline.acheckout_offer(request)
                                      for request in requests))

    async def _scored(self, method: Callable[[list], Awaitable[list]], endpoint: str,
                      requests: list) -> list:
        """The scorer's answers to `requests`, recorded in the prediction log; [] when it
        fails or runs out of time (the in-process answer is then the one recorded)."""
        started = time.perf_counter()
        try:
            answers = await asyncio.wait_for(method(requests), SCORER_TIMEOUT_SECONDS)
        except Exception as error:  # any failure of the scorer: the caller answers in-process
            log.warning("scorer unavailable (%s); answering in-process", type(error).__name__)
            return []
        self.pipeline.record_answers(endpoint, requests, answers,
                                     (time.perf_counter() - started) * 1000.0)
        return answers

    def __is_ready__(self) -> bool:
        return _ready(self.pipeline, COLLECTOR_APP)

    @bentoml.on_shutdown
    def close(self) -> None:
        self.pipeline.close()


def _known_routes() -> list[str]:
    """Every path the service answers (metric labels): its APIs, the system paths, the
    collector's routes."""
    collector = [COLLECTOR_PREFIX + route.path for route in COLLECTOR_APP.routes
                 if isinstance(route, Route)]
    shop = [SHOP_PREFIX + route.path for route in (SHOP_APP.routes if SHOP_APP else ())
            if isinstance(route, Route)]
    return [api.route for api in Tailor.apis.values()] + list(SYSTEM_ROUTES) + collector + shop


# The first added wraps the others: every answer, refusals included, gets the security
# headers and is counted.
Tailor.add_asgi_middleware(SecurityHeadersMiddleware,
                           hsts_max_age=SETTINGS.serving_hsts_max_age_seconds)
Tailor.add_asgi_middleware(RouteMetricsMiddleware, routes=_known_routes())
Tailor.add_asgi_middleware(ApiKeyMiddleware, settings=SETTINGS, open_paths=OPEN_PATHS,
                           passthrough_prefixes=OPEN_PREFIXES)
Tailor.add_asgi_middleware(BodyLimitMiddleware,
                           max_bytes=SETTINGS.serving_max_request_bytes,
                           passthrough_prefixes=(COLLECTOR_PREFIX,))
Tailor.add_asgi_middleware(JsonOnlyMiddleware, passthrough_prefixes=(COLLECTOR_PREFIX,))
