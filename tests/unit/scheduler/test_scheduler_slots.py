"""The job table and when each job is due, on a simulated clock: hourly, daily and weekly
slots, a gap caught up once, the schedule's time zone, and the table moved by the settings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tailor.config import SCHEDULE_JOBS, Settings, load_settings
from tailor.scheduler.jobs import SPECS, job_table
from tailor.scheduler.slots import is_due, latest_slot, next_slot

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={})


def jobs_by_name(settings: Settings) -> dict:
    return {job.name: job for job in job_table(settings)}


def test_the_table_has_every_configured_job_in_order(settings: Settings) -> None:
    assert tuple(SPECS) == SCHEDULE_JOBS
    table = {job.name: (job.cron, job.shell_command) for job in job_table(settings)}
    assert table == {
        "export": ("5 * * * *", "tailor export --json"),
        "mail_flush": ("35 * * * *", "tailor mail flush --json"),
        "validate": ("0 2 * * *", "tailor validate --json"),
        "features": ("15 2 * * *", "tailor features --json"),
        "monitor": ("45 2 * * *", "tailor monitor --json"),
        "report": ("15 3 * * *", "tailor report --mail --json"),
        "retention": ("30 3 * * 1", "tailor retention --json"),
        "campaign_plan": ("45 3 * * 1", "tailor experiment campaign plan --json"),
        "campaign_send": ("50 * * * *", "tailor experiment campaign send --json"),
        "data_retention": ("0 4 * * *", "tailor data-retention --apply --json"),
        "experiment_guardrails": ("20 * * * *", "tailor experiment guardrails --json"),
    }
    only = settings.replace(schedule_jobs="retention, export")
    assert [job.name for job in job_table(only)] == ["export", "retention"]


def test_times_that_pass_midnight_move_to_the_next_day(settings: Settings) -> None:
    late = jobs_by_name(settings.replace(schedule_daily_at="23:30", schedule_weekly_on="sun",
                                         schedule_hourly_minute=45))
    assert late["mail_flush"].cron == "15 * * * *"
    assert late["features"].cron == "45 23 * * *"
    assert late["report"].cron == "45 0 * * *"
    assert late["retention"].cron == "0 1 * * 1"  # Sunday 23:30 + 90 min = Monday 01:00


def test_hourly_slots_and_a_gap_caught_up_once(settings: Settings) -> None:
    export = jobs_by_name(settings)["export"]
    assert is_due(export, "UTC", at("2026-03-02T10:30:00"), None) == at("2026-03-02T10:05:00")
    assert is_due(export, "UTC", at("2026-03-02T10:30:00"), at("2026-03-02T10:05:00")) is None
    assert is_due(export, "UTC", at("2026-03-02T11:04:59"), at("2026-03-02T10:05:00")) is None
    assert is_due(export, "UTC", at("2026-03-02T11:05:00"),
                  at("2026-03-02T10:05:00")) == at("2026-03-02T11:05:00")
    # Down from 10:06 to 15:30: five slots missed, one run, for the latest.
    assert is_due(export, "UTC", at("2026-03-02T15:30:00"),
                  at("2026-03-02T10:05:00")) == at("2026-03-02T15:05:00")
    assert is_due(export, "UTC", at("2026-03-02T15:40:00"), at("2026-03-02T15:05:00")) is None


def test_daily_and_weekly_slots(settings: Settings) -> None:
    jobs = jobs_by_name(settings)
    monday_2am = at("2026-03-02T02:00:00")  # 2026-03-02 is a Monday
    assert is_due(jobs["validate"], "UTC", at("2026-03-02T01:59:00"), None) == monday_2am - \
        timedelta(days=1)
    assert is_due(jobs["validate"], "UTC", at("2026-03-02T09:00:00"), monday_2am) is None
    assert is_due(jobs["validate"], "UTC", at("2026-03-05T09:00:00"),
                  monday_2am) == at("2026-03-05T02:00:00")  # Thursday: once, not three times
    retention = jobs["retention"]
    assert latest_slot(retention, "UTC", at("2026-03-04T12:00:00")) == at("2026-03-02T03:30:00")
    assert next_slot(retention, "UTC", at("2026-03-04T12:00:00")) == at("2026-03-09T03:30:00")
    assert is_due(retention, "UTC", at("2026-03-08T23:59:00"),
                  at("2026-03-02T03:30:00")) is None
    assert is_due(retention, "UTC", at("2026-03-30T04:00:00"),
                  at("2026-03-02T03:30:00")) == at("2026-03-30T03:30:00")


def test_the_schedule_runs_in_its_time_zone(settings: Settings) -> None:
    validate = jobs_by_name(settings)["validate"]
    # 02:00 in Berlin: 01:00Z in winter, 00:00Z in summer.
    assert latest_slot(validate, "Europe/Berlin", at("2026-03-02T12:00:00")) == \
        at("2026-03-02T01:00:00")
    assert latest_slot(validate, "Europe/Berlin", at("2026-07-01T12:00:00")) == \
        at("2026-07-01T00:00:00")
    # 29 March 2026: Berlin skips 02:00-03:00; the job still runs that day, once.
    slots = set()
    moment = at("2026-03-28T12:00:00")
    while moment < at("2026-03-30T12:00:00"):
        slots.add(latest_slot(validate, "Europe/Berlin", moment))
        moment += timedelta(minutes=30)
    assert sorted(slot.date().isoformat() for slot in slots) == \
        ["2026-03-28", "2026-03-29", "2026-03-30"]
