"""Stale features are never served as fresh: when the customer's history in
the online store is older than its TTL, the answer says so, the serving metrics count it,
and a checkout offer spends no incentive budget on the default features."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

from tailor.serving.budget import SQLiteLedger
from tailor.serving.schemas import CartLine, CheckoutOfferRequest, HomepageRequest


class LaterReader:
    """An online reader that reads at a time `days` after now: the history it finds is the
    same as a shop's whose events ended `days` earlier."""

    def __init__(self, reader: Any, days: int) -> None:
        self.reader, self.days = reader, days

    def read_many(self, entity_ids: Sequence[str], request_time: datetime | None = None):
        moment = (request_time or datetime.now(timezone.utc)) + timedelta(days=self.days)
        return self.reader.read_many(entity_ids, moment)


def offered_requests(pipeline, wanted: int = 2) -> list[CheckoutOfferRequest]:
    """Carts of different customers that get an incentive on fresh features."""
    customers = pipeline.slots["homepage"].current.model.customers.ids
    found: list[CheckoutOfferRequest] = []
    for price in (120.0, 300.0, 60.0):
        for customer in customers[:80]:
            request = CheckoutOfferRequest(customer_id=str(customer), session_id="s-stale",
                                           cart=[CartLine(product_id="p00003", price=price)])
            if pipeline.checkout_offer(request).offer != "none" and \
                    all(seen.customer_id != request.customer_id for seen in found):
                found.append(request)
            if len(found) == wanted:
                return found
    raise AssertionError("too few carts get an incentive: the test needs two")


def test_stale_history_gives_no_offer_spends_no_budget_and_is_counted(
        served_home, pipeline_factory, tmp_path: Path) -> None:
    pipeline = pipeline_factory(served_home.settings,
                                ledger=SQLiteLedger(tmp_path / "search.db", 1e9))
    requests = offered_requests(pipeline)
    pipeline.ledger = ledger = SQLiteLedger(tmp_path / "ledger.db", 1e9)
    # Beyond the batch views' 365-day TTL: every customer's history is stale.
    pipeline.features["checkout"] = LaterReader(pipeline.features["checkout"], 400)
    labels = {"endpoint": "checkout_offer", "reason": "stale_features"}
    fallbacks = pipeline.metrics.value("tailor_fallbacks_total", labels)
    stale = pipeline.metrics.value("tailor_stale_answers_total", {"endpoint": "checkout_offer"})
    answers = [pipeline.checkout_offer(request) for request in requests]
    for answer in answers:
        assert answer.offer == "none" and answer.fallback and answer.stale
        assert answer.p_abandon is None
        assert answer.fallback_reason.startswith("stale features")
        assert "customer_activity" in answer.reason and "no incentive" in answer.reason
    assert ledger.spent() == 0
    assert pipeline.metrics.value("tailor_fallbacks_total", labels) - fallbacks == 2
    assert pipeline.metrics.value("tailor_stale_answers_total",
                                  {"endpoint": "checkout_offer"}) - stale == 2


def test_a_homepage_on_stale_history_is_flagged(served_home, pipeline_factory) -> None:
    pipeline = pipeline_factory(served_home.settings)
    customer = str(pipeline.slots["homepage"].current.model.customers.ids[0])
    fresh = pipeline.homepage(HomepageRequest(customer_id=customer))
    assert not fresh.stale
    pipeline.features["homepage"] = LaterReader(pipeline.features["homepage"], 400)
    before = pipeline.metrics.value("tailor_stale_answers_total", {"endpoint": "homepage"})
    answer = pipeline.homepage(HomepageRequest(customer_id=customer))
    assert answer.stale and answer.items
    assert pipeline.metrics.value("tailor_stale_answers_total",
                                  {"endpoint": "homepage"}) - before == 1
