"""A small shop whose daily-report figures can be computed by hand, for the report tests.

`build_report_home(settings, folder)` writes an events file (explicit sessions and one
derived session), a catalogue and a customers file with names and e-mail addresses (the
PII the report must never show), writes the answers of `PREDICTIONS` to the prediction log,
ingests the files, exports the lake and builds the warehouse (whose `predictions` view then
holds the answers), and gives the audit table three monitoring decisions (`add_decisions`). Reads nothing else. The expected figures are in
`EXPECTED_*` below, worked out from the rows by hand.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from shop_homes import load_events
from tailor.config import Settings
from tailor.events.prediction_store import (
    PREDICTION_COLUMNS, datetime_to_micros, open_prediction_store,
)
from tailor.monitoring import audit

REPORT_DAY = date(2026, 3, 2)
NOW = pd.Timestamp("2026-03-03T03:15:00Z")  # the scheduler's daily report time
CUSTOMERS = pd.DataFrame({
    "customer_id": ["cust-ann", "cust-bob", "cust-cid", "cust-dee"],
    "signup_date": ["2025-06-01"] * 4,
    "location": ["Lyon", "Porto", "Graz", "Turku"],
    "device_type": ["mobile", "desktop", "mobile", "tablet"],
    "email": ["ann@example.org", "bob@example.org", "cid@example.org", "dee@example.org"],
    "name": ["Ann Annson", "Bob Bobson", "Cid Cidson", "Dee Deeson"],
})
PRODUCTS = pd.DataFrame({"product_id": ["p1", "p2", "p3"], "category": ["a", "b", "b"],
                         "price": [20.0, 15.0, 5.0]})
# (customer, session, time, event, product, price, quantity, order)
EVENTS = [
    # 2026-03-01: two sessions, one buys (order o3, 20.00)
    ("cust-dee", "sess-4", "2026-03-01T09:00:00Z", "page_view", None, None, None, None),
    ("cust-dee", "sess-4", "2026-03-01T09:02:00Z", "purchase", "p1", 20.0, 1, "o3"),
    ("cust-ann", "sess-5", "2026-03-01T18:00:00Z", "page_view", None, None, None, None),
    # 2026-03-02: four sessions, three buy
    ("cust-ann", "sess-1", "2026-03-02T10:00:00Z", "page_view", None, None, None, None),
    ("cust-ann", "sess-1", "2026-03-02T10:01:00Z", "product_view", "p1", 20.0, None, None),
    ("cust-ann", "sess-1", "2026-03-02T10:02:00Z", "add_to_cart", "p1", 20.0, 2, None),
    ("cust-ann", "sess-1", "2026-03-02T10:05:00Z", "purchase", "p1", 20.0, 2, "o1"),  # 40.00
    ("cust-bob", "sess-2", "2026-03-02T11:00:00Z", "page_view", None, None, None, None),
    ("cust-bob", "sess-2", "2026-03-02T11:01:00Z", "product_view", "p2", 15.0, None, None),
    ("cust-cid", "sess-3", "2026-03-02T12:00:00Z", "page_view", None, None, None, None),
    ("cust-cid", "sess-3", "2026-03-02T12:03:00Z", "purchase", "p2", 15.0, 1, "o2"),
    ("cust-cid", "sess-3", "2026-03-02T12:03:00Z", "purchase", "p3", 5.0, 1, "o2"),  # o2: 20.00
    # no session id: a derived session of cust-bob in the evening (order o4, 5.00)
    ("cust-bob", None, "2026-03-02T20:00:00Z", "page_view", None, None, None, None),
    ("cust-bob", None, "2026-03-02T20:05:00Z", "purchase", "p3", 5.0, 1, "o4"),
]
# (served at, customer, session, endpoint, model, variant, fallback)
PREDICTIONS = [
    ("2026-03-02T09:59:59Z", "cust-ann", "sess-1", "homepage", "homepage", "champion", False),
    ("2026-03-02T10:59:59Z", "cust-bob", "sess-2", "homepage", "homepage", "challenger", False),
    ("2026-03-02T11:30:00Z", "cust-bob", "sess-2", "homepage", "homepage", "champion", False),
    ("2026-03-02T15:00:00Z", "cust-bob", None, "homepage", "homepage", "champion", False),
    ("2026-03-02T19:59:58Z", "cust-bob", None, "homepage", "homepage", "challenger", False),
    ("2026-03-02T12:02:00Z", "cust-cid", "sess-3", "checkout_offer", "checkout", "champion", True),
    ("2026-03-01T09:01:00Z", "cust-dee", "sess-4", "checkout_offer", "checkout", "champion", False),
]
# The report day, by hand: sessions sess-1, sess-2, sess-3 and cust-bob's derived one;
# sess-1, sess-3 and the derived one bought; orders o1 40, o2 20, o4 5.
EXPECTED_DAY = {"sessions": 4, "converted_sessions": 3, "orders": 3, "revenue": 65.0}
EXPECTED_DAY_BEFORE = {"sessions": 2, "converted_sessions": 1, "orders": 1, "revenue": 20.0}
# (model, variant) -> (sessions, converted, orders, revenue) on the report day: sess-1's
# first homepage answer is the champion's; sess-2's first is the challenger's (the later
# champion answer does not move it); the answer at 15:00 belongs to no session; the derived
# evening session matches the challenger answer served two seconds before it by customer and
# time.
EXPECTED_VARIANTS = {
    ("checkout", "champion"): (1, 1, 1, 20.0),
    ("homepage", "challenger"): (2, 1, 1, 5.0),
    ("homepage", "champion"): (1, 1, 1, 40.0),
}
EXPECTED_ANSWERS = {"homepage": (5, 0), "checkout_offer": (1, 1)}  # answers, fallbacks


def build_report_home(settings: Settings, folder: Path) -> Settings:
    """The shop above in the settings' home: event store, lake, warehouse, the prediction log
    and three monitoring decisions."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["customer_id", "session_id", "timestamp", "event_type", "product_id", "price",
               "quantity", "order_id"]
    pd.DataFrame(EVENTS, columns=columns).to_csv(folder / "events.csv", index=False)
    PRODUCTS.to_csv(folder / "products.csv", index=False)
    CUSTOMERS.to_csv(folder / "customers.csv", index=False)
    log_predictions(settings)
    load_events(settings, folder / "events.csv", products=folder / "products.csv",
                customers=folder / "customers.csv")
    add_decisions(settings)
    return settings


