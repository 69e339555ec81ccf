"""The floor of the serving stack: a BentoML service that does nothing, for bench_serving.py.

It takes the same request body as `/homepage` and answers a fixed list of the same shape,
with the same worker count as Tailor's server (`TAILOR_SERVING_WORKERS`), the same thread
switch interval (`TAILOR_SERVING_SWITCH_INTERVAL_MS`, set by the benchmark from Tailor's
settings) and, like it, with the start-up heap frozen out of the cyclic garbage collector
(`gc.freeze`; without it both servers pause for 100 ms or more every few seconds under
load), so the difference between the two in one benchmark run is what Tailor's own work
costs. Not part of the product.

Run by the benchmark: bentoml serve trivial_service:Trivial --working-dir bench --port P
"""

from __future__ import annotations

import gc
import os
import sys
import uuid
from typing import Any

import bentoml

WORKERS = int(os.environ.get("TAILOR_SERVING_WORKERS", "1"))
if os.environ.get("TAILOR_SERVING_SWITCH_INTERVAL_MS"):  # Tailor's setting, passed by the bench
    sys.setswitchinterval(float(os.environ["TAILOR_SERVING_SWITCH_INTERVAL_MS"]) / 1000)
ITEMS = [{"product_id": f"p-{rank}", "score": 1.0 / rank, "reason": "popular right now"}
         for rank in range(1, 11)]


@bentoml.service(name="trivial", workers=WORKERS, logging={"access": {"enabled": False}})
class Trivial:
    """One non-batchable endpoint answering a constant homepage-shaped list."""

    def __init__(self) -> None:
        gc.collect()
        gc.freeze()

    @bentoml.api(route="/homepage")
    def homepage(self, customer_id: str, k: int = 10,
                 context: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"items": ITEMS[:k], "model_version": None, "variant": "trivial",
                "fallback": False, "fallback_reason": None, "personalised": False,
                "request_id": uuid.uuid4().hex}
