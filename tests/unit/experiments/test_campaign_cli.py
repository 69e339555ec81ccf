"""`tailor experiment campaign plan|send|status` on the command line: JSON on stdout, exit 1
with what went and what waits when the SMTP server is down, 2 for bad input, 0 while
campaigns are off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign_homes import (PRODUCT_URL, SENDER, SHOP_URL, FakeSources, at_risk, store_pii,
                            write_definition)
from smtp_servers import SmtpServer, free_port
from tailor.cli import app
from tailor.config import load_settings


@pytest.fixture
def home(tailor_home: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Campaigns on through the environment, as an operator sets them; stand-in models."""
    for name, value in {"SENDER": SENDER, "TRACKING_URL": "https://t.shop.example",
                        "SHOP_URL": SHOP_URL, "PRODUCT_URL": PRODUCT_URL}.items():
        monkeypatch.setenv(f"TAILOR_EXPERIMENTS_CAMPAIGN_{name}", value)
    monkeypatch.setenv("TAILOR_MAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("TAILOR_MAIL_PORT", str(smtp.port))
    write_definition(tailor_home)
    store_pii(load_settings(home=tailor_home, env={}))
    sources = FakeSources()
    monkeypatch.setattr("tailor.experiments.campaigns.champion_sources", sources.sources)
    return tailor_home


def run(*arguments: str):
    return CliRunner().invoke(app, ["experiment", "campaign", *arguments])


def test_plan_send_and_status_as_json(home: Path, smtp: SmtpServer) -> None:
    planned = run("plan", "--campaign", "cli-test", "--json")
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    assert (plan["campaign"], plan["added"], plan["status"]) == ("cli-test", len(at_risk()),
                                                                 "planned")
    # The experiment was never started: the control's timing for all, said in the output.
    assert (plan["experiment_status"], plan["no_variant"], plan["variants"]) == (
        "not created", len(at_risk()), {})
    assert "discount-timing was never started" in plan["timing"]
    sent = run("send", "--json")
    assert sent.exit_code == 0, sent.output
    report = json.loads(sent.stdout)
    assert report["ok"] and report["sent"] == len(smtp.messages) == len(at_risk())
    status = run("status", "--json")
    assert status.exit_code == 0, status.output
    figures = json.loads(status.stdout)
    assert figures["campaign"] == "cli-test"
    assert figures["total"]["mails_sent"] == len(at_risk()) and figures["total"]["ctr"] == 0
    human = run("status")
    assert "campaign cli-test" in human.stderr and "CTR" in human.stderr


def test_a_started_experiment_gives_variants_and_its_status_counts_the_mails(
        home: Path, smtp: SmtpServer) -> None:
    started = CliRunner().invoke(app, ["experiment", "start", "discount-timing"])
    assert started.exit_code == 0, started.output
    assert "the next `tailor experiment campaign plan` assigns it" in " ".join(
        started.output.split())
    plan = json.loads(run("plan", "--json").stdout)
    assert plan["experiment_status"] == "running" and plan["no_variant"] == 0
    assert run("send", "--json").exit_code == 0
    first_mails = plan["variants"]  # one first mail per customer went (the second waits)
    shown = CliRunner().invoke(app, ["experiment", "status", "discount-timing", "--json"])
    assert shown.exit_code == 0, shown.output
    [experiment] = json.loads(shown.stdout)["experiments"]
    assert {variant["name"]: (variant["answers"], variant["customers"])
            for variant in experiment["variants"]} == {
        name: (first_mails.get(name, 0), first_mails.get(name, 0))
        for name in ("immediate", "after-2-days")}
    table = CliRunner().invoke(app, ["experiment", "status"])
    assert "answers: mails sent" in " ".join(table.output.split())


def test_smtp_down_exits_1_saying_what_went_and_what_waits(home: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    assert run("plan", "--json").exit_code == 0
    monkeypatch.setenv("TAILOR_MAIL_PORT", str(free_port()))  # nothing listens there
    down = run("send", "--json")
    assert down.exit_code == 1
    report = json.loads(down.stdout)
    assert (report["status"], report["sent"], report["pending"]) == ("stopped", 0,
                                                                     len(at_risk()))
    assert "cannot connect to 127.0.0.1" in down.stderr and "pending" in down.stderr
    assert "nobody gets a mail twice" in " ".join(down.stderr.split())
    prose = run("send")
    assert prose.exit_code == 1 and "0 sent" in prose.stderr


def test_off_until_a_sender_is_set(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAILOR_EXPERIMENTS_CAMPAIGN_SENDER")
    for command in ("plan", "send"):
        result = run(command, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["status"] == "off"


def test_bad_input_exits_2_with_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_id = run("plan", "--campaign", "Bad Id")
    assert bad_id.exit_code == 2 and "campaign: 'Bad Id'" in bad_id.stderr
    monkeypatch.setenv("TAILOR_EXPERIMENTS_CAMPAIGN_PRODUCT_URL", "https://shop.example/p")
    bad_setting = run("plan")
    assert bad_setting.exit_code == 2 and "experiments_campaign_product_url" in bad_setting.stderr


def test_without_a_churn_model_plan_exits_2_saying_what_to_do(tailor_home: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    for name, value in {"SENDER": SENDER, "TRACKING_URL": "https://t.shop.example",
                        "SHOP_URL": SHOP_URL, "PRODUCT_URL": PRODUCT_URL}.items():
        monkeypatch.setenv(f"TAILOR_EXPERIMENTS_CAMPAIGN_{name}", value)
    write_definition(tailor_home)
    result = run("plan")
    assert result.exit_code == 2 and "tailor train" in result.stderr


def test_the_schedules_hourly_send_job_mails_the_planned_campaign(
        home: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("plan", "--campaign", "scheduled").exit_code == 0
    monkeypatch.setenv("TAILOR_SCHEDULE_JOBS", "campaign_plan,campaign_send")
    monday = "2026-03-02T03:55:00Z"  # after the weekly plan's slot (03:45) and a send slot
    monkeypatch.setenv("TAILOR_EXPERIMENTS_CAMPAIGN_SENDER", "")  # off: both jobs do nothing
    off = CliRunner().invoke(app, ["schedule", "--once", "--now", monday, "--json"])
    assert off.exit_code == 0, off.output
    runs = {item["job"]: item["outcome"] for item in json.loads(off.stdout)["runs"]}
    assert runs == {"campaign_plan": "ok", "campaign_send": "ok"} and smtp.messages == []
    monkeypatch.setenv("TAILOR_EXPERIMENTS_CAMPAIGN_SENDER", SENDER)
    monkeypatch.setenv("TAILOR_SCHEDULE_JOBS", "campaign_send")
    on = CliRunner().invoke(app, ["schedule", "--once", "--now", "2026-03-02T04:55:00Z",
                                  "--json"])  # the job runs `tailor experiment campaign send`
    assert on.exit_code == 0, on.output
    assert [item["outcome"] for item in json.loads(on.stdout)["runs"]] == ["ok"]
    assert len(smtp.messages) == len(at_risk())
