"""The daily report by mail, received by a real SMTP server (aiosmtpd): the subject, the
summary's numbers in the body, the page attached, and no customer in any of it; with the
server down the report is still written and the mail waits in the outbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_homes import CUSTOMERS, NOW, PREDICTIONS, REPORT_DAY
from smtp_servers import free_port, local_smtp_server
from typer.testing import CliRunner

from tailor.cli import app
from tailor.config import Settings
from tailor.reports.job import run_daily_report

TEAM = ("ops@shop.example", "data@shop.example")


@pytest.fixture
def mail_settings(report_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("TAILOR_MAIL_PASSWORD", raising=False)
    return report_settings.replace(mail_host="127.0.0.1", mail_sender="tailor@shop.example",
                                   mail_recipients=", ".join(TEAM))


def personal_data() -> list[str]:
    """Every customer id, e-mail address, name and session id of the test shop."""
    sessions = {row[2] for row in PREDICTIONS if row[2]}
    return [*CUSTOMERS["customer_id"], *CUSTOMERS["email"], *CUSTOMERS["name"],
            *(name.split()[0] for name in CUSTOMERS["name"]), *sessions]


def test_the_team_gets_the_summary_and_the_page(mail_settings: Settings) -> None:
    with local_smtp_server() as server:
        run = run_daily_report(mail_settings.replace(mail_port=server.port), REPORT_DAY,
                               mail=True, now=NOW.to_pydatetime())
    assert run.mail["status"] == "sent"
    [received] = server.messages
    assert received.rcpt_tos == list(TEAM)
    subject = received.message["Subject"]
    assert subject == "[tailor] daily report 2026-03-02: conversion 75.00%, revenue 65.00"
    body = received.body()
    for figure in ("sessions", "75.00%", "65.00", "21.67", "+50.0% on the day before",
                   "homepage challenger: 2 sessions, conversion 50.00%",
                   "homepage: escalated, precision_at_10 0.1700 vs baseline 0.2000",
                   "drift in profile 2/12", "checkout_offer: 1 answers, fallbacks 100.00%",
                   "server metrics unreachable"):
        assert figure in body, figure
    attachments = received.attachments()
    page = Path(run.paths["html"]).read_bytes()
    assert attachments == {"2026-03-02.html": page}
    everything = subject + body + page.decode()
    leaked = [value for value in personal_data() if value in everything]
    assert leaked == [], f"personal data in the report mail: {leaked}"


def test_with_the_server_down_the_report_is_written_and_the_mail_waits(
        mail_settings: Settings) -> None:
    settings = mail_settings.replace(mail_port=free_port())
    env = {f"TAILOR_{key.upper()}": str(value) for key, value in
           (("mail_host", settings.mail_host), ("mail_port", settings.mail_port),
            ("mail_sender", settings.mail_sender), ("mail_recipients", settings.mail_recipients))}
    result = CliRunner().invoke(app, ["report", "--mail", "--json", "--date", "2026-03-02",
                                      "--home", str(settings.home_path)], env=env)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["mail"]["status"] == "queued" and payload["mail"]["error"]
    assert Path(payload["paths"]["html"]).is_file()
    assert list((settings.home_path / "outbox").glob("*.eml"))
