"""The daily incentive budget in the checkout answers of a trained home: an offer stops once
the day's budget is spent, a zero budget or an unreachable ledger offers nothing, a late
offer keeps nothing reserved; and the settings choose the ledger's backend."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from tailor.serving.budget import RedisLedger, SQLiteLedger, open_ledger
from tailor.serving.schemas import CartLine, CheckoutOfferRequest


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_settings_choose_the_backend(served_home, redis_url: str) -> None:
    sqlite_ledger = open_ledger(served_home.settings.replace(serving_daily_incentive_budget=7))
    assert (sqlite_ledger.backend, sqlite_ledger.budget) == ("sqlite", 7.0)
    assert sqlite_ledger.inner.path == served_home.settings.home_path / "incentive_budget.db"
    redis_ledger = open_ledger(served_home.settings.replace(redis_url=redis_url))
    assert (redis_ledger.backend, redis_ledger.inner.prefix) == ("redis",
                                                                 "tailor:incentive_budget:")


# -- in the checkout answers -----------------------------------------------------------------


def incentive_counts(pipeline) -> dict[str, float]:
    return {outcome: pipeline.metrics.value("tailor_incentive_reservations_total",
                                            {"outcome": outcome})
            for outcome in ("granted", "budget_spent", "ledger_unavailable", "released")}


def offered_cart(pipeline) -> CheckoutOfferRequest:
    """A cart the model offers an incentive on (with a budget to spend)."""
    customers = pipeline.slots["homepage"].current.model.customers.ids
    for price in (120.0, 300.0, 60.0, 30.0):
        for customer in customers[:60]:
            request = CheckoutOfferRequest(customer_id=str(customer), session_id="s-budget",
                                           cart=[CartLine(product_id="p00003", price=price)])
            if pipeline.checkout_offer(request).offer != "none":
                return request
    raise AssertionError("no cart gets an incentive: the test needs one")


@pytest.fixture(scope="module")
def offering(served_home, pipeline_factory, tmp_path_factory):
    """A pipeline with a ledger of its own, and a cart it offers an incentive on."""
    ledger = SQLiteLedger(tmp_path_factory.mktemp("budget") / "search.db", 1e9)
    pipeline = pipeline_factory(served_home.settings, ledger=ledger)
    return pipeline, offered_cart(pipeline)


def test_the_offer_turns_to_none_once_the_days_budget_is_spent(offering,
                                                               ledger_factory) -> None:
    pipeline, cart = offering
    probe = ledger_factory(1e9)
    pipeline.ledger = probe
    first = pipeline.checkout_offer(cart)
    cost = probe.spent()
    assert first.offer != "none" and cost > 0
    assert f"expected cost {cost:.2f}" in first.reason

    pipeline.ledger = ledger = ledger_factory(cost * 1.5)  # room for one offer a day
    before = incentive_counts(pipeline)
    granted, refused = pipeline.checkout_offer(cart), pipeline.checkout_offer(cart)
    assert granted.offer == first.offer and ledger.spent() == pytest.approx(cost)
    assert refused.offer == "none" and not refused.fallback
    assert refused.p_abandon == pytest.approx(first.p_abandon)
    assert "the daily incentive budget is spent" in refused.reason
    assert f"{cost:.2f} of {cost * 1.5:.2f} committed today" in refused.reason
    after = incentive_counts(pipeline)
    assert after["granted"] - before["granted"] == 1
    assert after["budget_spent"] - before["budget_spent"] == 1
    assert pipeline.status()["incentive_budget"]["spent_today"] == pytest.approx(cost)


def test_a_zero_budget_means_no_incentives(offering, tmp_path: Path) -> None:
    pipeline, cart = offering
    pipeline.ledger = SQLiteLedger(tmp_path / "zero.db", 0.0)
    answer = pipeline.checkout_offer(cart)
    assert answer.offer == "none" and "serving.daily_incentive_budget = 0" in answer.reason


def test_an_unreachable_ledger_offers_nothing_and_is_counted(offering) -> None:
    pipeline, cart = offering
    pipeline.ledger = RedisLedger(f"redis://127.0.0.1:{closed_port()}/0", 1e9)
    before = incentive_counts(pipeline)
    answer = pipeline.checkout_offer(cart)
    assert answer.offer == "none" and not answer.fallback and answer.p_abandon is not None
    assert "the daily incentive budget could not be checked" in answer.reason
    assert incentive_counts(pipeline)["ledger_unavailable"] - before["ledger_unavailable"] == 1
    assert pipeline.status()["incentive_budget"]["last_error"].startswith("Redis incentive")


@pytest.mark.parametrize("slow_part", ["scoring", "after_the_reservation"])
def test_an_offer_that_runs_out_of_time_keeps_no_budget(offering, ledger_factory,
                                                        monkeypatch, slow_part: str) -> None:
    """The wait gives up (serving.timeout_ms) while the worker thread is still busy, before
    or after it reserved the offer's cost: once the worker is done nothing stays reserved."""
    pipeline, cart = offering
    pipeline.ledger = ledger = ledger_factory(1e9)
    go_on, worker_done = threading.Event(), threading.Event()
    scorer = pipeline.slots["checkout"].current.prepared
    if slow_part == "scoring":
        decide = scorer.decide
        monkeypatch.setattr(scorer, "decide", lambda rows: (go_on.wait(5), decide(rows))[1])
    else:
        check = pipeline._within_daily_budget
        monkeypatch.setattr(pipeline, "_within_daily_budget",
                            lambda decision: (check(decision), go_on.wait(5))[0])
    work = pipeline.deadlines._work_against

    def observed(*args):
        try:
            return work(*args)
        finally:
            worker_done.set()

    monkeypatch.setattr(pipeline.deadlines, "_work_against", observed)
    before = incentive_counts(pipeline)
    late = asyncio.run(pipeline.acheckout_offer(cart))
    go_on.set()
    assert worker_done.wait(10)
    assert late.fallback and late.offer == "none" and "timeout" in late.fallback_reason
    assert ledger.spent() == 0.0
    after = incentive_counts(pipeline)
    if slow_part == "after_the_reservation":  # reserved, then given back
        assert after["granted"] - before["granted"] == 1
        assert after["released"] - before["released"] == 1
    monkeypatch.undo()
    on_time = asyncio.run(pipeline.acheckout_offer(cart))
    assert on_time.offer != "none" and ledger.spent() > 0
