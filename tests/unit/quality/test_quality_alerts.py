"""Alerts for a failed gate: a log line, a webhook POST to a real local HTTP server, a mail
through a real local SMTP server (aiosmtpd); a failing endpoint is logged and never crashes
the gate, and an undelivered mail waits in the outbox."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from smtp_servers import free_port, local_smtp_server

from tailor.config import Settings
from tailor.events.store import open_event_store
from tailor.quality import run_quality_gate

NOW = pd.Timestamp("2026-03-01T12:00:00Z")


@pytest.fixture
def failing_settings(settings: Settings, ingest_faulty_file) -> Settings:
    store = open_event_store(settings.event_store_url)
    ingest_faulty_file(store)
    store.close()
    return settings


def test_a_failed_gate_logs_the_failed_rules(failing_settings: Settings,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tailor.quality"):
        report = run_quality_gate(failing_settings, now=NOW)

    warnings = [record.getMessage() for record in caplog.records
                if record.levelno == logging.WARNING]
    assert any("gate FAILED" in line and "missing_customer_id" in line
               and "unknown_product" in line for line in warnings)
    assert report.alerts == {"log": "sent", "webhook": "not configured",
                             "email": "not configured"}


def test_webhook_receives_a_slack_compatible_summary(failing_settings: Settings, webhook) -> None:
    report = run_quality_gate(failing_settings.replace(alerts_webhook_url=webhook.url), now=NOW)

    assert report.alerts["webhook"] == "sent"
    [body] = webhook.bodies
    assert "missing_customer_id" in body["text"] and report.report_paths["html"] in body["text"]
    assert body["report"]["passed"] is False
    assert set(body["report"]["failed_rules"]) == {rule.name for rule in report.failed_rules}
    assert {rule["name"]: rule["count"] for rule in body["report"]["rules"]}["malformed_row"] == 5


def test_no_alert_when_the_gate_passes(settings: Settings, webhook, ingest_rows,
                                       make_daily_rows) -> None:
    store = open_event_store(settings.event_store_url)
    ingest_rows(store, make_daily_rows([100] * 9), "b1")
    store.close()
    report = run_quality_gate(settings.replace(alerts_webhook_url=webhook.url), now=NOW)
    assert report.passed and report.alerts == {} and webhook.bodies == []


def test_email_reaches_the_smtp_server(failing_settings: Settings) -> None:
    with local_smtp_server() as server:
        configured = failing_settings.replace(
            mail_recipients="ops@shop.example, data@shop.example", mail_host="127.0.0.1",
            mail_port=server.port, mail_sender="tailor@shop.example")
        report = run_quality_gate(configured, now=NOW)

    assert report.alerts["email"] == "sent"
    [received] = server.messages
    assert received.rcpt_tos == ["ops@shop.example", "data@shop.example"]
    assert received.message["Subject"].startswith(
        "[tailor] data-quality gate failed: missing_customer_id")
    assert "malformed_row" in received.body()


@pytest.mark.parametrize("webhook", [500], indirect=True)
def test_a_webhook_answering_500_is_logged(failing_settings: Settings, webhook,
                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tailor.quality"):
        report = run_quality_gate(failing_settings.replace(alerts_webhook_url=webhook.url),
                                  now=NOW)
    assert len(webhook.bodies) == 1
    assert report.alerts["webhook"].startswith("failed: HTTP Error 500")
    assert any("webhook failed" in record.getMessage() for record in caplog.records)
    assert "/hooks/quality" not in caplog.text  # the secret part of a Slack URL is not logged


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "not a url", "ftp//x"])
def test_an_unreachable_or_malformed_webhook_never_crashes(failing_settings: Settings,
                                                           url: str) -> None:
    report = run_quality_gate(
        failing_settings.replace(alerts_webhook_url=url.format(port=free_port())), now=NOW)
    assert not report.passed and report.alerts["webhook"].startswith("failed: ")
    assert report.report_paths and all(report.report_paths.values())


def test_an_unreachable_smtp_server_never_crashes(failing_settings: Settings,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The gate still fails and reports; the alert waits in the outbox for `tailor mail flush`."""
    configured = failing_settings.replace(mail_recipients="ops@shop.example",
                                          mail_host="127.0.0.1", mail_port=free_port())
    with caplog.at_level(logging.WARNING, logger="tailor.mail"):
        report = run_quality_gate(configured, now=NOW)
    assert not report.passed
    assert report.alerts["email"].startswith("queued: cannot connect to 127.0.0.1")
    assert len(list((configured.home_path / "outbox").glob("*.eml"))) == 1
    assert any("not delivered (attempt 1 of 8" in record.getMessage()
               for record in caplog.records)


def test_the_alert_mail_holds_no_customer_address_or_name(
        settings: Settings, ingest_faulty_file, ingest_rows) -> None:
    """Rows that carried a customer's e-mail and name are rejected; the alert about them
    names the rule and counts them, and the mail guard finds no foreign address to refuse."""
    import json

    store = open_event_store(settings.event_store_url)
    ingest_faulty_file(store)
    ingest_rows(store, pd.DataFrame([
        {"customer_id": "jane.doe@example.com", "event_type": "Jane Doe",
         "timestamp": "2026-02-20T10:00:00Z"},
        {"customer_id": "c9", "event_type": "page_view", "timestamp": "2026-02-20T10:00:00Z",
         "properties": json.dumps({"name": "Jane Doe", "email": "jane.doe@example.com"})},
    ]), "pii")
    store.close()
    with local_smtp_server() as server:
        report = run_quality_gate(settings.replace(
            mail_recipients="ops@shop.example", mail_host="127.0.0.1", mail_port=server.port),
            now=NOW)

    assert report.alerts["email"] == "sent"
    [received] = server.messages
    whole = received.message.as_string()
    assert "malformed_row" in whole
    assert "jane.doe" not in whole.lower() and "Jane Doe" not in whole
