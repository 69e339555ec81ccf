"""A campaign's figures per variant from hand-placed events (posted to the collector app):
opens and clicks once per mail, a clicked mail counts as opened, other campaigns' events are
ignored, and a conversion is a purchase after the first click within the window (48 h in
the test definition), never one before it or after the window; customers the assignment put
in no experiment (the holdout) are counted apart, under `no_variant`, and in the total."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette now suggests httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from campaign_homes import FakeSources, at_risk
from smtp_servers import SmtpServer
from tailor.config import Settings
from tailor.errors import InputError
from tailor.events.campaign_store import open_campaign_store
from tailor.events.collector.app import create_collector_app
from tailor.events.keys import create_key, keys_file_path
from tailor.experiments.campaign_send import send_due
from tailor.experiments.campaign_status import campaign_status, status_lines
from tailor.experiments.campaigns import plan_campaign

NOW = datetime(2026, 3, 2, 4, 45, tzinfo=timezone.utc)
CAMPAIGN = "status-test"


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


def email(kind: str, customer: str, hours: float, mail: int = 1, campaign: str = CAMPAIGN,
          number: int = 0) -> dict:
    return {"event_id": f"{kind}-{customer}-{hours}-{mail}-{campaign}-{number}",
            "customer_id": customer, "event_type": kind, "timestamp": at(hours),
            "properties": {"campaign": campaign, "variant": "x", "mail": mail, "link": "shop"}}


def purchase(customer: str, hours: float) -> dict:
    return {"event_id": f"buy-{customer}-{hours}", "customer_id": customer,
            "event_type": "purchase", "product_id": "p1", "price": 10.0, "quantity": 1,
            "timestamp": at(hours)}


@pytest.fixture
def sent(settings: Settings, sources: FakeSources, smtp: SmtpServer) -> dict[str, str]:
    """The campaign planned and sent (second mails too); each customer's variant."""
    plan_campaign(settings, CAMPAIGN, now=NOW, sources=sources.sources())
    assert send_due(settings, now=NOW).ok
    assert send_due(settings, now=NOW + timedelta(days=2, minutes=1)).ok
    store = open_campaign_store(settings.event_store_url)
    try:
        return {send.customer_id: send.variant for send in store.sends(CAMPAIGN)}
    finally:
        store.close()


def post(settings: Settings, events: list[dict]) -> None:
    key = create_key("secret", keys_file_path(settings), label="status test")
    with TestClient(create_collector_app(settings)) as client:
        answer = client.post("/v1/events", json={"events": events},
                             headers={"X-Tailor-Key": key})
    assert answer.status_code == 200 and answer.json()["accepted"] == len(events), answer.text


def test_the_figures_per_variant_by_hand(settings: Settings, sent: dict[str, str]) -> None:
    immediate = sorted(customer for customer, variant in sent.items() if variant == "immediate")
    delayed = sorted(customer for customer, variant in sent.items() if variant != "immediate")
    assert len(immediate) >= 2 and len(delayed) >= 1, "the fixture's split changed"
    x, y = immediate[:2]
    z = delayed[0]
    post(settings, [
        email("email_open", x, 1), email("email_open", x, 1.5, number=1),  # one opened mail
        email("email_click", x, 2), purchase(x, 3),                          # converts
        email("email_click", y, 1), purchase(y, 0.5), purchase(y, 1 + 49),   # before / too late
        email("email_click", z, 49, mail=2), purchase(z, 60),                # mail 2, converts
        email("email_open", immediate[-1], 5, campaign="another-campaign"),  # not this one
        purchase(immediate[-1], 6),                                          # never clicked
    ])
    status = campaign_status(settings, CAMPAIGN)
    mine, theirs = status["variants"]["immediate"], status["variants"]["after-2-days"]
    assert (mine["customers"], mine["mails_sent"]) == (len(immediate), len(immediate))
    assert (theirs["customers"], theirs["mails_sent"]) == (len(delayed), 2 * len(delayed))
    assert (mine["mails_opened"], mine["mails_clicked"]) == (2, 2)  # y's click counts as open
    assert (mine["customers_clicked"], mine["conversions"]) == (2, 1)
    assert mine["ctr"] == pytest.approx(2 / len(immediate))
    assert mine["conversion_rate"] == pytest.approx(1 / len(immediate))
    assert (theirs["mails_clicked"], theirs["conversions"]) == (1, 1)
    assert theirs["ctr"] == pytest.approx(1 / (2 * len(delayed)))
    total = status["total"]
    assert (total["mails_sent"], total["mails_clicked"], total["conversions"]) == (
        len(immediate) + 2 * len(delayed), 3, 2)
    assert total["customers"] == len(at_risk())
    assert status["attribution_window_hours"] == 48 and status["campaigns"] == [CAMPAIGN]
    lines = status_lines(status)
    assert lines[0].startswith(f"campaign {CAMPAIGN}") and any("immediate" in line
                                                                for line in lines)


def test_customers_in_no_experiment_are_counted_apart(settings: Settings, sources: FakeSources,
                                                    smtp: SmtpServer) -> None:
    with_holdout = settings.replace(experiments_holdout_share=0.3)
    plan_campaign(with_holdout, CAMPAIGN, now=NOW, sources=sources.sources())
    assert send_due(with_holdout, now=NOW).ok
    store = open_campaign_store(settings.event_store_url)
    try:
        variants = {send.customer_id: send.variant for send in store.sends(CAMPAIGN)}
    finally:
        store.close()
    held = [customer for customer, variant in variants.items() if variant is None]
    assert 0 < len(held) < len(variants), "the fixture's customers and holdout changed"
    post(settings, [email("email_click", held[0], 1), purchase(held[0], 2)])
    status = campaign_status(with_holdout, CAMPAIGN)
    outside = status["no_variant"]
    assert (outside["customers"], outside["mails_clicked"], outside["conversions"]) == (
        len(held), 1, 1)
    assert sum(row["customers"] for row in status["variants"].values()) + len(held) \
        == status["total"]["customers"] == len(at_risk())
    assert status["total"]["conversions"] == 1
    assert any(line.split()[:2] == ["no", "variant"] for line in status_lines(status))


def test_no_campaign_or_an_unknown_one_is_bad_input(settings: Settings,
                                                   sent: dict[str, str]) -> None:
    with pytest.raises(InputError, match="no campaign 'nope'; planned: status-test"):
        campaign_status(settings, "nope")


def test_before_any_plan(tailor_home: Path, settings: Settings) -> None:
    with pytest.raises(InputError, match="no campaign planned yet"):
        campaign_status(settings)
