"""How long the in-process pipeline takes per request, beside its parts.

Prints a small table (run with -s to see it) and checks each endpoint's median against
the share of the 15 ms end-to-end target the pipeline may use; the HTTP figures are in
bench/ and docs/benchmarks.md.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from tailor.serving.schemas import (
    AlsoBoughtRequest, CartLine, CheckoutOfferRequest, HomepageRequest,
)

REPEATS = 300
PIPELINE_BUDGET_MS = 5.0  # of the 15 ms p50 target; the server stack takes the rest


def timed(call: Callable[[], object], repeats: int = REPEATS) -> dict[str, float]:
    call()  # warm
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50": float(np.percentile(samples, 50)), "p99": float(np.percentile(samples, 99))}


def test_per_request_cost_of_each_endpoint(pipeline) -> None:
    model = pipeline.slots["homepage"].current.model
    customer = str(model.customers.ids[3])
    rows = np.array([model.customers.positions[customer]])
    reader = pipeline.features["homepage"]
    homepage = HomepageRequest(customer_id=customer, k=10)
    browsing = HomepageRequest(customer_id=customer, k=10, context={"categories": ["books"]})
    cart = CheckoutOfferRequest(customer_id=customer, session_id="s", cart=[
        CartLine(product_id="p00001", quantity=2), CartLine(product_id="p00002", price=9.5)])
    figures = {
        "online feature read (homepage)": timed(lambda: reader.read(customer)),
        "model scoring only (top_items)": timed(lambda: model.top_items(rows, 10)),
        "model.recommend (pandas frame)": timed(lambda: model.recommend([customer], k=10)),
        "pipeline.homepage": timed(lambda: pipeline.homepage(homepage)),
        "pipeline.homepage, browsing": timed(lambda: pipeline.homepage(browsing)),
        "pipeline.also_bought": timed(lambda: pipeline.also_bought(
            AlsoBoughtRequest(product_id="p00001", k=10))),
        "pipeline.checkout_offer": timed(lambda: pipeline.checkout_offer(cart)),
    }
    print("\nin-process latency, ms (SQLite online store)")
    for name, values in figures.items():
        print(f"  {name:<34} p50 {values['p50']:6.2f}  p99 {values['p99']:6.2f}")
    for name in ("pipeline.homepage", "pipeline.also_bought", "pipeline.checkout_offer"):
        assert figures[name]["p50"] < PIPELINE_BUDGET_MS, (name, figures[name])
