"""Sending a planned campaign to a real SMTP server (aiosmtpd): each mail once, to the address
joined from the PII store at send time, with picks, tracked links and the pixel; the discount
now or two days later by variant; an SMTP server that goes away mid-campaign, or a crash
between the server's accept and the mark, never makes anybody get a mail twice; personal data
never reaches the sends table or the logs."""

from __future__ import annotations

import csv
import logging
import sqlite3
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from campaign_homes import CUSTOMERS, FakeSources, at_risk, personal_data, store_pii
from smtp_servers import SmtpServer, free_port, local_smtp_server
from tailor.config import Settings
from tailor.events.campaign_store import CampaignStore, open_campaign_store
from tailor.experiments.campaign_send import send_due
from tailor.experiments.campaigns import plan_campaign

NOW = datetime(2026, 3, 2, 4, 45, tzinfo=timezone.utc)
CAMPAIGN = "reengage-2026-w10"
EMAIL = {item.customer_id: item.email for item in CUSTOMERS}
NAME = {item.customer_id: item.name for item in CUSTOMERS}
CUSTOMER_OF = {item.email: item.customer_id for item in CUSTOMERS}


def sends(settings: Settings):
    store = open_campaign_store(settings.event_store_url)
    try:
        return store.sends(CAMPAIGN)
    finally:
        store.close()


def received_by_customer(smtp: SmtpServer) -> Counter:
    return Counter(CUSTOMER_OF[address] for mail in smtp.messages for address in mail.rcpt_tos)


def html_of(mail) -> str:
    return mail.message.get_body(preferencelist=("html",)).get_content()


def delayed(settings: Settings) -> set[str]:
    return {send.customer_id for send in sends(settings) if send.mail == 2}


def test_each_customer_gets_their_mail_once_with_picks_links_and_the_code(
        settings: Settings, sources: FakeSources, smtp: SmtpServer) -> None:
    plan_campaign(settings, now=NOW, sources=sources.sources())
    report = send_due(settings, now=NOW)
    expected = at_risk()
    assert report.ok and (report.sent, report.pending) == (len(expected), 0)
    assert report.waiting == len(delayed(settings))  # the discount mails wait for day 2
    assert received_by_customer(smtp) == Counter(expected)
    rows = {send.customer_id: send for send in sends(settings) if send.mail == 1}
    tracking = settings.experiments_campaign_tracking_url
    for mail in smtp.messages:
        customer = CUSTOMER_OF[mail.rcpt_tos[0]]
        row = rows[customer]
        assert mail.mail_from == "news@shop.example"
        assert mail.message["To"].addresses[0].display_name == NAME[customer]
        assert mail.message["Message-ID"].strip() == row.message_id and row.status == "sent"
        text, page = mail.body(), html_of(mail)
        assert text.startswith(f"Hi {NAME[customer]},")
        for number, pick in enumerate(row.picks, start=1):
            assert pick["name"] in text and pick["name"] in page
            assert f"{tracking}/t/c/{row.token}?u={number}" in text
        assert f"{tracking}/t/c/{row.token}?u=0" in text  # the shop
        assert f'src="{tracking}/t/o/{row.token}.gif"' in page
        assert "https://shop.example/p/" not in text  # every link goes through the collector
        assert (row.code in text) == (customer not in delayed(settings))
        assert ("% off" in str(mail.message["Subject"])) == (customer not in delayed(settings))


def test_the_delayed_discount_goes_two_days_after_the_first_mail(
        settings: Settings, sources: FakeSources, smtp: SmtpServer) -> None:
    plan_campaign(settings, now=NOW, sources=sources.sources())
    send_due(settings, now=NOW)
    later = delayed(settings)
    assert later, "the fixture's customers put somebody in the after-2-days variant"
    first_round = len(smtp.messages)
    assert send_due(settings, now=NOW + timedelta(days=1, hours=23)).sent == 0
    report = send_due(settings, now=NOW + timedelta(days=2, minutes=1))
    assert report.sent == len(later) and report.waiting == 0
    second = smtp.messages[first_round:]
    codes = {send.customer_id: send.code for send in sends(settings)}
    assert sorted(CUSTOMER_OF[mail.rcpt_tos[0]] for mail in second) == sorted(later)
    for mail in second:
        customer = CUSTOMER_OF[mail.rcpt_tos[0]]
        assert codes[customer] in mail.body() and "% off" in str(mail.message["Subject"])
    assert send_due(settings, now=NOW + timedelta(days=9)).sent == 0  # nothing twice


