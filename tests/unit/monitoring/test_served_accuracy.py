"""The served answers' accuracy: the prediction log joined to the purchases that followed,
computed by hand for a few answers and compared; immature, anonymous and fallback answers
left out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailor.config import load_settings
from tailor.events.prediction_store import PREDICTION_COLUMNS, open_prediction_store
from tailor.models.data import build_shop_data
from tailor.monitoring.served_accuracy import served_accuracy

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _answer(request: str, customer: str | None, day: float, endpoint: str, items=(),
            p_abandon=None, fallback=False) -> tuple:
    values = {"served_at": int((T0 + pd.Timedelta(days=day)).value // 1000),
              "request_id": request, "customer_id": customer, "session_id": None,
              "endpoint": endpoint, "model": {"homepage": "homepage", "also_bought": "cross_sell",
                                              "checkout_offer": "checkout"}[endpoint],
              "model_version": None if fallback else "1", "variant": "champion",
              "items": json.dumps([{"product_id": p, "score": 1.0, "reason": "r"} for p in items]),
              "k": len(items) or None, "p_abandon": p_abandon, "offer": None,
              "fallback": fallback, "fallback_reason": "timeout" if fallback else None,
              "stale": False, "personalised": None, "anchor_product_id": None,
              "experiment": None, "experiment_variant": None, "latency_ms": None,
              "fallback_kind": "timeout" if fallback else None}
    return tuple(values[name] for name in PREDICTION_COLUMNS)


def _purchase(customer: str, product: str, day: float) -> dict:
    return {"customer_id": customer, "event_type": "purchase", "product_id": product,
            "timestamp": T0 + pd.Timedelta(days=day), "price": 10.0, "quantity": 1}


@pytest.fixture
def home(tmp_path: Path):
    settings = load_settings(home=tmp_path, env={}).replace(monitoring_label_days=7)
    store = open_prediction_store(settings.event_store_url)
    store.insert_predictions([
        _answer("a", "c1", 1, "homepage", ["p1", "p2", "p3", "p4"]),   # buys p1, p3: 2 hits
        _answer("b", "c2", 2, "homepage", ["p5", "p6", "p7", "p8"]),   # buys p9 only: 0 hits
        _answer("c", "c3", 3, "homepage", ["p1", "p2", "p3", "p4"]),   # buys p2 after 8 days: 0
        _answer("d", None, 3, "homepage", ["p1", "p2", "p3", "p4"]),   # anonymous: left out
        _answer("e", "c1", 3, "homepage", ["p1"], fallback=True),      # fallback: left out
        _answer("f", "c1", 20, "homepage", ["p1", "p2", "p3", "p4"]),  # immature: left out
        _answer("g", "c1", 1, "checkout_offer", p_abandon=0.2),        # bought: kept
        _answer("h", "c2", 2, "checkout_offer", p_abandon=0.75),       # bought p9 within 7 days
        _answer("i", "c4", 2, "checkout_offer", p_abandon=0.8),        # never bought: abandoned
        _answer("j", "c3", 3, "checkout_offer", p_abandon=0.7),        # bought after 8 days
    ])
    store.close()
    events = pd.DataFrame([_purchase("c1", "p1", 2), _purchase("c1", "p3", 4),
                           _purchase("c1", "p1", 5), _purchase("c2", "p9", 3),
                           _purchase("c3", "p2", 11), _purchase("c1", "p1", 0.5)])
    return settings, build_shop_data(events)


def test_homepage_lists_are_scored_against_the_purchases_that_followed(home) -> None:
    settings, data = home
    result = served_accuracy(settings, data, "homepage", T0, T0 + pd.Timedelta(days=25), k=4)
    assert result["answers"] == 3  # a, b, c
    assert result["precision@4"] == pytest.approx((2 / 4 + 0 + 0) / 3)
    assert result["hit_rate@4"] == pytest.approx(1 / 3)
    assert result["precision@4_se"] > 0


def test_checkout_offers_are_scored_by_whether_the_customer_bought(home) -> None:
    settings, data = home
    result = served_accuracy(settings, data, "checkout", T0, T0 + pd.Timedelta(days=25))
    # abandoned: i (0.8), j (0.7); bought: g (0.2), h (0.75): pairs ranked right: 3 of 4
    assert result == {"roc_auc": pytest.approx(0.75), "answers": 4.0}


def test_nothing_matured_or_nothing_served_is_none(home) -> None:
    settings, data = home
    assert served_accuracy(settings, data, "homepage", T0, T0 + pd.Timedelta(days=5)) is None
    assert served_accuracy(settings, data, "cross_sell", T0, T0 + pd.Timedelta(days=25)) is None
    assert served_accuracy(settings, data, "churn", T0, T0 + pd.Timedelta(days=25)) is None
