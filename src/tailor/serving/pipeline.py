"""The serving pipeline: request -> features -> model -> filters -> answer with reasons.

Reads: the MLflow registry (models by alias, `tailor.serving.model_slots`), the online feature
store (`homepage` and `checkout` services, `tailor.features.online`), the privacy exclusion
list, the warehouse catalogue and popularity (at start-up), the running experiments
(`experiment_state`, re-read in the background, `tailor.serving.experiment_watcher`). Writes:
the BentoML model store
(versions it loads, `tailor.serving.model_store`), the daily incentive ledger (each
incentive offered reserves its expected cost, `tailor.serving.offer_budget`), the prediction
log (every answer, queued for a background writer into the event store's `predictions`
table, `tailor.serving.prediction_recorder`), Prometheus metrics (`tailor.serving.metrics`)
and logs; nothing else.

Each model follows the alias or version number of its `serving.<model>_model` setting,
which the answers report as `variant`.

Experiments: each request is assigned on its surface (homepage, also_bought,
checkout_offer) by its unit (`context.anonymous_id`, else the customer id;
`tailor.experiments.assignment`), except opted-out and deleted customers, who are in none.
A variant's changes are served: `model` (another alias or version of the surface's model,
from its own slot), `layout` (returned in the homepage answer), `diversity` (homepage and
also bought, `tailor.serving.diversity`), `personalization_min_purchases` (homepage:
customers with fewer purchases get the list that is not personalised). Every answer, a
fallback included, names its `experiment` and `experiment_variant` (None outside one), and
the prediction log records them: the log's rows are the experiments' exposures.

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
from typing import TYPE_CHECKING, Any, Callable, Sequence

from tailor.config import Settings
from tailor.experiments.assignment import assignment_unit
from tailor.serving.also_bought import CompanionIndex
from tailor.serving.budget import Ledger, open_ledger
from tailor.serving.catalogue import Catalogue, load_catalogue
from tailor.serving.checkout_offers import (
    NO_OFFER, CheckoutScorer, Decision, cart_facts, model_row,
)
from tailor.serving.deadlines import RequestDeadlines
from tailor.serving.diversity import CANDIDATE_FACTOR, diversified, short_of
from tailor.serving.exclusions import ExclusionList
from tailor.serving.experiment_watcher import ExperimentWatcher
from tailor.serving.fallback import FallbackLists, popular_from_model, popular_from_warehouse
from tailor.serving.forgotten_rows import ForgottenRowSweeper
from tailor.serving.homepage import HomepageRanker
from tailor.serving.metrics import ServingMetrics
from tailor.serving.model_slots import ModelSlot, ModelWatcher
from tailor.serving.offer_budget import budget_status, within_daily_budget
from tailor.serving.prediction_recorder import PredictionRecorder
from tailor.serving.schemas import (
    AlsoBoughtRequest, AlsoBoughtResponse, CheckoutOfferRequest, CheckoutOfferResponse,
    HomepageRequest, HomepageResponse, RecommendedItem, set_max_k,
)
from tailor.throttled_log import ThrottledLog, error_key

if TYPE_CHECKING:
    from tailor.experiments.assignment import Assignment

log = logging.getLogger(__name__)

HOMEPAGE, ALSO_BOUGHT, CHECKOUT_OFFER = "homepage", "also_bought", "checkout_offer"
# The model each surface serves (its `model` change names a version of it).
SURFACE_MODELS: dict[str, str] = {HOMEPAGE: "homepage", ALSO_BOUGHT: "cross_sell",
                                  CHECKOUT_OFFER: "checkout"}
FEATURE_SERVICES: tuple[str, ...] = ("homepage", "checkout")

# Fallback kinds: the metric label (bounded), beside the free-text reason in the answer.
TIMEOUT = "timeout"
FEATURE_STORE = "feature_store"
NO_MODEL = "no_model"
MODEL_ERROR = "model_error"
INTERNAL_ERROR = "internal_error"
STALE_FEATURES = "stale_features"  # the customer's history is older than its TTL
ERROR_KINDS = frozenset({MODEL_ERROR, INTERNAL_ERROR})
UNASSIGNED: Any = object()  # a fallback not told the request's assignment looks it up


@dataclass
class _Answer:
    """A response and, for a fallback, its kind (the metric label)."""

    response: Any
    kind: str | None = None


def _request_id() -> str:
    return uuid.uuid4().hex


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()` reading)."""
    return (time.perf_counter() - started) * 1000.0