def log_predictions(settings: Settings) -> None:
    """Write `PREDICTIONS` to the event store's prediction log, which the lake export and the
    warehouse's `predictions` view then carry, as the server's answers."""
    rows = []
    for number, (served_at, customer, session, endpoint, model, variant, fallback) \
            in enumerate(PREDICTIONS):
        values = dict.fromkeys(PREDICTION_COLUMNS)
        values.update(served_at=datetime_to_micros(pd.Timestamp(served_at).to_pydatetime()),
                      request_id=f"r{number}", customer_id=customer, session_id=session,
                      endpoint=endpoint, model=model, model_version="1", variant=variant,
                      items="[]", fallback=fallback, stale=False)
        rows.append(tuple(values[column] for column in PREDICTION_COLUMNS))
    store = open_prediction_store(settings.event_store_url)
    try:
        store.initialize()
        store.insert_predictions(rows)
    finally:
        store.close()


def add_decisions(settings: Settings) -> None:
    """Two rounds of the homepage model (the newer one dropped past 5% and drifted) and one
    of churn that was decided after the report's cutoff."""
    drift = [{"dataset": "profile", "columns": 12, "drifted": ["n_sessions", "top_category"],
              "share": 0.1667, "snapshot": "snap-1", "html": "reports/monitoring/h.html"},
             {"dataset": "scored", "columns": 5, "drifted": [], "share": 0.0,
              "snapshot": "snap-2", "html": None}]
    rounds = [
        ("homepage", "2026-03-01T02:45:00+00:00", "3", "ok", 0.20, 0.195, 0.4, []),
        ("homepage", "2026-03-03T02:45:00+00:00", "3", "escalated", 0.20, 0.17, 3.5, drift),
        ("churn", "2026-03-04T02:45:00+00:00", "2", "ok", 0.50, 0.50, 0.0, []),
    ]
    for model, decided_at, version, decision, baseline, current, z, flags in rounds:
        audit.record(settings, audit.Decision(
            f"{model}:{version}:{decided_at}", decided_at, model, "2026-02-20T00:00:00+00:00",
            decided_at, version, decision, f"{decision} on the newest window",
            {"metric": "precision_at_10", "baseline": baseline, "current": current,
             "drop": (baseline - current) / baseline, "z": z, "source": "served version",
             "served": {"precision_at_10": current - 0.01, "answers": 1234.0}
             if model == "homepage" else None,
             "drift": flags}))
