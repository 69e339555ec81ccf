"""In-process serving cost: `ServingPipeline` answers timed without HTTP, per kind of shopper.

Targets (issue 16, docs/benchmarks.md "Serving capacity"):
  * `ServingPipeline.homepage` p50 <= 0.5 ms for known customers (the ten biggest buyers and
    random buyers), on the demo shop and on a 1M customers x 100k products shop;
  * the same answers as the full-row ranking (items, order, reasons) for the customers timed.

Baselines measured in the same run: the online feature read alone (the store the home is set
up with, fast path and Feast SDK), the ranking alone, and the full-row ranking of every request
(`HomepageRanker` without candidates found ahead: every request over the whole catalogue).

Reads a prepared home (`tailor demo --home DIR`, or bench_serving.py's `--keep DIR`), read-only
but for the BentoML model store it imports the models into. Writes nothing else.

Run: .venv/bin/python bench/bench_serving_inprocess.py --home /tmp/serving-demo [--repeats 2000]
     [--profile out.svg]  (py-spy record of the timed loop)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

TARGET_P50_MS = 0.5
DEMO_HOME = Path(__file__).resolve().parents[1] / ".tailor" / "demo"  # make demo's home


def timed(call: Callable[[Any], Any], inputs: Sequence[Any], repeats: int) -> float:
    """The p50 in ms of `call` over `repeats` calls, taking `inputs` in turn (after a warm-up)."""
    for item in inputs[:50]:
        call(item)
    times = []
    for index in range(repeats):
        item = inputs[index % len(inputs)]
        started = time.perf_counter()
        call(item)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def shoppers(home: Path, model: Any, count: int, seed: int) -> dict[str, list[str]]:
    """The biggest buyers, random buyers (known to the model) and a stranger."""
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        biggest = [str(row[0]) for row in con.execute(
            "SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC "
            "LIMIT 10").fetchall()]
    buyers = [str(model.customers.ids[row]) for row in np.flatnonzero(model.purchase_counts > 0)]
    return {"biggest buyers": biggest,
            "random buyers": random.Random(seed).sample(buyers, min(count, len(buyers))),
            "stranger": ["visitor-never-seen"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEMO_HOME,
                        help="a prepared home (default: make demo's)")
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    if not (args.home / "warehouse.duckdb").exists():
        print(f"skipped: no prepared home at {args.home} (run `make demo`, or pass --home)")
        return

    os.environ.setdefault("TAILOR_MONITORING_PREDICTION_LOG", "false")
    from tailor.config import load_settings
    from tailor.serving.homepage import HomepageRanker
    from tailor.serving.pipeline import ServingPipeline
    from tailor.serving.schemas import (
        AlsoBoughtRequest,
        CartLine,
        CheckoutOfferRequest,
        HomepageRequest,
    )

    settings = load_settings(home=args.home)
    started = time.perf_counter()
    pipeline = ServingPipeline(settings, start_watcher=False)
    print(f"pipeline ready in {time.perf_counter() - started:.1f} s "
          f"(online store fast path: {pipeline.features['homepage'].fast_path})")
    loaded = pipeline.slots["homepage"].current
    if loaded is None:
        raise SystemExit("no homepage champion in this home: run bench_serving.py's "
                         "ensure_champions or train first")
    model, ranker = loaded.model, loaded.prepared
    print(f"shop: {len(model.customers):,} customers x {len(model.products):,} products; "
          f"candidates found ahead for up to {settings.serving_precomputed_customers:,} customers")
    groups = shoppers(args.home, model, args.customers, seed=7)
    full_row = HomepageRanker(model, settings.serving_max_k, settings.serving_session_share)
    if ranker.precomputed is not None:
        ranker.precomputed.done.wait()
        print(f"candidates: {ranker.precomputed.status()}")

    if args.profile:
        spy = str(Path(sys.executable).with_name("py-spy"))
        kind = "raw" if args.profile.suffix == ".txt" else "flamegraph"
        profiler = subprocess.Popen([spy, "record", "-o", str(args.profile), "-r", "500", "-f",
                                     kind, "--pid", str(os.getpid()), "--nonblocking"])
        time.sleep(1.0)
    rows = []
    for label, ids in groups.items():
        requests = [HomepageRequest(customer_id=customer, k=10) for customer in ids]
        answers = [pipeline.homepage(request) for request in requests]
        fallbacks = sum(answer.fallback for answer in answers)
        pipeline_ms = timed(pipeline.homepage, requests, args.repeats)
        reader = pipeline.features["homepage"]
        features_ms = timed(lambda customer: reader.read_many([customer]), ids, args.repeats)
        rank_ms = timed(lambda customer: ranker.rank([customer], [10], [frozenset()]), ids,
                        args.repeats)
        full_ms = timed(lambda customer: full_row.rank([customer], [10], [frozenset()]), ids,
                        args.repeats)
        same = sum(_same(ranker.rank([c], [10], [frozenset()])[0],
                         full_row.rank([c], [10], [frozenset()])[0]) for c in ids)
        rows.append((label, len(ids), pipeline_ms, features_ms, rank_ms, full_ms,
                     f"{same}/{len(ids)}", fallbacks))
    browsing = [HomepageRequest(customer_id=customer, k=10,
                                context={"categories": [str(model.categories[0])]})
                for customer in groups["random buyers"]]
    browse_ms = timed(pipeline.homepage, browsing, args.repeats)
    anchors = [str(product) for product in model.products.ids[:200]]
    also = [AlsoBoughtRequest(product_id=anchor, k=10) for anchor in anchors]
    also_ms = timed(pipeline.also_bought, also, args.repeats)
    carts = [CheckoutOfferRequest(customer_id=customer, session_id="s-1",
                                  cart=[CartLine(product_id=anchors[0], quantity=1)])
             for customer in groups["random buyers"]]
    checkout_ms = timed(pipeline.checkout_offer, carts, args.repeats)
    if args.profile:
        profiler.send_signal(signal.SIGINT)
        profiler.wait()
    pipeline.close()

    print(f"{'shoppers':<16} {'n':>4} {'homepage':>9} {'features':>9} {'ranking':>8} "
          f"{'full-row':>9} {'same answer':>12} {'fallbacks':>9}   (p50, ms)")
    for label, count, pipe_ms, feat_ms, rank_ms, full_ms, same, fallbacks in rows:
        print(f"{label:<16} {count:>4} {pipe_ms:>9.3f} {feat_ms:>9.3f} {rank_ms:>8.3f} "
              f"{full_ms:>9.3f} {same:>12} {fallbacks:>9}")
    print(f"random buyers browsing a category: homepage p50 {browse_ms:.3f} ms")
    print(f"also bought p50 {also_ms:.3f} ms; checkout offer p50 {checkout_ms:.3f} ms")
    known = [pipe_ms for label, _, pipe_ms, *_ in rows if label != "stranger"]
    verdict = "PASS" if max(known) <= TARGET_P50_MS else "FAIL"
    print(f"{verdict}  homepage p50 for known customers {max(known):.3f} ms "
          f"(target <= {TARGET_P50_MS} ms)")


def _same(left: list[Any], right: list[Any]) -> bool:
    """Same products, order and reasons (scores to float precision)."""
    return [(item.product_id, item.reason) for item in left] == \
        [(item.product_id, item.reason) for item in right] and \
        np.allclose([item.score for item in left], [item.score for item in right])


if __name__ == "__main__":
    sys.exit(main())
