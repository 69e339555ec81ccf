"""The campaign mails' tracking routes against a real `tailor collect` (uvicorn, over HTTP): the
open pixel and the click redirect record `email_open` and `email_click` for the mail's
customer, experiment and variant; the redirect goes only to a link stored with that mail (a tampered
token, a foreign URL in `u`, a link number the mail does not have: 404, nothing recorded);
and the campaign's status counts the opens, clicks, CTR and the purchase after a click.

The campaign is planned with stand-in churn scores and picks (`campaign_homes`) and sent to a
local aiosmtpd server; the links the test follows are the ones in the received mails.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timezone
from typing import Iterator

import httpx
import pytest

from campaign_homes import CUSTOMERS, FakeSources, campaign_settings, store_pii
from collector_process import CollectorProcess, free_port, start_collector
from http_probe import SECURITY_HEADERS
from smtp_servers import local_smtp_server
from tailor.config import Settings
from tailor.events.campaign_store import open_campaign_store
from tailor.events.keys import create_key
from tailor.experiments.campaign_send import send_due
from tailor.experiments.campaign_status import campaign_status
from tailor.experiments.campaigns import plan_campaign

pytestmark = pytest.mark.slow
CAMPAIGN = "spring-test"
CUSTOMER_OF = {item.email: item.customer_id for item in CUSTOMERS}
LINK = re.compile(r"(http://[^\s\"]+/t/(?:c|o)/[A-Za-z0-9_-]+(?:\.gif|\?u=\d+))")


class Campaign:
    """A sent campaign, the running collector and the mails' links by customer."""

    def __init__(self, settings: Settings, collector: CollectorProcess, secret_key: str,
                 links: dict[str, list[str]]) -> None:
        self.settings, self.collector, self.secret_key = settings, collector, secret_key
        self.links = links  # customer -> the tracked URLs of their first mail, pixel last

    def events(self, kind: str) -> list[tuple[str, dict]]:
        database = sqlite3.connect(self.settings.event_store_url.removeprefix("sqlite:///"))
        try:
            rows = database.execute("SELECT customer_id, properties FROM events "
                                    "WHERE event_type = ? ORDER BY seq", (kind,)).fetchall()
        finally:
            database.close()
        return [(customer, json.loads(properties)) for customer, properties in rows]

    def send_of(self, customer: str, mail: int = 1):
        store = open_campaign_store(self.settings.event_store_url)
        try:
            return next(send for send in store.sends(CAMPAIGN)
                        if send.customer_id == customer and send.mail == mail)
        finally:
            store.close()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    home = tmp_path_factory.mktemp("campaign-tracking") / "home"
    port = free_port()
    with local_smtp_server() as smtp:
        settings = campaign_settings(home, smtp.port,
                                     tracking_url=f"http://127.0.0.1:{port}")
        store_pii(settings)
        plan_campaign(settings, CAMPAIGN, sources=FakeSources().sources())
        report = send_due(settings)
        assert report.ok and report.sent > 0
        links: dict[str, list[str]] = {}
        for received in smtp.messages:
            html = received.message.get_body(preferencelist=("html",)).get_content()
            urls = [url.replace("&amp;", "&") for url in LINK.findall(html)]
            links[CUSTOMER_OF[received.rcpt_tos[0]]] = urls
    secret_key = create_key("secret", home / "collector_keys.json", label="campaign test")
    collector = start_collector(home, port=port)
    try:
        yield Campaign(settings, collector, secret_key, links)
    finally:
        collector.stop()


def test_the_pixel_is_a_gif_and_records_an_open(campaign: Campaign) -> None:
    customer = "cust-01"
    pixel = campaign.links[customer][-1]
    assert pixel.endswith(".gif")
    answer = httpx.get(pixel)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert answer.content.startswith(b"GIF89a") and len(answer.content) < 100
    assert "no-store" in answer.headers["cache-control"]
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    opens = [item for item in campaign.events("email_open") if item[0] == customer]
    send = campaign.send_of(customer)
    assert send.experiment == "discount-timing" and send.variant  # the experiment runs
    assert opens == [(customer, {"campaign": CAMPAIGN, "experiment": send.experiment,
                                 "variant": send.variant, "mail": 1})]