def test_a_server_that_goes_away_mid_campaign_resumes_without_doubles(
        settings: Settings, sources: FakeSources, smtp: SmtpServer) -> None:
    plan_campaign(settings, now=NOW, sources=sources.sources())
    smtp.accept_limit = 3  # the server takes three mails, then answers 421 to each new one
    stopped = send_due(settings, now=NOW)
    assert not stopped.ok and stopped.status == "stopped"
    assert stopped.sent == 3 and stopped.pending == len(at_risk()) - 3
    assert "421" in stopped.reason and "shutting down" in stopped.summary().lower()
    assert "pending" in stopped.summary() and "nobody gets a mail twice" in stopped.summary()
    smtp.accept_limit = None  # back
    resumed = send_due(settings, now=NOW + timedelta(minutes=5))
    assert resumed.ok and resumed.sent == len(at_risk()) - 3 and resumed.pending == 0
    assert received_by_customer(smtp) == Counter(at_risk())  # everyone exactly once
    attempts = [send.attempts for send in sends(settings) if send.mail == 1]
    assert sorted(attempts) == [1] * (len(at_risk()) - 1) + [2]  # the refused one, twice


def test_an_unreachable_server_changes_no_mail(settings: Settings, sources: FakeSources,
                                               smtp: SmtpServer) -> None:
    plan_campaign(settings, now=NOW, sources=sources.sources())
    down = settings.replace(mail_port=free_port())  # nothing listens there
    report = send_due(down, now=NOW)
    assert report.status == "stopped" and report.sent == 0
    assert report.pending == len(at_risk()) and "cannot connect to 127.0.0.1" in report.reason
    assert {(send.status, send.attempts) for send in sends(settings)} == {("pending", 0)}
    assert send_due(settings, now=NOW).sent == len(at_risk())


