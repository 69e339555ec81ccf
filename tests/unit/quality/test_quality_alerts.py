"""Alerts for a failed gate: a log line, a webhook POST to a real local HTTP server, an e-mail
through a real local SMTP sink; a failing endpoint is logged and never crashes the gate."""

from __future__ import annotations

import logging
import socket

import pandas as pd
import pytest

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


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def test_email_reaches_the_smtp_server(failing_settings: Settings, smtp_sink) -> None:
    configured = failing_settings.replace(
        alerts_email_to="ops@shop.example, data@shop.example", alerts_smtp_host="127.0.0.1",
        alerts_smtp_port=smtp_sink.port, alerts_email_from="tailor@shop.example")
    report = run_quality_gate(configured, now=NOW)

    assert report.alerts["email"] == "sent"
    [message] = smtp_sink.bodies
    assert message["to"] == ["<ops@shop.example>", "<data@shop.example>"]
    assert "Subject: [tailor] data-quality gate failed: missing_customer_id" in message["data"]
    assert "malformed_row" in message["data"]


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
    configured = failing_settings.replace(alerts_email_to="ops@shop.example",
                                          alerts_smtp_host="127.0.0.1",
                                          alerts_smtp_port=free_port())
    with caplog.at_level(logging.WARNING, logger="tailor.quality"):
        report = run_quality_gate(configured, now=NOW)
    assert report.alerts["email"].startswith("failed: ")
    assert any("e-mail via 127.0.0.1" in record.getMessage() for record in caplog.records)
