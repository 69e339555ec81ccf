"""A home ready for re-engagement campaigns without trained models, for the campaign tests.

Writes, under the home it is given: the discount-timing definition
(`<home>/experiments/discount-timing.yaml`), its lifecycle state in the event store (started
by `campaign_settings` unless told otherwise, so the customers get variants), and the
customers' e-mail and name in the PII store. `campaign_settings` points the campaign at a
local SMTP server and a collector URL; `fake_sources` stands in for the churn and homepage
champions with scores and picks worked out here (the integration test
`tests/integration/test_campaign_models.py` plans from real ones). Importable from every test
folder (pytest puts `tests/` on `sys.path`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from smtp_servers import SmtpServer, local_smtp_server
from tailor.config import Settings, load_settings
from tailor.experiments.campaigns import PlanSources

DEFINITION = """\
name: discount-timing
hypothesis: the discount two days later converts as well and protects the margin
owner: crm-team
surface: campaign
layer: campaign
traffic: 1.0
variants:
  - name: immediate
    weight: 0.5
    changes: {discount_delay_days: 0}
  - name: after-2-days
    weight: 0.5
    changes: {discount_delay_days: 2}
control: immediate
metrics:
  primary: conversion
  secondary: [email_ctr]
  attribution_window_hours: 48
guardrails: []
minimum_sample: 100
max_duration_days: 28
stopping: {method: sequential, alpha: 0.05, power: 0.8, minimum_detectable_effect: 0.05}
"""
SHOP_URL = "https://shop.example/"
PRODUCT_URL = "https://shop.example/p/{product_id}"
SENDER = "Shop <news@shop.example>"
PRODUCTS = pd.DataFrame({"product_id": ["p1", "p2", "p3", "p4", "p5"],
                         "name": ["Blue Mug", "Tea Pot", "Oak Tray", "Linen Cloth", "Candle"],
                         "price": [12.5, 30.0, 22.0, 9.9, 5.0]})


@dataclass(frozen=True)
class Customer:
    customer_id: str
    churn_probability: float
    email: str | None
    name: str | None


# Ten customers: seven above the default churn threshold (0.7), three below.
CUSTOMERS: tuple[Customer, ...] = tuple(
    Customer(f"cust-{number:02d}", probability, f"person{number:02d}@mailbox.example",
             f"Person{number:02d} Lastname{number:02d}")
    for number, probability in enumerate(
        [0.95, 0.91, 0.88, 0.84, 0.80, 0.77, 0.72, 0.65, 0.40, 0.10], start=1))


def campaign_settings(home: Path, smtp_port: int = 9,
                      tracking_url: str = "http://127.0.0.1:9/collect", started: bool = True,
                      definition: str = DEFINITION, **overrides: Any) -> Settings:
    """Settings of `home` (embedded defaults, no environment) with campaigns on, the SMTP
    server on 127.0.0.1:`smtp_port`, the `definition` written and (`started`) the
    experiment running."""
    write_definition(home, definition)
    settings = load_settings(home=home, env={}).replace(
        experiments_campaign_sender=SENDER, experiments_campaign_tracking_url=tracking_url,
        experiments_campaign_shop_url=SHOP_URL, experiments_campaign_product_url=PRODUCT_URL,
        mail_host="127.0.0.1", mail_port=smtp_port, mail_timeout_seconds=5.0, **overrides)
    if started:
        start_experiment(settings)
    return settings


def start_experiment(settings: Settings, name: str = "discount-timing") -> None:
    """Start the experiment (`tailor experiment start`'s path) unless it already runs."""
    from tailor.experiments.state import RUNNING, open_store, start

    with open_store(settings) as store:
        record = store.record(name)
    if record is None or record.status != RUNNING:
        start(settings, name, actor="tests", reason="campaign tests")


def write_definition(home: Path, text: str = DEFINITION) -> Path:
    path = home / "experiments" / "discount-timing.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def store_pii(settings: Settings, customers: tuple[Customer, ...] = CUSTOMERS) -> None:
    """The customers' e-mail and name in the home's PII store (none for a None e-mail)."""
    from tailor.events.pii import open_pii_store

    rows = [{"customer_id": item.customer_id, "email": item.email, "name": item.name}
            for item in customers if item.email is not None]
    store = open_pii_store(settings)
    try:
        store.upsert(pd.DataFrame(rows))
    finally:
        store.close()


@dataclass
class FakeScores:
    """What `score_churn` returns, made by hand."""

    scores: pd.DataFrame
    version: str = "7"
    as_of: pd.Timestamp = pd.Timestamp("2026-03-02T00:00:00Z")
    products: pd.DataFrame = field(default_factory=lambda: PRODUCTS.copy())


@dataclass
class FakeSources:
    """Churn scores of `customers` and picks: each customer gets the catalogue rotated by its
    number, so different customers get different picks. Records every recommend call."""

    customers: tuple[Customer, ...] = CUSTOMERS
    calls: list[list[str]] = field(default_factory=list)

    def score(self, settings: Settings, as_of: str | None) -> FakeScores:
        return FakeScores(pd.DataFrame({
            "customer_id": [item.customer_id for item in self.customers],
            "churn_probability": [item.churn_probability for item in self.customers]}))

    def recommend(self, settings: Settings, customer_ids: list[str], k: int
                  ) -> tuple[pd.DataFrame, str]:
        self.calls.append(list(customer_ids))
        rows = []
        for customer in customer_ids:
            start = int(customer.rsplit("-", 1)[-1]) % len(PRODUCTS)
            for rank in range(1, k + 1):
                product = PRODUCTS["product_id"].iloc[(start + rank - 1) % len(PRODUCTS)]
                rows.append({"customer_id": customer, "product_id": product, "rank": rank,
                             "score": 1.0 / rank, "tier": "collaborative",
                             "reason": f"popular with shoppers like you ({rank})"})
        return pd.DataFrame(rows), "3"

    def sources(self) -> PlanSources:
        return PlanSources(score=self.score, recommend=self.recommend)

    def expected_picks(self, customer_id: str, k: int) -> list[str]:
        frame, _ = FakeSources().recommend(None, [customer_id], k)  # type: ignore[arg-type]
        return frame["product_id"].tolist()


def at_risk(threshold: float = 0.7, customers: tuple[Customer, ...] = CUSTOMERS) -> list[str]:
    """The customers above `threshold`, worked out from the table."""
    return [item.customer_id for item in customers if item.churn_probability > threshold]


def personal_data(customers: tuple[Customer, ...] = CUSTOMERS) -> list[str]:
    """Every e-mail address and name (and each name's parts) the PII store holds."""
    values: list[str] = []
    for item in customers:
        values += [value for value in (item.email, item.name) if value]
        values += (item.name or "").split()
    return values


# Fixtures for the modules that import them: a local SMTP server, and a campaign home on it
# with the customers' PII stored.
@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with local_smtp_server() as server:
        yield server


@pytest.fixture
def settings(tailor_home: Path, smtp: SmtpServer) -> Settings:
    settings = campaign_settings(tailor_home, smtp.port)
    store_pii(settings)
    return settings