def test_a_crash_between_accept_and_mark_never_sends_that_mail_again(
        settings: Settings, sources: FakeSources, smtp: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plan_campaign(settings, now=NOW, sources=sources.sources())
    real_mark = CampaignStore.mark_sent
    calls = []

    def crash_on_the_second(store, send_id, now_micros):
        calls.append(send_id)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # the process dies right after the accept
        real_mark(store, send_id, now_micros)

    monkeypatch.setattr(CampaignStore, "mark_sent", crash_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        send_due(settings, now=NOW)
    monkeypatch.setattr(CampaignStore, "mark_sent", real_mark)
    assert len(smtp.messages) == 2
    rerun = send_due(settings, now=NOW + timedelta(minutes=1))
    assert rerun.uncertain == 1 and "uncertain" in rerun.summary()
    assert rerun.sent == len(at_risk()) - 2
    assert max(received_by_customer(smtp).values()) == 1  # the uncertain one was not resent
    # Once the operator has checked the server, the uncertain mail goes on request.
    requeued = send_due(settings, now=NOW + timedelta(minutes=30), retry_uncertain=True)
    assert (requeued.requeued, requeued.sent, requeued.uncertain) == (1, 1, 0)


def test_opted_out_since_the_plan_or_without_an_address_are_skipped(
        settings: Settings, sources: FakeSources, smtp: SmtpServer) -> None:
    plan_campaign(settings, now=NOW, sources=sources.sources())
    path = settings.home_path / "privacy" / "excluded_customers.csv"
    with path.open("a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(["cust-01", "opted_out", "2026-03-02T05:00:00Z"])
    from tailor.events.pii import open_pii_store

    pii = open_pii_store(settings)
    pii.delete("cust-02")
    pii.close()
    report = send_due(settings, now=NOW)
    assert report.skipped == {"opted_out": 1, "no_address": 1}
    assert set(received_by_customer(smtp)) == set(at_risk()) - {"cust-01", "cust-02"}
    states = {send.customer_id: send.status for send in sends(settings) if send.mail == 1}
    assert states["cust-01"] == states["cust-02"] == "skipped"
    later = send_due(settings, now=NOW + timedelta(days=3))  # their discount mails too
    assert "cust-01" not in {CUSTOMER_OF[m.rcpt_tos[0]] for m in smtp.messages}
    assert later.skipped.get("first_mail_not_sent", 0) == len(
        {"cust-01", "cust-02"} & delayed(settings))


def test_a_refused_recipient_fails_alone(tailor_home, sources: FakeSources) -> None:
    from campaign_homes import campaign_settings

    with local_smtp_server(refuse="550 5.1.1 mailbox unavailable") as refusing:
        settings = campaign_settings(tailor_home, refusing.port)
        store_pii(settings)
        plan_campaign(settings, now=NOW, sources=sources.sources())
        report = send_due(settings, now=NOW)
    assert report.ok and report.sent == 0 and report.failed == len(at_risk())
    assert report.errors == ["SMTPRecipientsRefused: recipient refused (550)"]
    assert {send.status for send in sends(settings) if send.mail == 1} == {"failed"}


def test_personal_data_never_reaches_the_table_the_logs_or_the_home(
        settings: Settings, sources: FakeSources, smtp: SmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plan_campaign(settings, now=NOW, sources=sources.sources())
    smtp.accept_limit = 2
    send_due(settings, now=NOW)  # stops: the failure's log lines too
    smtp.accept_limit = None
    send_due(settings, now=NOW + timedelta(days=3))
    assert len(smtp.messages) > 2  # the mails did carry the addresses and names
    database = sqlite3.connect(settings.event_store_url.removeprefix("sqlite:///"))
    columns = [row[1] for row in database.execute("PRAGMA table_info(campaign_sends)")]
    assert not {"email", "name", "address"} & set(columns)
    table = "\n".join(repr(row) for row in database.execute("SELECT * FROM campaign_sends"))
    database.close()
    logs = "\n".join(record.getMessage() for record in caplog.records  # Tailor's, not the
                      if record.name.startswith("tailor"))            # test server's own
    assert "421" in logs and "campaign mail via" in logs  # the lines were there to check
    files = "\n".join(path.read_bytes().decode("latin-1") for path in settings.home_path.rglob("*")
                      if path.is_file() and path.name != "pii.db")
    for value in personal_data():
        assert value not in table, value
        assert value not in logs, value
        assert value not in files, value  # events.db (WAL included), codes.csv, anything else
    assert not (settings.home_path / "outbox").exists()  # no .eml with an address on disk


def test_off_without_a_sender(settings: Settings) -> None:
    report = send_due(settings.replace(experiments_campaign_sender=""))
    assert report.status == "off" and report.ok


@pytest.mark.postgres
def test_plan_stop_and_resume_on_postgresql(settings: Settings, sources: FakeSources,
                                            smtp: SmtpServer, postgres_url: str) -> None:
    on_postgres = settings.replace(database_url=postgres_url)
    first = plan_campaign(on_postgres, now=NOW, sources=sources.sources())
    assert plan_campaign(on_postgres, now=NOW, sources=sources.sources()).added == 0
    smtp.accept_limit = 4
    assert send_due(on_postgres, now=NOW).sent == 4
    smtp.accept_limit = None
    assert send_due(on_postgres, now=NOW).sent == first.added - 4
    assert send_due(on_postgres, now=NOW + timedelta(days=2, hours=1)).sent == len(
        {send.customer_id for send in sends(on_postgres) if send.mail == 2})
    assert received_by_customer(smtp) == Counter(
        send.customer_id for send in sends(on_postgres))  # one message per planned mail
    from tailor.experiments.campaign_status import campaign_status

    status = campaign_status(on_postgres)
    assert status["total"]["mails_sent"] == len(smtp.messages)
    assert status["total"]["mails_clicked"] == 0