def test_a_click_records_the_link_and_redirects_to_the_stored_target(campaign: Campaign
                                                                      ) -> None:
    customer = "cust-02"
    send = campaign.send_of(customer)
    product_link = next(url for url in campaign.links[customer] if url.endswith("?u=2"))
    answer = httpx.get(product_link, follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"] == send.links[2]["url"]
    assert answer.headers["location"].startswith("https://shop.example/p/")
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    shop = httpx.get(next(url for url in campaign.links[customer] if url.endswith("?u=0")),
                     follow_redirects=False)
    assert (shop.status_code, shop.headers["location"]) == (302, "https://shop.example/")
    clicks = [item for item in campaign.events("email_click") if item[0] == customer]
    exposure = {"campaign": CAMPAIGN, "experiment": send.experiment, "variant": send.variant,
                "mail": 1}
    assert clicks == [(customer, {**exposure, "link": send.links[2]["label"]}),
                      (customer, {**exposure, "link": "shop"})]


def test_tampered_tokens_and_foreign_targets_get_404_and_record_nothing(campaign: Campaign
                                                                        ) -> None:
    base = campaign.collector.url
    token = campaign.send_of("cust-03").token
    flipped = ("A" if token[0] != "A" else "B") + token[1:]
    before = len(campaign.events("email_click")) + len(campaign.events("email_open"))
    attempts = [
        f"{base}/t/c/{flipped}?u=0",                          # one character changed
        f"{base}/t/o/{flipped}.gif",
        f"{base}/t/c/{token}?u=https://evil.example/",        # a URL instead of a link number
        f"{base}/t/c/{token}?u=https%3A%2F%2Fevil.example%2F",
        f"{base}/t/c/{token}?u=99",                           # a link the mail does not have
        f"{base}/t/c/{token}?u=-1",
        f"{base}/t/c/{token}",                                # no link number at all
        f"{base}/t/c/{token}.evil.example?u=0",
        f"{base}/t/c/short?u=0",
        f"{base}/t/c/{'x' * 5000}?u=0",
        f"{base}/t/o/{token}.png",
    ]
    for url in attempts:
        answer = httpx.get(url, follow_redirects=False)
        assert answer.status_code == 404, url
        assert "location" not in answer.headers, url
        assert "evil.example" not in answer.text
    after = len(campaign.events("email_click")) + len(campaign.events("email_open"))
    assert after == before


def test_the_status_counts_opens_clicks_and_the_purchase_after_a_click(campaign: Campaign
                                                                       ) -> None:
    customer = "cust-04"
    httpx.get(campaign.links[customer][-1])  # opens the mail
    httpx.get(campaign.links[customer][0], follow_redirects=False)  # clicks a pick
    httpx.get(campaign.links[customer][0], follow_redirects=False)  # and again: one click
    now = datetime.now(timezone.utc).isoformat()
    batch = [{"event_id": f"buy-{customer}", "customer_id": customer, "event_type": "purchase",
              "product_id": "p1", "price": 12.5, "quantity": 1, "timestamp": now},
             {"event_id": "buy-cust-05", "customer_id": "cust-05", "event_type": "purchase",
              "product_id": "p1", "price": 12.5, "quantity": 1, "timestamp": now}]  # no click
    stored = httpx.post(f"{campaign.collector.url}/v1/events", json={"events": batch},
                        headers={"X-Tailor-Key": campaign.secret_key})
    assert stored.status_code == 200 and stored.json()["accepted"] == 2, stored.text
    status = campaign_status(campaign.settings, CAMPAIGN)
    clicked = {item[0] for item in campaign.events("email_click")}
    opened = {item[0] for item in campaign.events("email_open")} | clicked
    total = status["total"]
    assert total["mails_clicked"] == len(clicked) and total["mails_opened"] == len(opened)
    assert total["ctr"] == pytest.approx(len(clicked) / total["mails_sent"])
    assert total["conversions"] == 1  # cust-04 bought after clicking; cust-05 never clicked
    variant = campaign.send_of(customer).variant
    assert status["variants"][variant]["conversions"] == 1
    assert status["attribution_window_hours"] == 48
