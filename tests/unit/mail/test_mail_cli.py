"""`tailor mail test` and `tailor mail flush`: one JSON object, exit 0 when the server took
the mail, 3 when it did not (the mail waits), 2 when nobody is configured to receive it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from smtp_servers import free_port, local_smtp_server
from typer.testing import CliRunner

from tailor.cli import app


@pytest.fixture
def team(tailor_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAILOR_MAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("TAILOR_MAIL_RECIPIENTS", "ops@shop.example")
    monkeypatch.setenv("TAILOR_MAIL_RETRY_BACKOFF_SECONDS", "0")
    return tailor_home


def test_mail_test_sends_a_message(team: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with local_smtp_server() as server:
        monkeypatch.setenv("TAILOR_MAIL_PORT", str(server.port))
        result = CliRunner().invoke(app, ["mail", "test", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "sent"
    [received] = server.messages
    assert received.message["Subject"] == "[tailor] test message"
    assert received.rcpt_tos == ["ops@shop.example"]


def test_server_down_exits_3_then_flush_delivers(team: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("TAILOR_MAIL_PORT", str(port))
    runner = CliRunner()
    down = runner.invoke(app, ["mail", "test", "--json"])
    assert down.exit_code == 3
    assert json.loads(down.stdout)["status"] == "queued"
    assert "service failed: mail: cannot connect to 127.0.0.1" in down.stderr
    still_down = runner.invoke(app, ["mail", "flush", "--json"])
    assert still_down.exit_code == 3 and json.loads(still_down.stdout)["waiting"] == 1

    with local_smtp_server(port=port) as server:
        flushed = runner.invoke(app, ["mail", "flush", "--json"])
        empty = runner.invoke(app, ["mail", "flush"])
    assert flushed.exit_code == 0, flushed.output
    assert json.loads(flushed.stdout)["sent"] == ["[tailor] test message"]
    assert empty.exit_code == 0 and "0 sent, 0 waiting" in empty.stderr
    assert len(server.messages) == 1


def test_no_recipients_exits_2(tailor_home: Path) -> None:
    result = CliRunner().invoke(app, ["mail", "test"])
    assert result.exit_code == 2 and "mail.recipients is empty" in result.output


def test_a_bad_mail_setting_exits_2_naming_it(team: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_MAIL_SECURITY", "ssl")
    result = CliRunner().invoke(app, ["mail", "flush"])
    assert result.exit_code == 2 and "mail_security" in result.output


def test_both_commands_take_home() -> None:
    for command in ("test", "flush"):
        result = CliRunner().invoke(app, ["mail", command, "--help"])
        assert result.exit_code == 0 and "--home" in result.output
