"""The serving pipeline: request -> features -> model -> filters -> answer with reasons.

Reads: the MLflow registry (models by alias, `tailor.serving.model_slots`), the online feature
store (`homepage` and `checkout` services, `tailor.features.online`), the privacy exclusion
list, the warehouse catalogue and popularity (at start-up). Writes: the BentoML model store
(versions it loads, `tailor.serving.model_store`), the daily incentive ledger (each
incentive offered reserves its expected cost, `tailor.serving.offer_budget`), the prediction
log (every answer, queued for a background writer into the event store's `predictions`
table, `tailor.serving.prediction_recorder`), Prometheus metrics (`tailor.serving.metrics`)
and logs; nothing else.

Each model follows the alias or version number of its `serving.<model>_model` setting,
which the answers report as `variant`.

Framework-free: the BentoML service (`bentos/`) only validates bodies with
`tailor.serving.schemas` and calls these methods. They never raise for a valid request:
when the feature store is unreachable, no model is loaded, the model fails or the time
budget (`serving.timeout_ms`, async methods on `tailor.serving.deadlines`' worker threads)
runs out, the answer is the popularity
fallback with `fallback: true` and the reason, counted in `tailor_fallbacks_total`.
Features older than their TTL (`stale`: defaults stand in for the customer's history)
flag the answer `stale: true` (counted in `tailor_stale_answers_total`); a checkout offer
on them is the fallback `stale_features`, so no incentive budget is spent on defaults.
Each public method records its own metrics (latency, outcome, fallbacks, batch sizes); the
service must not record them again.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from tailor.config import Settings
from tailor.serving.also_bought import CompanionIndex
from tailor.serving.budget import Ledger, open_ledger
from tailor.serving.catalogue import Catalogue, load_catalogue
from tailor.serving.checkout_offers import (
    NO_OFFER, CheckoutScorer, Decision, cart_facts, model_row,
)
from tailor.serving.deadlines import RequestDeadlines
from tailor.serving.exclusions import ExclusionList
from tailor.serving.fallback import FallbackLists, popular_from_model, popular_from_warehouse
from tailor.serving.homepage import HomepageRanker
from tailor.serving.metrics import ServingMetrics
from tailor.serving.model_slots import ModelSlot, ModelWatcher
from tailor.serving.offer_budget import budget_status, within_daily_budget
from tailor.serving.prediction_recorder import PredictionRecorder
from tailor.serving.schemas import (
    AlsoBoughtRequest, AlsoBoughtResponse, CheckoutOfferRequest, CheckoutOfferResponse,
    HomepageRequest, HomepageResponse, RecommendedItem, set_max_k,
)

log = logging.getLogger(__name__)

HOMEPAGE, ALSO_BOUGHT, CHECKOUT_OFFER = "homepage", "also_bought", "checkout_offer"
FEATURE_SERVICES: tuple[str, ...] = ("homepage", "checkout")

# Fallback kinds: the metric label (bounded), beside the free-text reason in the answer.
TIMEOUT = "timeout"
FEATURE_STORE = "feature_store"
NO_MODEL = "no_model"
MODEL_ERROR = "model_error"
INTERNAL_ERROR = "internal_error"
STALE_FEATURES = "stale_features"  # the customer's history is older than its TTL
ERROR_KINDS = frozenset({MODEL_ERROR, INTERNAL_ERROR})


@dataclass
class _Answer:
    """A response and, for a fallback, its kind (the metric label)."""

    response: Any
    kind: str | None = None


def _request_id() -> str:
    return uuid.uuid4().hex


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _filled(answers: list[_Answer | None]) -> list[_Answer]:
    """The answers, checked complete (a gap is a bug: the caller answers with fallbacks)."""
    if any(answer is None for answer in answers):
        raise RuntimeError("a request was left without an answer")
    return [answer for answer in answers if answer is not None]


class ServingPipeline:
    """Everything a serving process needs, loaded once.

    Args:
        settings: the Tailor settings (`serving` section, home, registry, online store).
        start_watcher: refresh the model aliases every `serving.reload_seconds` on a daemon
            thread (tests that drive `ModelSlot.refresh` themselves pass False).
        metrics: where to record (default: `ServingMetrics()` on the default registry).
        ledger: the daily incentive ledger (default: the one the settings name).
        freeze_heap: exempt everything loaded so far from Python's cyclic garbage collector
            once start-up is done, and each new model version when it switches in (`gc.freeze`).
            For server processes: a full collection walks every object the libraries and
            models hold (millions), a pause of 100 ms or more every few seconds under load,
            which was most of a server's p99. Tests that build many pipelines leave it off.
        record_predictions: write every answer to the prediction log (when
            `monitoring.prediction_log` is on too). The adaptive-batching scorer passes
            False: the service that returns its answers records them (`record_answers`).
    """

    def __init__(self, settings: Settings, *, start_watcher: bool = True,
                 metrics: ServingMetrics | None = None, ledger: Ledger | None = None,
                 freeze_heap: bool = False, record_predictions: bool = True) -> None:
        from tailor.features.online import OnlineFeatureReader

        started = time.perf_counter()
        self._started = self._closed = False
        self.settings = settings
        self.metrics = metrics or ServingMetrics()
        set_max_k(settings.serving_max_k)
        self.slots = self._slots()
        self.exclusions = ExclusionList(settings)
        self.ledger = ledger or open_ledger(settings)
        self.catalogue = Catalogue(error="not loaded yet")
        self.fallback = FallbackLists()
        self.features = {service: OnlineFeatureReader(settings, service)
                         for service in FEATURE_SERVICES}
        self.feature_errors: dict[str, str | None] = dict.fromkeys(FEATURE_SERVICES)
        self.deadlines = RequestDeadlines(settings.serving_threads, settings.serving_timeout_ms)
        self.watcher = ModelWatcher(self.slots, settings.serving_reload_seconds,
                                    on_switch=self._on_switch)
        self._freeze_heap = freeze_heap
        self.predictions = self._prediction_recorder(record_predictions)
        self._load()
        if freeze_heap:
            gc.collect()
            gc.freeze()
        self._started = True
        if start_watcher:
            self.watcher.start()
        log.info("serving pipeline ready in %.1f s: %s", time.perf_counter() - started,
                 {name: slot.current.version if slot.current else None
                  for name, slot in self.slots.items()})

    def _slots(self) -> dict[str, ModelSlot]:
        """One slot per served model, each preparing its request-time lookups on load."""
        preparers = {"homepage": self._homepage_ranker, "cross_sell": CompanionIndex,
                     "checkout": CheckoutScorer}
        return {name: ModelSlot(self.settings, name, self._reference(name), metrics=self.metrics,
                                prepare=prepare)
                for name, prepare in preparers.items()}

    def _prediction_recorder(self, wanted: bool) -> PredictionRecorder | None:
        """The prediction log's writer, started; None when answers are not recorded."""
        if not (wanted and self.settings.monitoring_prediction_log):
            return None
        return PredictionRecorder.from_settings(
            self.settings, self.metrics,
            is_excluded=lambda customer_id: customer_id in self.exclusions).start()

    def _reference(self, name: str) -> str:
        """The alias or version number `serving.<name>_model` names (the answer's variant)."""
        return str(getattr(self.settings, f"serving_{name}_model"))

    def _load(self) -> None:
        """Load the models; without a homepage model, the catalogue and the popularity list
        come from the warehouse (with one, `_on_switch` took them from it)."""
        self.watcher.refresh_all()
        if self.slots["homepage"].current is None:
            size = self.settings.serving_fallback_size
            self.catalogue = load_catalogue(self.settings)
            self.fallback.update(lambda: popular_from_warehouse(self.settings, size))

    # -- lifecycle ---------------------------------------------------------------------------

    def _homepage_ranker(self, model: Any) -> HomepageRanker:
        return HomepageRanker(model, self.settings.serving_max_k,
                              self.settings.serving_session_share)

    def _on_switch(self, name: str) -> None:
        """A new homepage version brings its own popularity (and maybe a newer catalogue);
        any new version joins the frozen heap (see `freeze_heap`)."""
        if self._freeze_heap and self._started:
            gc.freeze()  # cheap: moves the tracked objects aside, collects nothing
        if name != "homepage":
            return
        loaded = self.slots["homepage"].current
        if loaded is None:
            return
        size = self.settings.serving_fallback_size
        self.fallback.update(lambda: popular_from_model(loaded.model, size, loaded.version))
        catalogue = load_catalogue(self.settings)
        if len(catalogue) or not len(self.catalogue):
            self.catalogue = catalogue

    def ready(self) -> bool:
        """Start-up finished, the pipeline is open and no model that exists failed to load.

        Missing models or an empty shop do not make it unready: answers are then flagged
        fallbacks, and the event collector served beside the pipeline must take traffic
        from a shop's first day, or it would never get the data the models need. A
        registered model that cannot be loaded (a read-only home, a broken artifact, an
        unreadable registry) does: the fallbacks would hide a fault an operator must see."""
        return self.unready_reason() is None

    def unready_reason(self) -> str | None:
        """Why `ready()` is False, or None."""
        if not self._started:
            return "starting"
        if self._closed:
            return "closed"
        for name, slot in self.slots.items():
            problem = slot.broken()
            if problem is not None:
                return f"{name} model not loaded: {problem}"
        return None

    def status(self) -> dict[str, Any]:
        """Models and versions, their last load errors, the feature store, the fallback."""
        fallback = self.fallback.current
        return {
            "ready": self.ready(),
            "unready_reason": self.unready_reason(),
            "models": {name: slot.status() for name, slot in self.slots.items()},
            "features": {service: {"fast_path": reader.fast_path,
                                   "last_error": self.feature_errors[service]}
                         for service, reader in self.features.items()},
            "fallback": {"size": len(fallback), "source": fallback.source,
                         "last_error": self.fallback.last_error},
            "catalogue": {"products": len(self.catalogue), "error": self.catalogue.error},
            "excluded_customers": len(self.exclusions),
            "incentive_budget": budget_status(self.ledger),
            "prediction_log": self.predictions.status() if self.predictions else None,
            "timeout_ms": self.settings.serving_timeout_ms,
        }

    def close(self) -> None:
        """Stop the model watcher and the worker threads; write the queued predictions."""
        self._closed = True
        self.watcher.stop()
        self.deadlines.close()
        if self.predictions is not None:
            self.predictions.close()

    def record_answers(self, endpoint: str, requests: Sequence[Any],
                       responses: Sequence[Any]) -> None:
        """Queue answers for the prediction log (never blocks): the pipeline's own methods
        call it, and the service calls it with the batching scorer's answers it returns."""
        if self.predictions is not None:
            self.predictions.record(endpoint, requests, responses)

    # -- shared helpers ----------------------------------------------------------------------

    def _read_features(self, service: str, customer_ids: Sequence[str]) -> list[Any]:
        """One round trip to the online store; remembers the last error for /status."""
        vectors = self.features[service].read_many(list(customer_ids))
        errors = [vector.error for vector in vectors if vector.error]
        if vectors:
            self.feature_errors[service] = errors[0] if errors else None
        return vectors

    def _record(self, endpoint: str, answers: Sequence[_Answer], started: float) -> None:
        seconds = time.perf_counter() - started
        for answer in answers:
            if answer.kind is not None:
                self.metrics.fallback(endpoint, answer.kind)
            if answer.kind in ERROR_KINDS:
                self.metrics.error(endpoint)
            if getattr(answer.response, "stale", False):
                self.metrics.stale(endpoint)
            self.metrics.observe(endpoint, seconds,
                                 "fallback" if answer.response.fallback else "ok")

    def _guarded(self, endpoint: str, work: Callable[[Sequence[Any]], list[_Answer]],
                 requests: Sequence[Any],
                 fallback: Callable[[Any, str, str], _Answer]) -> list[_Answer]:
        """`work(requests)`; an unexpected exception gives every request the fallback."""
        try:
            return work(requests)
        except Exception as error:
            log.exception("%s: unexpected error; answering with the fallback", endpoint)
            return [fallback(request, INTERNAL_ERROR, f"internal error: {_describe(error)}")
                    for request in requests]

    def _sync(self, endpoint: str, work: Callable[[Sequence[Any]], list[_Answer]],
              requests: Sequence[Any], fallback: Callable[[Any, str, str], _Answer]
              ) -> list[Any]:
        started = time.perf_counter()
        answers = self._guarded(endpoint, work, requests, fallback)
        self._record(endpoint, answers, started)
        responses = [answer.response for answer in answers]
        self.record_answers(endpoint, requests, responses)
        return responses

    async def _within_budget(self, endpoint: str,
                             work: Callable[[Sequence[Any]], list[_Answer]], request: Any,
                             fallback: Callable[[Any, str, str], _Answer]) -> Any:
        """Run one request on a worker thread; past the time budget answer the fallback
        (the thread finishes in the background, its answer unused)."""
        started = time.perf_counter()
        answer = await self.deadlines.run(
            lambda: self._guarded(endpoint, work, [request], fallback),
            timed_out=lambda: fallback(
                request, TIMEOUT,
                f"timeout: no answer within {self.settings.serving_timeout_ms} ms"),
            failed=lambda error: fallback(request, INTERNAL_ERROR,
                                          f"internal error: {_describe(error)}"))
        self._record(endpoint, [answer], started)
        self.record_answers(endpoint, [request], [answer.response])
        return answer.response

    # -- homepage ----------------------------------------------------------------------------

    def homepage(self, request: HomepageRequest) -> HomepageResponse:
        """The products to show one visitor, with reasons; never raises."""
        return self._sync(HOMEPAGE, self._homepage_answers, [request],
                          self._homepage_fallback)[0]

    def homepage_batch(self, requests: Sequence[HomepageRequest]) -> list[HomepageResponse]:
        """`homepage` for many visitors: one feature read and one model call for all."""
        self.metrics.batch_size(HOMEPAGE, len(requests))
        return self._sync(HOMEPAGE, self._homepage_answers, requests, self._homepage_fallback)

    async def ahomepage(self, request: HomepageRequest) -> HomepageResponse:
        """`homepage` on a worker thread within `serving.timeout_ms`."""
        return await self._within_budget(HOMEPAGE, self._homepage_answers, request,
                                         self._homepage_fallback)

    def _homepage_fallback(self, request: HomepageRequest, kind: str, reason: str) -> _Answer:
        items = self.fallback.current.items(request.k)
        return _Answer(HomepageResponse(
            items=items, model_version=None, variant=self.slots["homepage"].reference,
            fallback=True, fallback_reason=reason, personalised=False,
            request_id=_request_id()), kind)

    def _homepage_answers(self, requests: Sequence[HomepageRequest]) -> list[_Answer]:
        slot = self.slots["homepage"]
        loaded = slot.current
        if loaded is None:
            return [self._homepage_fallback(request, NO_MODEL, slot.unavailable_reason())
                    for request in requests]
        ranker: HomepageRanker = loaded.prepared
        answers: list[_Answer | None] = [None] * len(requests)
        personal = []
        for position, request in enumerate(requests):
            if request.customer_id in self.exclusions:
                answers[position] = self._homepage_answer(
                    request, loaded.version, ranker.non_personalised(request.k), False)
            else:
                personal.append(position)
        vectors = self._read_features("homepage", [requests[p].customer_id for p in personal])
        ranked = []
        for position, vector in zip(personal, vectors):
            if vector.error:
                answers[position] = self._homepage_fallback(
                    requests[position], FEATURE_STORE,
                    f"feature store unavailable: {vector.error}")
            else:
                ranked.append((position, self._browsing(ranker, requests[position], vector)))
        self._rank(ranker, loaded.version, requests, ranked, answers)
        for position, vector in zip(personal, vectors):
            answer = answers[position]
            if vector.stale and answer is not None:
                answer.response.stale = True
        return _filled(answers)

    @staticmethod
    def _browsing(ranker: HomepageRanker, request: HomepageRequest, vector: Any
                  ) -> frozenset[str]:
        """Categories the visitor browses now: the session's viewed ones and the context's."""
        viewed = list(vector.values.get("session_viewed_categories") or ())
        return ranker.known_categories(viewed + list(request.context.get("categories") or ()))

    def _rank(self, ranker: HomepageRanker, version: str, requests: Sequence[HomepageRequest],
              ranked: list[tuple[int, frozenset[str]]], answers: list[_Answer | None]) -> None:
        """Score the personalised requests in one model call; a model error falls back."""
        if not ranked:
            return
        chosen = [requests[position] for position, _ in ranked]
        try:
            lists = ranker.rank([request.customer_id for request in chosen],
                                [request.k for request in chosen],
                                [browsing for _, browsing in ranked])
        except Exception as error:
            log.exception("homepage model v%s failed", version)
            for position, _ in ranked:
                answers[position] = self._homepage_fallback(
                    requests[position], MODEL_ERROR,
                    f"homepage model v{version} failed: {_describe(error)}")
            return
        for (position, _), items in zip(ranked, lists):
            answers[position] = self._homepage_answer(requests[position], version, items, True)

    def _homepage_answer(self, request: HomepageRequest, version: str,
                         items: list[RecommendedItem], personalised: bool) -> _Answer:
        return _Answer(HomepageResponse(
            items=items, model_version=version, variant=self.slots["homepage"].reference,
            fallback=False, fallback_reason=None, personalised=personalised,
            request_id=_request_id()))

    # -- also bought -------------------------------------------------------------------------

    def also_bought(self, request: AlsoBoughtRequest) -> AlsoBoughtResponse:
        """Companions of the product being viewed, with confidence and lift; never raises."""
        return self._sync(ALSO_BOUGHT, self._also_bought_answers, [request],
                          self._also_bought_fallback)[0]

    async def aalso_bought(self, request: AlsoBoughtRequest) -> AlsoBoughtResponse:
        """`also_bought` on a worker thread within `serving.timeout_ms`."""
        return await self._within_budget(ALSO_BOUGHT, self._also_bought_answers, request,
                                         self._also_bought_fallback)

    def _category_of(self, product_id: str) -> str | None:
        """The product's category from the catalogue, else from the homepage model."""
        product = self.catalogue.get(product_id)
        if product is not None and product.category:
            return product.category
        loaded = self.slots["homepage"].current
        if loaded is None:
            return None
        position = loaded.model.products.positions.get(product_id)
        if position is None:
            return None
        return str(loaded.model.categories[position]) or None

    def _in_stock(self, product_id: str) -> bool:
        product = self.catalogue.get(product_id)
        return product is None or product.in_stock

    def _popular_fill(self, request: AlsoBoughtRequest, items: list[RecommendedItem],
                      exclude: set[str]) -> list[RecommendedItem]:
        """`items` topped up to k: popular in the anchor's category first, then overall."""
        taken = exclude | {item.product_id for item in items}
        filled = list(items)
        category = self._category_of(request.product_id)
        for scope in ((category, None) if category else (None,)):
            if len(filled) >= request.k:
                break
            more = self.fallback.current.items(request.k - len(filled), scope, taken)
            filled += more
            taken |= {item.product_id for item in more}
        return filled

    def _also_bought_exclusions(self, request: AlsoBoughtRequest) -> set[str]:
        return {request.product_id, *(request.context.get("cart") or ())}

    def _also_bought_fallback(self, request: AlsoBoughtRequest, kind: str, reason: str
                              ) -> _Answer:
        items = self._popular_fill(request, [], self._also_bought_exclusions(request))
        return _Answer(AlsoBoughtResponse(
            items=items, model_version=None, variant=self.slots["cross_sell"].reference,
            fallback=True, fallback_reason=reason, request_id=_request_id()), kind)

    def _also_bought_answers(self, requests: Sequence[AlsoBoughtRequest]) -> list[_Answer]:
        return [self._also_bought_answer(request) for request in requests]

    def _also_bought_answer(self, request: AlsoBoughtRequest) -> _Answer:
        slot = self.slots["cross_sell"]
        loaded = slot.current
        if loaded is None:
            return self._also_bought_fallback(request, NO_MODEL, slot.unavailable_reason())
        exclude = self._also_bought_exclusions(request)
        try:
            items = loaded.prepared.items(request.product_id, request.k, exclude,
                                          self._in_stock)
        except Exception as error:
            log.exception("cross_sell model v%s failed", loaded.version)
            return self._also_bought_fallback(
                request, MODEL_ERROR, f"cross_sell model v{loaded.version} failed: "
                                      f"{_describe(error)}")
        return _Answer(AlsoBoughtResponse(
            items=self._popular_fill(request, items, exclude), model_version=loaded.version,
            variant=slot.reference, fallback=False, fallback_reason=None,
            request_id=_request_id()))

    # -- checkout offer ----------------------------------------------------------------------

    def checkout_offer(self, request: CheckoutOfferRequest) -> CheckoutOfferResponse:
        """P(abandon) of the cart and the incentive to offer, if any; never raises."""
        return self._sync(CHECKOUT_OFFER, self._checkout_answers, [request],
                          self._checkout_fallback)[0]

    def checkout_batch(self, requests: Sequence[CheckoutOfferRequest]
                       ) -> list[CheckoutOfferResponse]:
        """`checkout_offer` for many carts: one feature read and one model call."""
        self.metrics.batch_size(CHECKOUT_OFFER, len(requests))
        return self._sync(CHECKOUT_OFFER, self._checkout_answers, requests,
                          self._checkout_fallback)

    async def acheckout_offer(self, request: CheckoutOfferRequest) -> CheckoutOfferResponse:
        """`checkout_offer` on a worker thread within `serving.timeout_ms`."""
        return await self._within_budget(CHECKOUT_OFFER, self._checkout_answers, request,
                                         self._checkout_fallback)

    def _checkout_fallback(self, request: CheckoutOfferRequest, kind: str, reason: str
                           ) -> _Answer:
        return _Answer(CheckoutOfferResponse(
            p_abandon=None, offer=NO_OFFER, reason=f"no offer: {reason}", model_version=None,
            variant=self.slots["checkout"].reference, fallback=True, fallback_reason=reason,
            stale=kind == STALE_FEATURES, request_id=_request_id()), kind)

    def _price_of(self, product_id: str) -> float | None:
        product = self.catalogue.get(product_id)
        return product.price if product is not None else None

    def _checkout_answers(self, requests: Sequence[CheckoutOfferRequest]) -> list[_Answer]:
        slot = self.slots["checkout"]
        loaded = slot.current
        if loaded is None:
            return [self._checkout_fallback(request, NO_MODEL, slot.unavailable_reason())
                    for request in requests]
        excluded = [request.customer_id in self.exclusions for request in requests]
        readable = [request.customer_id for request, out in zip(requests, excluded) if not out]
        vectors = iter(self._read_features("checkout", readable))
        answers: list[_Answer | None] = [None] * len(requests)
        moment = datetime.now(timezone.utc)
        scored: list[tuple[int, Any, dict[str, float]]] = []
        for position, request in enumerate(requests):
            vector = None if excluded[position] else next(vectors)
            if vector is not None and vector.error:
                answers[position] = self._checkout_fallback(
                    request, FEATURE_STORE, f"feature store unavailable: {vector.error}")
                continue
            if vector is not None and vector.stale:
                # A score of default features would spend the incentive budget on nothing.
                answers[position] = self._checkout_fallback(
                    request, STALE_FEATURES,
                    f"stale features: the customer's history ({', '.join(vector.stale_views)})"
                    " is older than its TTL, so the model would score defaults; no incentive "
                    "is spent on them (run `tailor features` on recent events)")
                continue
            facts = cart_facts(request.cart, self._price_of)
            scored.append((position, facts,
                           model_row(facts, vector.values if vector else {}, moment)))
        self._decide(loaded, requests, scored, excluded, answers)
        return _filled(answers)

    def _decide(self, loaded: Any, requests: Sequence[CheckoutOfferRequest],
                scored: list[tuple[int, Any, dict[str, float]]], excluded: list[bool],
                answers: list[_Answer | None]) -> None:
        """One model call for every cart that has its features."""
        if not scored:
            return
        try:
            decisions = loaded.prepared.decide([row for _, _, row in scored])
        except Exception as error:
            log.exception("checkout model v%s failed", loaded.version)
            for position, _, _ in scored:
                answers[position] = self._checkout_fallback(
                    requests[position], MODEL_ERROR,
                    f"checkout model v{loaded.version} failed: {_describe(error)}")
            return
        for (position, facts, _), decision in zip(scored, decisions):
            decision = self._within_daily_budget(decision)
            notes = []
            if facts.unpriced:
                notes.append(f"{facts.unpriced} cart line(s) without a known price not counted "
                             "in the cart value")
            if excluded[position]:
                notes.append("the customer's history was not used (opted out)")
            reason = "; ".join([decision.reason, *notes])
            answers[position] = _Answer(CheckoutOfferResponse(
                p_abandon=decision.p_abandon, offer=decision.offer, reason=reason,
                model_version=loaded.version, variant=self.slots["checkout"].reference,
                fallback=False, fallback_reason=None, request_id=_request_id()))

    def _within_daily_budget(self, decision: Decision) -> Decision:
        """The decision within today's incentive budget (`tailor.serving.offer_budget`)."""
        return within_daily_budget(decision, self.ledger, self.metrics,
                                   self.deadlines.current())