def _arm_fields(arm: Assignment | None) -> dict[str, Any]:
    """The answer's experiment fields for an assignment (None outside an experiment)."""
    if arm is None:
        return {}
    return {"experiment": arm.experiment, "experiment_variant": arm.variant}


def _homepage_arm_fields(arm: Assignment | None) -> dict[str, Any]:
    """`_arm_fields` plus the variant's layout (None: the shop's own)."""
    if arm is None:
        return {}
    return {"experiment": arm.experiment, "experiment_variant": arm.variant,
            "layout": arm.changes.layout}


def _diversity(arm: Assignment | None) -> str | None:
    return arm.changes.diversity if arm is not None else None


def _filled(answers: list[_Answer | None]) -> list[_Answer]:
    """The answers, checked complete (a gap is a bug: the caller answers with fallbacks)."""
    if any(answer is None for answer in answers):
        raise RuntimeError("a request was left without an answer")
    return [answer for answer in answers if answer is not None]


class ServingPipeline:
    """Everything a serving process needs, loaded once.

    Args:
        settings: the Tailor settings (`serving` section, home, registry, online store).
        start_watcher: refresh the model aliases every `serving.reload_seconds` and the
            running experiments every `experiments.refresh_seconds` on daemon threads
            (tests that drive `ModelSlot.refresh` and `experiments.refresh` pass False).
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
        self.experiments = ExperimentWatcher(settings, self.slots, self._variant_slot)
        self.forgotten_rows = ForgottenRowSweeper(self.exclusions.tombstones, self._loaded_models,
                                                  on_removed=self.metrics.forgotten_rows)
        self._assignment_errors = ThrottledLog(log)
        self._freeze_heap = freeze_heap
        self.predictions = self._prediction_recorder(record_predictions)
        self._load()
        if freeze_heap:
            gc.collect()
            gc.freeze()
        self._started = True
        if start_watcher:
            self.watcher.start()
            self.experiments.start()
            self.forgotten_rows.start()
        log.info("serving pipeline ready in %.1f s: %s", time.perf_counter() - started,
                 {name: slot.current.version if slot.current else None
                  for name, slot in self.slots.items()})

    def _preparers(self) -> dict[str, Callable[[Any], Any]]:
        return {"homepage": self._homepage_ranker, "cross_sell": CompanionIndex,
                "checkout": CheckoutScorer}

    def _slots(self) -> dict[str, ModelSlot]:
        """One slot per served model, each preparing its request-time lookups on load."""
        return {name: ModelSlot(self.settings, name, self._reference(name), metrics=self.metrics,
                                prepare=prepare)
                for name, prepare in self._preparers().items()}

    def _loaded_models(self) -> list[Any]:
        """Every version served now: the default slots' and the running variants'."""
        slots = [*self.slots.values(), *self.experiments.variant_slots.values()]
        return [slot.current for slot in slots if slot.current is not None]

    def _variant_slot(self, model: str, reference: str) -> ModelSlot:
        """A slot for an experiment variant's model version (its metrics stay the default
        slot's: `tailor_model_info` reports what most answers come from)."""
        return ModelSlot(self.settings, model, reference, prepare=self._preparers()[model])

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
        self.experiments.refresh()
        if self.slots["homepage"].current is None:
            size = self.settings.serving_fallback_size
            self.catalogue = load_catalogue(self.settings)
            self.fallback.update(lambda: popular_from_warehouse(self.settings, size))

    # -- lifecycle ---------------------------------------------------------------------------

    def _homepage_ranker(self, model: Any) -> HomepageRanker:
        return HomepageRanker(model, self.settings.serving_max_k,
                              self.settings.serving_session_share,
                              precomputed=self.settings.serving_precomputed_customers,
                              listed=self.settings.serving_precomputed_lists,
                              progress=self.metrics.candidates_pending)

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
            "precomputed_lists": self._precomputed_status(),
            "excluded_customers": len(self.exclusions),
            "forgotten_rows": self.forgotten_rows.status(),
            "incentive_budget": budget_status(self.ledger),
            "prediction_log": self.predictions.status() if self.predictions else None,
            "experiments": self.experiments.status(),
            "timeout_ms": self.settings.serving_timeout_ms,
        }

    def _precomputed_status(self) -> dict[str, Any] | None:
        """The homepage champion's candidates found ahead (`tailor.serving.precomputed`)."""
        loaded = self.slots["homepage"].current
        lists = getattr(loaded.prepared, "precomputed", None) if loaded is not None else None
        return lists.status() if lists is not None else None

    def close(self) -> None:
        """Stop the model watcher and the worker threads (the lists still being ranked
        ahead included); write the queued predictions."""
        self._closed = True
        self.watcher.stop()
        self.experiments.stop()
        self.forgotten_rows.stop()
        for slot in self.slots.values():
            close = getattr(slot.current.prepared, "close", None) if slot.current else None
            if callable(close):
                close()
        self.deadlines.close()
        give_back = getattr(self.ledger, "close", None)  # a leased slice's unused part
        if callable(give_back):
            give_back()
        if self.predictions is not None:
            self.predictions.close()

    def record_answers(self, endpoint: str, requests: Sequence[Any],
                       responses: Sequence[Any], latency_ms: float | None = None,
                       fallback_kinds: Sequence[str | None] | None = None) -> None:
        """Queue answers for the prediction log (never blocks): the pipeline's own methods
        call it with how long they took and each fallback's kind, and the service with the
        batching scorer's answers it returns (their kinds unknown to it)."""
        if self.predictions is not None:
            self.predictions.record(endpoint, requests, responses, latency_ms, fallback_kinds)

    # -- shared helpers ----------------------------------------------------------------------

    def _arm(self, surface: str, request: Any) -> Assignment | None:
        """The request's experiment and variant on `surface` (None: the defaults); opted-out
        and deleted customers are in no experiment. Never raises."""
        try:
            customer_id = getattr(request, "customer_id", None)
            if customer_id is not None and customer_id in self.exclusions:
                return None
            context = getattr(request, "context", None) or {}
            return self.experiments.assign(
                surface, assignment_unit(customer_id, context.get("anonymous_id")))
        except Exception as error:  # a bug here must not cost the answer
            self._assignment_errors.log(logging.ERROR, error_key(error),
                                        "%s: assignment failed; serving the defaults: %s",
                                        surface, _describe(error), exc_info=error)
            return None

    def _slot(self, surface: str, arm: Assignment | None) -> ModelSlot:
        """The slot that answers for `arm`: its variant's model version, else the default."""
        model = SURFACE_MODELS[surface]
        if arm is None or arm.changes.model is None:
            return self.slots[model]
        return self.experiments.slot(model, arm.changes.model)

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
        self.record_answers(endpoint, requests, responses, _elapsed_ms(started),
                            [answer.kind for answer in answers])
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
        self.record_answers(endpoint, [request], [answer.response], _elapsed_ms(started),
                            [answer.kind])
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

    def _homepage_fallback(self, request: HomepageRequest, kind: str, reason: str,
                           arm: Assignment | None = UNASSIGNED) -> _Answer:
        arm = self._arm(HOMEPAGE, request) if arm is UNASSIGNED else arm
        items = self.fallback.current.items(request.k)
        return _Answer(HomepageResponse(
            items=items, model_version=None, variant=self._slot(HOMEPAGE, arm).reference,
            fallback=True, fallback_reason=reason, personalised=False,
            request_id=_request_id(), **_homepage_arm_fields(arm)), kind)

    def _homepage_answers(self, requests: Sequence[HomepageRequest]) -> list[_Answer]:
        arms = [self._arm(HOMEPAGE, request) for request in requests]
        slots = [self._slot(HOMEPAGE, arm) for arm in arms]
        loaded = {id(slot): slot.current for slot in slots}  # one version per slot throughout
        answers: list[_Answer | None] = [None] * len(requests)
        rankers: dict[int, HomepageRanker] = {}  # the personalised requests' rankers
        for position, (request, slot) in enumerate(zip(requests, slots)):
            current = loaded[id(slot)]
            if current is None:
                answers[position] = self._homepage_fallback(request, NO_MODEL,
                                                            slot.unavailable_reason(),
                                                            arms[position])
            elif request.customer_id in self.exclusions:
                answers[position] = self._homepage_answer(
                    request, None, slot.reference, current.version,
                    current.prepared.non_personalised(request.k), False)
            else:
                rankers[position] = current.prepared
        personal = list(rankers)
        vectors = self._read_features("homepage", [requests[p].customer_id for p in personal]) \
            if personal else []
        groups: dict[int, list[tuple[int, frozenset[str], bool]]] = {}
        for position, vector in zip(personal, vectors):
            if vector.error:
                answers[position] = self._homepage_fallback(
                    requests[position], FEATURE_STORE,
                    f"feature store unavailable: {vector.error}", arms[position])
                continue
            ranker = rankers[position]
            request, arm = requests[position], arms[position]
            groups.setdefault(id(slots[position]), []).append(
                (position, self._browsing(ranker, request, vector),
                 self._personalised(ranker, request, arm)))
        for ranked in groups.values():
            slot = slots[ranked[0][0]]
            self._rank(slot.reference, loaded[id(slot)], requests, arms, ranked, answers)
        for position, vector in zip(personal, vectors):
            answer = answers[position]
            if vector.stale and answer is not None:
                answer.response.stale = True
        return _filled(answers)

    @staticmethod
    def _personalised(ranker: HomepageRanker, request: HomepageRequest,
                      arm: Assignment | None) -> bool:
        """False when the variant's personalization threshold is above the customer's
        purchases: the list is then the one for strangers."""
        threshold = arm.changes.personalization_min_purchases if arm is not None else None
        return threshold is None or ranker.purchases(request.customer_id) >= threshold

    @staticmethod
    def _browsing(ranker: HomepageRanker, request: HomepageRequest, vector: Any
                  ) -> frozenset[str]:
        """Categories the visitor browses now: the session's viewed ones and the context's."""
        viewed = list(vector.values.get("session_viewed_categories") or ())
        return ranker.known_categories(viewed + list(request.context.get("categories") or ()))

    def _rank(self, reference: str, loaded: Any, requests: Sequence[HomepageRequest],
              arms: Sequence[Assignment | None], ranked: list[tuple[int, frozenset[str], bool]],
              answers: list[_Answer | None]) -> None:
        """Score the requests of one model version in one model call (each with its
        variant's diversity rule and personalization threshold); a model error falls back."""
        if not ranked:
            return
        version, ranker = loaded.version, loaded.prepared
        chosen = [requests[position] for position, _, _ in ranked]
        try:
            lists = ranker.rank([request.customer_id for request in chosen],
                                [request.k for request in chosen],
                                [browsing for _, browsing, _ in ranked],
                                known=[known for _, _, known in ranked],
                                diversity=[_diversity(arms[position]) for position, _, _ in ranked])
        except Exception as error:
            log.exception("homepage model v%s failed", version)
            for position, _, _ in ranked:
                answers[position] = self._homepage_fallback(
                    requests[position], MODEL_ERROR,
                    f"homepage model v{version} failed: {_describe(error)}", arms[position])
            return
        for (position, _, known), items in zip(ranked, lists):
            answers[position] = self._homepage_answer(requests[position], arms[position],
                                                      reference, version, items, known)

    @staticmethod
    def _homepage_answer(request: HomepageRequest, arm: Assignment | None, reference: str,
                         version: str, items: list[RecommendedItem], personalised: bool
                         ) -> _Answer:
        return _Answer(HomepageResponse(
            items=items, model_version=version, variant=reference, fallback=False,
            fallback_reason=None, personalised=personalised, request_id=_request_id(),
            **_homepage_arm_fields(arm)))

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
                      exclude: set[str], k: int | None = None) -> list[RecommendedItem]:
        """`items` topped up to k (default the request's): popular in the anchor's category
        first, then overall."""
        wanted = k or request.k
        taken = exclude | {item.product_id for item in items}
        filled = list(items)
        category = self._category_of(request.product_id)
        for scope in ((category, None) if category else (None,)):
            if len(filled) >= wanted:
                break
            more = self.fallback.current.items(wanted - len(filled), scope, taken)
            filled += more
            taken |= {item.product_id for item in more}
        return filled

    def _diversified_companions(self, request: AlsoBoughtRequest,
                                companions: list[RecommendedItem], exclude: set[str],
                                mode: str) -> list[RecommendedItem]:
        """k of the companions (3x k asked for, topped up with popular products) under the
        variant's diversity rule; a pool short of the rule first takes the popular products
        of the first companion's category (one category) or of every category (mixed)."""
        pool = self._popular_fill(request, companions, exclude, CANDIDATE_FACTOR * request.k)
        if not pool:
            return pool
        categories = [self._category_of(item.product_id) for item in pool]
        if short_of(categories, request.k, mode):
            popular = self.fallback.current
            scopes = categories[:1] if mode == "single_category" else list(popular.by_category)
            taken = exclude | {item.product_id for item in pool}
            for scope in (scope for scope in scopes if scope):
                more = popular.items(request.k, scope, taken)
                pool += more
                categories += [scope] * len(more)
                taken |= {item.product_id for item in more}
        return [pool[index] for index in diversified(categories, request.k, mode)]

    def _also_bought_exclusions(self, request: AlsoBoughtRequest) -> set[str]:
        return {request.product_id, *(request.context.get("cart") or ())}

    def _also_bought_fallback(self, request: AlsoBoughtRequest, kind: str, reason: str,
                              arm: Assignment | None = UNASSIGNED) -> _Answer:
        arm = self._arm(ALSO_BOUGHT, request) if arm is UNASSIGNED else arm
        items = self._popular_fill(request, [], self._also_bought_exclusions(request))
        return _Answer(AlsoBoughtResponse(
            items=items, model_version=None, variant=self._slot(ALSO_BOUGHT, arm).reference,
            fallback=True, fallback_reason=reason, request_id=_request_id(),
            **_arm_fields(arm)), kind)

    def _also_bought_answers(self, requests: Sequence[AlsoBoughtRequest]) -> list[_Answer]:
        return [self._also_bought_answer(request) for request in requests]

    def _also_bought_answer(self, request: AlsoBoughtRequest) -> _Answer:
        arm = self._arm(ALSO_BOUGHT, request)
        slot = self._slot(ALSO_BOUGHT, arm)
        loaded = slot.current
        if loaded is None:
            return self._also_bought_fallback(request, NO_MODEL, slot.unavailable_reason(),
                                              arm)
        exclude = self._also_bought_exclusions(request)
        mode = _diversity(arm)
        try:
            items = loaded.prepared.items(request.product_id,
                                          CANDIDATE_FACTOR * request.k if mode else request.k,
                                          exclude, self._in_stock)
        except Exception as error:
            log.exception("cross_sell model v%s failed", loaded.version)
            return self._also_bought_fallback(
                request, MODEL_ERROR, f"cross_sell model v{loaded.version} failed: "
                                      f"{_describe(error)}", arm)
        items = self._diversified_companions(request, items, exclude, mode) if mode \
            else self._popular_fill(request, items, exclude)
        return _Answer(AlsoBoughtResponse(
            items=items, model_version=loaded.version, variant=slot.reference, fallback=False,
            fallback_reason=None, request_id=_request_id(), **_arm_fields(arm)))

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

    def _checkout_fallback(self, request: CheckoutOfferRequest, kind: str, reason: str,
                           arm: Assignment | None = UNASSIGNED) -> _Answer:
        arm = self._arm(CHECKOUT_OFFER, request) if arm is UNASSIGNED else arm
        return _Answer(CheckoutOfferResponse(
            p_abandon=None, offer=NO_OFFER, reason=f"no offer: {reason}", model_version=None,
            variant=self._slot(CHECKOUT_OFFER, arm).reference, fallback=True,
            fallback_reason=reason, stale=kind == STALE_FEATURES, request_id=_request_id(),
            **_arm_fields(arm)), kind)

    def _price_of(self, product_id: str) -> float | None:
        product = self.catalogue.get(product_id)
        return product.price if product is not None else None

    def _checkout_answers(self, requests: Sequence[CheckoutOfferRequest]) -> list[_Answer]:
        arms = [self._arm(CHECKOUT_OFFER, request) for request in requests]
        slots = [self._slot(CHECKOUT_OFFER, arm) for arm in arms]
        loaded = {id(slot): slot.current for slot in slots}  # one version per slot throughout
        answers: list[_Answer | None] = [None] * len(requests)
        for position, (request, slot) in enumerate(zip(requests, slots)):
            if loaded[id(slot)] is None:
                answers[position] = self._checkout_fallback(request, NO_MODEL,
                                                            slot.unavailable_reason(),
                                                            arms[position])
        waiting = [position for position, answer in enumerate(answers) if answer is None]
        excluded = [request.customer_id in self.exclusions for request in requests]
        readable = [requests[p].customer_id for p in waiting if not excluded[p]]
        vectors = iter(self._read_features("checkout", readable) if waiting else [])
        moment = datetime.now(timezone.utc)
        groups: dict[int, list[tuple[int, Any, dict[str, float]]]] = {}
        for position in waiting:
            request = requests[position]
            vector = None if excluded[position] else next(vectors)
            if vector is not None and vector.error:
                answers[position] = self._checkout_fallback(
                    request, FEATURE_STORE, f"feature store unavailable: {vector.error}",
                    arms[position])
                continue
            if vector is not None and vector.stale:
                # A score of default features would spend the incentive budget on nothing.
                answers[position] = self._checkout_fallback(
                    request, STALE_FEATURES,
                    f"stale features: the customer's history ({', '.join(vector.stale_views)})"
                    " is older than its TTL, so the model would score defaults; no incentive "
                    "is spent on them (run `tailor features` on recent events)", arms[position])
                continue
            facts = cart_facts(request.cart, self._price_of)
            groups.setdefault(id(slots[position]), []).append(
                (position, facts, model_row(facts, vector.values if vector else {}, moment)))
        for scored in groups.values():
            slot = slots[scored[0][0]]
            self._decide(slot.reference, loaded[id(slot)], requests, arms, scored, excluded,
                         answers)
        return _filled(answers)

    def _decide(self, reference: str, loaded: Any, requests: Sequence[CheckoutOfferRequest],
                arms: Sequence[Assignment | None],
                scored: list[tuple[int, Any, dict[str, float]]], excluded: list[bool],
                answers: list[_Answer | None]) -> None:
        """One model call for every cart of one model version that has its features."""
        if not scored:
            return
        try:
            decisions = loaded.prepared.decide([row for _, _, row in scored])
        except Exception as error:
            log.exception("checkout model v%s failed", loaded.version)
            for position, _, _ in scored:
                answers[position] = self._checkout_fallback(
                    requests[position], MODEL_ERROR,
                    f"checkout model v{loaded.version} failed: {_describe(error)}",
                    arms[position])
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
                model_version=loaded.version, variant=reference, fallback=False,
                fallback_reason=None, request_id=_request_id(), **_arm_fields(arms[position])))

    def _within_daily_budget(self, decision: Decision) -> Decision:
        """The decision within today's incentive budget (`tailor.serving.offer_budget`)."""
        return within_daily_budget(decision, self.ledger, self.metrics,
                                   self.deadlines.current())
