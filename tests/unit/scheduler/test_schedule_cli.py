"""`tailor schedule --once` and `--status` on the real job table (the jobs that need no model),
and the command's bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailor.cli import app

NOW = "2026-03-02T10:30:00Z"  # a Monday


@pytest.fixture
def two_jobs(tailor_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """retention fails on an empty home (no churn model yet); mail_flush succeeds."""
    monkeypatch.setenv("TAILOR_SCHEDULE_JOBS", "mail_flush,retention")
    return tailor_home


def test_once_runs_what_is_due_records_it_and_status_shows_it(two_jobs: Path) -> None:
    runner = CliRunner()
    once = runner.invoke(app, ["schedule", "--once", "--now", NOW, "--json"])
    assert once.exit_code == 1, once.output  # a job failed
    runs = {run["job"]: run for run in json.loads(once.stdout)["runs"]}
    assert runs["mail_flush"]["outcome"] == "ok"
    assert runs["mail_flush"]["slot"] == "2026-03-02T09:35:00+00:00"
    assert runs["retention"]["outcome"] == "failed" and runs["retention"]["exit_code"] == 2
    assert "tailor train" in runs["retention"]["error"]
    assert (two_jobs / "scheduler.heartbeat").is_file()

    status = runner.invoke(app, ["schedule", "--status", "--now", NOW, "--json"])
    assert status.exit_code == 0, status.output
    rows = {row["job"]: row for row in json.loads(status.stdout)["jobs"]}
    assert set(rows) == {"mail_flush", "retention"}
    assert rows["mail_flush"]["last_outcome"] == "ok" and rows["mail_flush"]["due_now"] is None
    assert rows["mail_flush"]["next_slot"] == "2026-03-02T10:35:00+00:00"
    assert rows["mail_flush"]["command"] == "tailor mail flush --json"
    assert rows["retention"]["last_outcome"] == "failed"
    assert rows["retention"]["next_slot"] == "2026-03-09T03:30:00+00:00"
    assert rows["retention"]["last_duration_seconds"] > 0

    again = runner.invoke(app, ["schedule", "--once", "--now", NOW, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["runs"] == []
    text = runner.invoke(app, ["schedule", "--status", "--now", NOW])
    assert "retention" in text.stderr and "last error:" in text.stderr


@pytest.mark.parametrize(("arguments", "message"), [
    (["--export", "systemd"], "--export must be cron or kubernetes"),
    (["--now", "2026-03-02T10:30:00Z"], "--now is for --once and --status only"),
    (["--once", "--now", "yesterday"], "Invalid isoformat"),
    (["--status", "some-folder"], "FOLDER is for --export only"),
])
def test_bad_input_exits_2(tailor_home: Path, arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["schedule", *arguments])
    assert result.exit_code == 2 and message in result.output


def test_an_unknown_job_name_is_a_setting_error(tailor_home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_SCHEDULE_JOBS", "export,backup")
    result = CliRunner().invoke(app, ["schedule", "--status"])
    assert result.exit_code == 2 and "schedule_jobs must be comma-separated names" in result.output
