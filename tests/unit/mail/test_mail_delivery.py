"""tailor.mail against a real SMTP server (aiosmtpd on 127.0.0.1): what arrives, TLS and login,
the outbox while the server is down or refusing, exactly-once delivery, the PII guard."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from smtp_servers import free_port, local_smtp_server, make_certificates

from tailor.config import Settings, load_settings
from tailor.mail import Attachment, flush_outbox, send

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
SENDER = "tailor@shop.example"
TEAM = ("ops@shop.example", "data@shop.example")


@pytest.fixture
def mail_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Plain SMTP to 127.0.0.1 (each test sets the port), from Tailor to the team."""
    monkeypatch.delenv("TAILOR_MAIL_PASSWORD", raising=False)
    return load_settings(home=tmp_path / "home", env={}).replace(
        mail_host="127.0.0.1", mail_sender=f"Tailor <{SENDER}>",
        mail_recipients=", ".join(TEAM))


def outbox_files(settings: Settings, folder: str = "") -> list[Path]:
    root = settings.home_path / "outbox" / folder
    return sorted(root.glob("*.eml")) if root.is_dir() else []


def test_a_report_arrives_with_its_subject_recipients_numbers_and_attachment(
        mail_settings: Settings, tmp_path: Path) -> None:
    report = tmp_path / "dashboard.html"
    report.write_text("<html><body><td>conversion</td><td>2.13%</td></body></html>")
    with local_smtp_server() as server:
        delivery = send(mail_settings.replace(mail_port=server.port), "[tailor] daily report",
                        "orders 1,234\nrevenue 56,789.00\nconversion 2.13%",
                        html="<p>orders <b>1,234</b></p>",
                        attachments=[report, Attachment("numbers.csv", b"orders\n1234\n",
                                                        "text/csv")])

    assert delivery.status == "sent" and delivery.attempts == 1 and not delivery.error
    [received] = server.messages
    assert received.mail_from == SENDER and received.rcpt_tos == list(TEAM)
    assert received.message["Subject"] == "[tailor] daily report"
    assert received.message["To"] == ", ".join(TEAM)
    assert "orders 1,234" in received.body() and "revenue 56,789.00" in received.body()
    html = received.message.get_body(preferencelist=("html",)).get_content()
    assert "<b>1,234</b>" in html
    attachments = received.attachments()
    assert attachments["dashboard.html"] == report.read_bytes()
    assert attachments["numbers.csv"] == b"orders\n1234\n"
    assert received.message["Message-ID"] == delivery.message_id
    assert outbox_files(mail_settings) == []
    assert [path.name for path in outbox_files(mail_settings, "sent")] == [Path(delivery.path).name]


