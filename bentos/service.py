"""The Tailor BentoML services: HTTP glue over `tailor.serving`, where all request logic lives.

`Tailor` is the entry service: `POST /homepage`, `/also_bought`, `/checkout_offer` (one
request each, the JSON bodies of `tailor.serving.schemas`), `POST /batch/homepage` and
`/batch/checkout_offer` (`{"requests": [...]}` of the same requests; an object rather than a
bare list, whose malformed JSON BentoML would answer with a 500), the event collector under
`/collect`, BentoML's `/healthz`, `/livez` (the process answers), `/readyz` (503 until the
pipeline has started, while a model that exists failed to load, and while the collector's
event store refuses writes; the reason goes to the log once a minute) and
`/metrics` (Prometheus, the `tailor_*` series included), and the OpenAPI spec at
`/docs.json`. Every path but health and the spec needs a secret key; bodies are capped at
`serving.max_request_bytes`. The collector keeps its own keys and limits.

`Scorer` exists only when `serving.adaptive_batching` is on: its batchable methods merge
concurrent requests (up to `serving.max_batch_size`, waiting at most
`serving.max_latency_ms`) into one call of the pipeline's batch scoring, and `Tailor`
awaits them for homepage and checkout requests; when the scorer refuses (BentoML's
dispatcher answers 503 when it expects to miss `max_latency_ms`), fails or takes longer
than `serving.timeout_ms`, `Tailor` answers in-process with its own pipeline (itself
bounded by `serving.timeout_ms`). With batching off, `Tailor` scores in-process.

Reads the settings from the environment (TAILOR_*, as `tailor serve` passes them) once, at
import: the worker counts and batch limits are part of the service definitions.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated, Awaitable, Callable

import bentoml
from pydantic import Field

from tailor.config import load_settings
from tailor.events.collector import create_collector_app
from tailor.serving.http import ApiKeyMiddleware, BodyLimitMiddleware
from tailor.serving.schemas import (
    AlsoBoughtRequest,
    AlsoBoughtResponse,
    CheckoutOfferRequest,
    CheckoutOfferResponse,
    HomepageRequest,
    HomepageResponse,
)
from tailor.throttled_log import ThrottledLog

log = logging.getLogger("tailor.bentos")

SETTINGS = load_settings()
# Each worker process imports this module: its threads (the event loop, the scoring threads)
# hand the interpreter over after serving.switch_interval_ms instead of Python's 5 ms.
sys.setswitchinterval(float(SETTINGS.serving_switch_interval_ms) / 1000)
BATCHING = bool(SETTINGS.serving_adaptive_batching)
COLLECTOR_PREFIX = "/collect"
# No key for health probes and the API description; everything else needs a secret key.
OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/docs.json", "/")
OPEN_PREFIXES = (COLLECTOR_PREFIX, "/static_content")
BATCH_LIMIT = Field(min_length=1, max_length=int(SETTINGS.serving_max_batch_size))
HomepageBatch = Annotated[list[HomepageRequest], BATCH_LIMIT]
CheckoutBatch = Annotated[list[CheckoutOfferRequest], BATCH_LIMIT]
SCORER_TIMEOUT_SECONDS = int(SETTINGS.serving_timeout_ms) / 1000.0
# No access log: its lines hold the shoppers' IP addresses (the collector keeps none either).
SERVICE_CONFIG = {"workers": int(SETTINGS.serving_workers),
                  "logging": {"access": {"enabled": False}}}


def _pipeline():
    """The request pipeline: loads the champion models now, then follows their aliases; the
    objects loaded by then are exempt from the cyclic garbage collector (`freeze_heap`)."""
    from tailor.serving.pipeline import ServingPipeline

    return ServingPipeline(SETTINGS, freeze_heap=True)


@bentoml.service(name="TailorScorer", **SERVICE_CONFIG)
class Scorer:
    """Adaptive batching: concurrent requests merged into one pipeline call."""

    def __init__(self) -> None:
        self.pipeline = _pipeline()

    @bentoml.api(batchable=True, max_batch_size=int(SETTINGS.serving_max_batch_size),
                 max_latency_ms=int(SETTINGS.serving_max_latency_ms))
    def homepage_batch(self, requests: list[HomepageRequest], /) -> list[HomepageResponse]:
        return self.pipeline.homepage_batch(requests)

    @bentoml.api(batchable=True, max_batch_size=int(SETTINGS.serving_max_batch_size),
                 max_latency_ms=int(SETTINGS.serving_max_latency_ms))
    def checkout_batch(self, requests: list[CheckoutOfferRequest], /
                       ) -> list[CheckoutOfferResponse]:
        return self.pipeline.checkout_batch(requests)

    def __is_ready__(self) -> bool:
        return _ready(self.pipeline)

    @bentoml.on_shutdown
    def close(self) -> None:
        self.pipeline.close()


COLLECTOR = create_collector_app(SETTINGS)
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


@bentoml.service(name="Tailor", **SERVICE_CONFIG)
@bentoml.asgi_app(COLLECTOR, path=COLLECTOR_PREFIX, name="collector")
class Tailor:
    """Recommendations, checkout offers and event collection for an online shop."""

    if BATCHING:
        scorer = bentoml.depends(Scorer)

    def __init__(self) -> None:
        self.pipeline = _pipeline()

    @bentoml.api(route="/homepage")
    async def homepage(self, request: HomepageRequest, /) -> HomepageResponse:
        """Homepage products for a customer, each with the reason it is shown."""
        if BATCHING:
            answers = await self._scored(self.scorer.to_async.homepage_batch, [request])
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
            answers = await self._scored(self.scorer.to_async.checkout_batch, [request])
            if answers:
                return answers[0]
        return await self.pipeline.acheckout_offer(request)

    @bentoml.api(route="/batch/homepage")
    async def homepage_batch(self, requests: HomepageBatch) -> list[HomepageResponse]:
        """Several homepage requests in one call (at most serving.max_batch_size)."""
        if BATCHING:
            answers = await self._scored(self.scorer.to_async.homepage_batch, requests)
            if answers:
                return answers
        return await asyncio.gather(*(self.pipeline.ahomepage(request) for request in requests))

    @bentoml.api(route="/batch/checkout_offer")
    async def checkout_batch(self, requests: CheckoutBatch) -> list[CheckoutOfferResponse]:
        """Several carts in one call (at most serving.max_batch_size)."""
        if BATCHING:
            answers = await self._scored(self.scorer.to_async.checkout_batch, requests)
            if answers:
                return answers
        return await asyncio.gather(*(self.pipeline.acheckout_offer(request)
                                      for request in requests))

    async def _scored(self, method: Callable[[list], Awaitable[list]], requests: list) -> list:
        """The scorer's answers to `requests`; [] when it fails or runs out of time."""
        try:
            return await asyncio.wait_for(method(requests), SCORER_TIMEOUT_SECONDS)
        except Exception as error:  # any failure of the scorer: the caller answers in-process
            log.warning("scorer unavailable (%s); answering in-process", type(error).__name__)
            return []

    def __is_ready__(self) -> bool:
        return _ready(self.pipeline, COLLECTOR)

    @bentoml.on_shutdown
    def close(self) -> None:
        self.pipeline.close()


Tailor.add_asgi_middleware(ApiKeyMiddleware, settings=SETTINGS, open_paths=OPEN_PATHS,
                           passthrough_prefixes=OPEN_PREFIXES)
Tailor.add_asgi_middleware(BodyLimitMiddleware,
                           max_bytes=int(SETTINGS.serving_max_request_bytes),
                           passthrough_prefixes=(COLLECTOR_PREFIX,))
