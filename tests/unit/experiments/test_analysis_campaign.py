"""A campaign experiment's analysis: its exposures are the mails sent in it (not the
prediction log), e-mail CTR is a metric, and nothing of a page (slates, bounce) is."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tailor.config import load_settings
from tailor.events.campaign_store import open_campaign_store
from tailor.events.prediction_store import datetime_to_micros
from tailor.events.schema import EVENT_COLUMNS
from tailor.events.store import open_event_store
from tailor.experiments.analysis import analyze_experiment
from tailor.experiments.definition import parse_definition, shipped_definitions_dir
from tailor.experiments.state import open_store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
CUSTOMERS = 200


def variant_of(index: int) -> str:
    return "after-2-days" if index % 2 else "immediate"


def clicks(index: int) -> bool:
    return index % 5 == 0


def buys(index: int) -> bool:
    return index % 4 == 0 if index % 2 == 0 else index % 8 == 1


@pytest.fixture
def settings(tailor_home: Path):
    settings = load_settings(home=tailor_home, env={})
    data = yaml.safe_load((shipped_definitions_dir() / "discount-timing.yaml").read_text())
    definition = parse_definition(data, "discount-timing")
    with open_store(settings) as store:
        store.create(definition, "tests")
        store.start(definition, "tests", "go")
    sends = open_campaign_store(settings.event_store_url)
    planned = datetime_to_micros(T0)
    sends.insert_sends([("reengage-2026-w10", f"c{i}", 1, "discount-timing", variant_of(i),
                         2 if i % 2 else 0, 0 if i % 2 else 1, f"CODE{i}", "[]", "[]",
                         f"token{i}", planned, planned) for i in range(CUSTOMERS)])
    for send in sends.sends("reengage-2026-w10"):
        sends.claim(send.id, f"<m{send.id}@tailor>", planned)
        sends.mark_sent(send.id, planned + 60_000_000)         # a minute after the plan
    sends.close()
    events = []
    for i in range(CUSTOMERS):
        if clicks(i):
            events.append({"event_id": f"k{i}", "customer_id": f"c{i}",
                           "event_type": "email_click", "timestamp": T0 + timedelta(hours=2),
                           "properties": json.dumps({"campaign": "reengage-2026-w10",
                                                     "mail": 1, "link": "shop"})})
        if buys(i):
            events.append({"event_id": f"p{i}", "customer_id": f"c{i}", "event_type": "purchase",
                           "product_id": "p1", "timestamp": T0 + timedelta(days=3),
                           "session_id": f"s{i}", "price": 30.0, "quantity": 1.0,
                           "order_id": f"o{i}"})
    frame = pd.DataFrame(events).reindex(columns=list(EVENT_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    store = open_event_store(settings.event_store_url)
    store.insert_events(frame, batch_id="campaign-test")
    store.close()
    return settings


def test_mails_are_the_exposures_and_email_ctr_is_measured(settings) -> None:
    result = analyze_experiment(settings, "discount-timing", as_of=T0 + timedelta(days=10))
    half = CUSTOMERS // 2
    assert result.units == {"immediate": half, "after-2-days": half}
    expected = {name: sum(test(i) for i in range(CUSTOMERS) if variant_of(i) == name) / half
                for name, test in (("immediate", buys), ("after-2-days", buys))}
    assert result.metric("conversion").values == pytest.approx(expected)
    ctr = {name: sum(clicks(i) for i in range(CUSTOMERS) if variant_of(i) == name) / half
           for name in ("immediate", "after-2-days")}
    assert result.metric("email_ctr").values == pytest.approx(ctr)
    assert result.window_hours == 168                    # discount-timing's own window
    assert {m.metric for m in result.metrics} == {"conversion", "email_ctr",
                                                  "revenue_per_visitor", "aov"}
    assert all(g.fallback_rate is None and g.bounce_rate is None
               for g in result.guardrails.values())
    assert result.verdict.decision == "keep_running"     # 100 customers of the 1,000 needed


def test_purchases_after_the_window_do_not_count(settings) -> None:
    late = settings.replace(experiments_attribution_window_hours=48.0)  # the purchases: day 3
    result = analyze_experiment(late, "discount-timing", as_of=T0 + timedelta(days=10))
    assert result.window_hours == 48
    assert result.metric("conversion").values == {"immediate": 0.0, "after-2-days": 0.0}
    assert result.metric("aov").analysis is None and "no orders" in result.metric("aov").problem