def test_starttls_with_a_login_over_a_checked_certificate(
        mail_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    ca_file, server_context = make_certificates(tmp_path)
    monkeypatch.setenv("TAILOR_MAIL_PASSWORD", "s3cret-pw")
    with local_smtp_server(starttls=server_context, login=("tailor", "s3cret-pw")) as server:
        settings = mail_settings.replace(mail_port=server.port, mail_security="starttls",
                                         mail_user="tailor", mail_ca_file=str(ca_file))
        assert send(settings, "[tailor] tls", "over STARTTLS").status == "sent"
        # Without the private CA the server's certificate is not trusted: nothing is sent.
        with caplog.at_level(logging.WARNING, logger="tailor.mail"):
            untrusted = send(settings.replace(mail_ca_file=""), "[tailor] untrusted", "x")
        monkeypatch.setenv("TAILOR_MAIL_PASSWORD", "wrong")
        wrong_password = send(settings, "[tailor] wrong password", "x")

    assert [mail.message["Subject"] for mail in server.messages] == ["[tailor] tls"]
    assert set(server.logins) == {"tailor"}  # the right login once, the wrong one per mechanism
    assert untrusted.status == "queued" and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    assert wrong_password.status == "queued" and "SMTPAuthenticationError" in wrong_password.error
    stored = b"".join(path.read_bytes() for folder in ("", "sent")
                      for path in (mail_settings.home_path / "outbox" / folder).glob("*.*")
                      if path.is_file())
    assert b"s3cret-pw" not in stored and "s3cret-pw" not in caplog.text


def test_implicit_tls(mail_settings: Settings, tmp_path: Path) -> None:
    ca_file, server_context = make_certificates(tmp_path)
    with local_smtp_server(implicit_tls=server_context) as server:
        delivery = send(mail_settings.replace(mail_port=server.port, mail_security="tls",
                                              mail_ca_file=str(ca_file)), "[tailor] smtps", "x")
    assert delivery.status == "sent" and len(server.messages) == 1


def test_a_login_without_its_password_waits_and_says_why(mail_settings: Settings) -> None:
    settings = mail_settings.replace(mail_port=free_port(), mail_user="tailor")
    delivery = send(settings, "[tailor] x", "x")
    assert delivery.status == "queued"
    assert "TAILOR_MAIL_PASSWORD is empty" in delivery.error


def test_server_down_then_back_delivers_exactly_once(mail_settings: Settings) -> None:
    port = free_port()
    settings = mail_settings.replace(mail_port=port, mail_retry_backoff_seconds=300)
    delivery = send(settings, "[tailor] alert", "gate failed: 3 rows", now=NOW)
    assert delivery.status == "queued" and delivery.attempts == 1
    assert delivery.error.startswith(f"cannot connect to 127.0.0.1:{port}")
    [waiting] = outbox_files(settings)
    assert waiting.stat().st_mode & 0o777 == 0o600

    with local_smtp_server(port=port) as server:
        early = flush_outbox(settings, now=NOW + timedelta(seconds=299))  # not due yet
        assert early.sent == [] and early.waiting == 1 and server.messages == []
        later = flush_outbox(settings, now=NOW + timedelta(seconds=300))
        again = flush_outbox(settings, now=NOW + timedelta(hours=1))

    assert later.sent == ["[tailor] alert"] and later.waiting == 0 and later.ok
    assert again.sent == [] and again.waiting == 0
    [received] = server.messages
    assert "gate failed: 3 rows" in received.body()
    assert outbox_files(settings) == [] and len(outbox_files(settings, "sent")) == 1


def test_two_flushes_at_once_deliver_each_message_once(mail_settings: Settings) -> None:
    port = free_port()
    settings = mail_settings.replace(mail_port=port, mail_retry_backoff_seconds=0)
    for number in range(20):
        assert send(settings, f"[tailor] message {number}", "x", now=NOW).status == "queued"
    with local_smtp_server(port=port) as server:
        reports = []
        threads = [threading.Thread(target=lambda: reports.append(flush_outbox(settings)))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    subjects = sorted(mail.message["Subject"] for mail in server.messages)
    assert subjects == sorted(f"[tailor] message {number}" for number in range(20))
    assert sum(len(report.sent) for report in reports) == 20
    assert outbox_files(settings) == []


def test_a_refusing_server_keeps_the_message_counts_attempts_then_gives_up(
        mail_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with local_smtp_server(refuse="550 5.1.1 mailbox unavailable") as server:
        settings = mail_settings.replace(mail_port=server.port, mail_max_attempts=3,
                                         mail_retry_backoff_seconds=60)
        first = send(settings, "[tailor] alert", "x", now=NOW)
        second = flush_outbox(settings, now=NOW + timedelta(seconds=60))
        with caplog.at_level(logging.ERROR, logger="tailor.mail"):
            third = flush_outbox(settings, now=NOW + timedelta(seconds=60 + 120))

    assert first.status == "queued" and first.attempts == 1
    assert "SMTPRecipientsRefused" in first.error and "550" in first.error
    assert second.sent == [] and second.waiting == 1 and second.errors and not second.ok
    assert third.waiting == 0 and third.failed_total == 1
    [given_up] = third.failed
    assert given_up["attempts"] == 3 and given_up["subject"] == "[tailor] alert"
    assert Path(given_up["file"]).parent.name == "failed"
    assert any("given up after 3 attempts" in record.getMessage() for record in caplog.records)
    assert server.messages == []


def test_sent_mail_is_deleted_after_its_retention(mail_settings: Settings) -> None:
    with local_smtp_server() as server:
        settings = mail_settings.replace(mail_port=server.port, mail_keep_sent_days=1)
        send(settings, "[tailor] old", "x")
        assert flush_outbox(settings, now=datetime.now(timezone.utc)).purged == 0
        assert flush_outbox(settings, now=datetime.now(timezone.utc)
                            + timedelta(days=1, minutes=1)).purged == 1
        none_kept = send(settings.replace(mail_keep_sent_days=0), "[tailor] gone", "x")
    assert none_kept.status == "sent" and none_kept.path == ""
    assert outbox_files(settings, "sent") == []


def test_no_recipients_means_no_mail(mail_settings: Settings) -> None:
    delivery = send(mail_settings.replace(mail_recipients=""), "[tailor] x", "x")
    assert delivery.status == "not configured"
    assert not (mail_settings.home_path / "outbox").exists()


@pytest.mark.parametrize("where", ["text", "subject", "html", "attachment"])
def test_a_message_holding_a_customer_address_is_refused(
        mail_settings: Settings, where: str, caplog: pytest.LogCaptureFixture) -> None:
    customer = "jane.doe@example.com"
    parts = {"subject": "[tailor] x", "text": "figures only", "html": None, "attachments": ()}
    if where == "attachment":
        parts["attachments"] = [Attachment("rows.csv", f"c1,{customer}\n".encode(), "text/csv")]
    else:
        parts[where] = f"{parts[where] or ''} {customer}"
    with local_smtp_server() as server, caplog.at_level(logging.ERROR, logger="tailor.mail"):
        delivery = send(mail_settings.replace(mail_port=server.port), **parts)
        # The team's own addresses may appear (e.g. "reply to ops@shop.example").
        allowed = send(mail_settings.replace(mail_port=server.port), "[tailor] ok",
                       f"questions: {TEAM[0]}, from {SENDER}")
    assert delivery.status == "refused" and "no personal data" in delivery.error
    assert allowed.status == "sent" and len(server.messages) == 1
    assert customer not in caplog.text
    assert len(outbox_files(mail_settings, "sent")) == 1


def test_an_outbox_that_cannot_be_written_still_lets_the_mail_out(mail_settings: Settings) -> None:
    """A home whose outbox cannot be created (here a file stands in its place): the message
    goes straight to the server, and nothing raises when the server is down too."""
    mail_settings.home_path.mkdir(parents=True)
    (mail_settings.home_path / "outbox").write_text("not a folder")
    with local_smtp_server() as server:
        delivered = send(mail_settings.replace(mail_port=server.port), "[tailor] alert", "x")
    lost = send(mail_settings.replace(mail_port=free_port()), "[tailor] alert", "x")
    assert delivered.status == "sent" and "outbox not writable" in delivered.error
    assert len(server.messages) == 1
    assert lost.status == "failed" and "cannot connect" not in lost.error
    assert "ConnectionRefusedError" in lost.error
    assert flush_outbox(mail_settings).errors  # reported, not raised


def test_a_missing_attachment_fails_the_mail_not_the_job(mail_settings: Settings,
                                                         tmp_path: Path) -> None:
    delivery = send(mail_settings.replace(mail_port=free_port()), "[tailor] report", "x",
                    attachments=[tmp_path / "gone.html"])
    assert delivery.status == "failed" and "gone.html" in delivery.error
