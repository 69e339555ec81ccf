"""The floor of the serving stack: a BentoML service that does nothing, for bench_serving.py.

It takes the same request bodies as `/homepage`, `/also_bought` and `/checkout_offer` and
answers fixed bodies of the same shape,
with the same worker count as Tailor's server (`TAILOR_SERVING_WORKERS`), the same thread
switch interval (`TAILOR_SERVING_SWITCH_INTERVAL_MS`, set by the benchmark from Tailor's
settings) and, like it, with the start-up heap frozen out of the cyclic garbage collector
(`gc.freeze`; without it both servers pause for 100 ms or more every few seconds under
load), and BentoML's OpenTelemetry span per request unless TAILOR_SERVING_TRACING=false (the
capacity benchmark runs it both ways: BentoML's default, and Tailor's default), so the difference between the two in one benchmark run is what Tailor's own work
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


# TAILOR_SERVING_TRACING=false: without BentoML's OpenTelemetry span, as Tailor serves by default.
TRACING = os.environ.get("TAILOR_SERVING_TRACING", "true").lower() not in ("false", "0")


@bentoml.service(name="trivial", workers=WORKERS, logging={"access": {"enabled": False}},
                 **({} if TRACING else {"tracing": {"excluded_urls": [".*"]}}))
class Trivial:
    """Non-batchable endpoints answering constant bodies shaped like Tailor's answers
    (`/homepage`, `/also_bought`, `/checkout_offer`)."""

    def __init__(self) -> None:
        gc.collect()
        gc.freeze()

    @bentoml.api(route="/also_bought")
    def also_bought(self, product_id: str, k: int = 10, customer_id: str | None = None,
                    context: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"items": ITEMS[:k], "model_version": None, "variant": "trivial",
                "fallback": False, "fallback_reason": None, "request_id": uuid.uuid4().hex}

    @bentoml.api(route="/checkout_offer")
    def checkout_offer(self, customer_id: str, session_id: str, cart: list[dict[str, Any]],
                       context: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"p_abandon": 0.5, "offer": "none", "reason": "no offer: trivial",
                "model_version": None, "variant": "trivial", "fallback": False,
                "fallback_reason": None, "request_id": uuid.uuid4().hex}

    @bentoml.api(route="/homepage")
    def homepage(self, customer_id: str, k: int = 10,
                 context: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"items": ITEMS[:k], "model_version": None, "variant": "trivial",
                "fallback": False, "fallback_reason": None, "personalised": False,
                "request_id": uuid.uuid4().hex}
