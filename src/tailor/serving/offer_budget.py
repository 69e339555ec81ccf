"""The daily incentive budget applied to checkout decisions: an offered incentive reserves its
expected cost in the ledger, and a reservation whose offer is never shown is given back.

Reads and writes the daily incentive ledger (`tailor.serving.budget`) and counts each
outcome in `tailor_incentive_reservations_total` (`tailor.serving.metrics`); logs a ledger
that cannot be reached. Nothing else.

On a worker thread answering against a deadline (`tailor.serving.deadlines`), a reservation
is kept only while the request is still in time; when the answer comes too late the
deadline runs the release registered here.
"""

from __future__ import annotations

import logging
from typing import Any

from tailor.serving.budget import Ledger, LedgerUnavailable
from tailor.serving.checkout_offers import NO_OFFER, Decision, without_incentive
from tailor.serving.deadlines import Deadline
from tailor.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

OUT_OF_TIME = "the request ran out of time"


def within_daily_budget(decision: Decision, ledger: Ledger, metrics: ServingMetrics,
                        deadline: Deadline | None = None) -> Decision:
    """The decision if its incentive's expected cost fits today's budget (then reserved).

    Args:
        decision: the model's decision for one cart.
        ledger: the daily incentive ledger.
        metrics: where each reservation outcome is counted.
        deadline: the request's deadline when answered on a worker thread, else None.

    Returns:
        The decision; or, when the budget is spent, the ledger cannot be reached or the
        request ran out of time, the decision without its incentive and with the reason.
    """
    if decision.offer == NO_OFFER:
        return decision
    if ledger.budget <= 0:
        metrics.incentive("budget_spent")
        return without_incentive(decision, "there is no daily incentive budget "
                                           "(serving.daily_incentive_budget = 0)")
    if deadline is not None and deadline.expired:  # the answer will not be shown
        return without_incentive(decision, OUT_OF_TIME)
    try:
        reservation = ledger.reserve(decision.expected_cost)
    except LedgerUnavailable as error:
        metrics.incentive("ledger_unavailable")
        log.warning("incentive withheld: %s", error)
        return without_incentive(decision, "the daily incentive budget could not be "
                                           f"checked ({error})")
    if not reservation.granted:
        metrics.incentive("budget_spent")
        return without_incentive(
            decision, f"the daily incentive budget is spent ({reservation.spent:.2f} of "
                      f"{reservation.budget:.2f} committed today, UTC)")
    metrics.incentive("granted")
    if deadline is None:
        return decision
    cost = decision.expected_cost
    if deadline.keep(lambda: release(cost, ledger, metrics)):
        return decision
    release(cost, ledger, metrics)
    return without_incentive(decision, OUT_OF_TIME)


def release(cost: float, ledger: Ledger, metrics: ServingMetrics) -> None:
    """Gives back a reservation whose offer was never shown; a ledger error is logged."""
    try:
        ledger.release(cost)
        metrics.incentive("released")
    except LedgerUnavailable as error:
        log.warning("an unused incentive reservation of %.2f could not be given back: %s",
                    cost, error)


def budget_status(ledger: Ledger) -> dict[str, Any]:
    """The ledger's backend, daily budget, today's spend (every worker's unused slice
    included), this worker's unused slice and the last error (for /status)."""
    try:
        spent, error = ledger.spent(), None
    except LedgerUnavailable as problem:
        spent, error = None, str(problem)
    return {"backend": ledger.backend, "daily": ledger.budget,
            "spent_today": spent, "unused_slice": getattr(ledger, "unused", None),
            "last_error": error}
