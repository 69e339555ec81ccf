"""In-process CPU of `ServingPipeline.checkout_offer`: the checkout trees walked in Python
against XGBoost's `inplace_predict`, alternating in one process, and whether they answer alike.

Issue 16 holds the server CPU per `/checkout_offer` request to 1.2x a trivial BentoML
endpoint's (bench_serving_capacity.py); this measures the part of it that is Tailor's own
work. CPU is `time.process_time()` over every call of a round (all threads of the process),
rounds alternate between the two paths, the figure is each path's median round.

Reads a prepared home (`tailor demo --home DIR`); writes the BentoML model store it imports the
models into and an incentive ledger of its own in a temporary folder (a budget no round
spends, so every offer the model makes is granted and costs its ledger write). Nothing else.

Run: .venv/bin/python bench/bench_checkout_offer.py --home /tmp/checkout-home [--calls 3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

DEMO_HOME = Path(__file__).resolve().parents[1] / ".tailor" / "demo"  # make demo's home


def carts(home: Path, count: int) -> list[Any]:
    """Checkout requests of the biggest buyers, with one to four popular products each."""
    import duckdb

    from tailor.serving.schemas import CartLine, CheckoutOfferRequest

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        buyers = [str(row[0]) for row in con.execute(
            "SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC "
            f"LIMIT {count}").fetchall()]
        products = [str(row[0]) for row in con.execute(
            "SELECT product_id FROM events WHERE event_type = 'purchase' GROUP BY product_id "
            "ORDER BY count(*) DESC LIMIT 50").fetchall()]
    return [CheckoutOfferRequest(customer_id=customer, session_id=f"s-{number}", cart=[
        CartLine(product_id=products[(number * line) % len(products)],
                 quantity=1 + (number + line) % 3) for line in range(1 + number % 4)])
        for number, customer in enumerate(buyers)]


def cpu_ms(call: Callable[[Any], Any], requests: list[Any], calls: int) -> float:
    """CPU milliseconds per call over `calls` calls, taking `requests` in turn."""
    started = time.process_time()
    for index in range(calls):
        call(requests[index % len(requests)])
    return (time.process_time() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEMO_HOME)
    parser.add_argument("--calls", type=int, default=3000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per path, alternating")
    parser.add_argument("--carts", type=int, default=300, help="distinct carts (customers)")
    args = parser.parse_args()
    if not (args.home / "warehouse.duckdb").exists():
        print(f"skipped: no prepared home at {args.home} (run `make demo`, or pass --home)")
        return

    os.environ.setdefault("TAILOR_MONITORING_PREDICTION_LOG", "false")
    from tailor.config import load_settings
    from tailor.serving.budget import SQLiteLedger
    from tailor.serving.pipeline import ServingPipeline

    scratch = Path(tempfile.mkdtemp(prefix="bench-checkout-"))
    pipeline = ServingPipeline(load_settings(home=args.home), start_watcher=False,
                               ledger=SQLiteLedger(scratch / "ledger.db", 1e15))
    homepage = pipeline.slots["homepage"].current
    precomputed = getattr(homepage.prepared, "precomputed", None) if homepage else None
    if precomputed is not None:  # its background thread would be counted in process time
        precomputed.done.wait()
    scorer = pipeline.slots["checkout"].current.prepared
    walker = scorer.walker
    if walker is None:
        raise SystemExit("the checkout trees of this home are not walked (see the log)")
    requests = carts(args.home, args.carts)

    answers = {}
    for walked in (True, False):
        scorer.walker = walker if walked else None
        answers[walked] = [pipeline.checkout_offer(request) for request in requests]
    same = sum((a.offer, a.reason) == (b.offer, b.reason) and abs(a.p_abandon - b.p_abandon)
               <= 1e-9 for a, b in zip(answers[True], answers[False]))
    offered = sum(answer.offer != "none" for answer in answers[True])

    rounds: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for walked in (False, True):
            scorer.walker = walker if walked else None
            rounds[walked].append(cpu_ms(pipeline.checkout_offer, requests, args.calls))
    scorer.walker = walker
    pipeline.close()

    load = os.getloadavg()
    print(f"{len(requests)} carts, {offered} offered an incentive; load average "
          f"{load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores")
    for walked, label in ((False, "XGBoost inplace_predict"), (True, "trees walked")):
        figures = " ".join(f"{value:.3f}" for value in rounds[walked])
        print(f"{label:<24} CPU per call, median of rounds {statistics.median(rounds[walked]):.3f}"
              f" ms  ({figures})")
    print(f"same answers (offer, reason, P(abandon) within 1e-9): {same} / {len(requests)}")


if __name__ == "__main__":
    main()
