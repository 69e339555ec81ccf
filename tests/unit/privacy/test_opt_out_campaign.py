"""An opt-out through `tailor opt-out` keeps a customer out of campaign mail: out of the plan
when made before it, skipped by the send when made after it. A real SMTP server (aiosmtpd)
receives what is sent.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from campaign_homes import CUSTOMERS, FakeSources, at_risk, settings, smtp  # noqa: F401
from smtp_servers import SmtpServer
from tailor.cli import app as cli_app
from tailor.config import Settings
from tailor.experiments.campaign_send import send_due
from tailor.experiments.campaigns import plan_campaign

NOW = datetime(2026, 3, 2, 4, 45, tzinfo=timezone.utc)
CUSTOMER_OF = {item.email: item.customer_id for item in CUSTOMERS}


def _cli(settings: Settings, *arguments: str) -> None:
    result = CliRunner().invoke(cli_app, [*arguments, "--home", str(settings.home_path)])
    assert result.exit_code == 0, result.output


def _mailed(smtp: SmtpServer) -> Counter:
    return Counter(CUSTOMER_OF[address] for mail in smtp.messages for address in mail.rcpt_tos)


def test_opted_out_before_the_plan_is_never_planned_nor_mailed(settings: Settings,
                                                               smtp: SmtpServer) -> None:
    first, second = at_risk()[:2]
    _cli(settings, "opt-out", first)
    report = plan_campaign(settings, now=NOW, sources=FakeSources().sources())
    assert report.skipped["opted_out"] == 1
    send_due(settings, now=NOW)
    assert first not in _mailed(smtp) and second in _mailed(smtp)


def test_opted_out_after_the_plan_is_skipped_by_the_send(settings: Settings,
                                                         smtp: SmtpServer) -> None:
    plan_campaign(settings, now=NOW, sources=FakeSources().sources())
    customer = at_risk()[0]
    _cli(settings, "opt-out", customer)
    report = send_due(settings, now=NOW)
    assert report.skipped == {"opted_out": 1}
    assert customer not in _mailed(smtp)
    assert set(_mailed(smtp)) == set(at_risk()) - {customer}
