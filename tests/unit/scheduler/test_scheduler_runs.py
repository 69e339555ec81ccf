"""Rounds of the scheduler with stand-in jobs (fake_job.py): failures recorded while the round
goes on, one run after a gap, two schedulers in two processes, a job or a scheduler killed
mid-run (SIGKILL), timeouts, a stop (SIGTERM), and the locks on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from scheduler_process import fake_job

from tailor.config import Settings, load_settings
from tailor.scheduler.job_locks import job_lock
from tailor.scheduler.jobs import Job
from tailor.scheduler.run_state import read_state
from tailor.scheduler.runner import heartbeat_path, run_due

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 3, 2, 10, 30, tzinfo=timezone.utc)
SLOT = "2026-03-02T10:05:00+00:00"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={})


def job_folder(tmp_path: Path, name: str = "job", *flags: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for flag in flags:
        (folder / flag).touch()
    return folder


def starts(folder: Path) -> int:
    path = folder / "runs.log"
    return path.read_text().count("start") if path.exists() else 0


def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def scheduler(settings: Settings, folder: Path, *mode: str) -> subprocess.Popen:
    """scheduler_process.py in a process of its own (its own session: killable alone)."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("TAILOR_")}
    return subprocess.Popen([sys.executable, str(HERE / "scheduler_process.py"),
                             str(settings.home_path), str(folder), *mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, start_new_session=True)


def report_of(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    return json.loads(stdout)


def running_pid(settings: Settings) -> int | None:
    running = read_state(settings, "fake").running
    return int(running["pid"]) if running else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_failing_job_is_recorded_and_the_round_goes_on(settings: Settings,
                                                         tmp_path: Path) -> None:
    failing = Job("failing", ("failing",), "hourly", 5, program=fake_job(
        job_folder(tmp_path, "failing", "fail")).program)
    working_folder = job_folder(tmp_path, "working")
    working = Job("working", ("working",), "daily", 0, hour=2,
                  program=fake_job(working_folder).program)

    report = run_due(settings, NOW, [failing, working])

    assert [(run.job, run.outcome, run.exit_code) for run in report.runs] == [
        ("failing", "failed", 3), ("working", "ok", 0)]
    assert report.runs[0].error == "fake job: failed on purpose" and not report.ok
    state = read_state(settings, "failing")
    assert state.last_outcome == "failed" and state.last_exit_code == 3
    assert state.last_slot == SLOT and state.running is None
    assert read_state(settings, "working").last_slot == "2026-03-02T02:00:00+00:00"
    log = (settings.home_path / "schedule" / "logs" / "failing.log").read_text()
    assert "failed on purpose" in log
    assert run_due(settings, NOW, [failing, working]).runs == []  # both slots done
    assert [run.job for run in run_due(settings, NOW.replace(hour=11, minute=5),
                                       [failing, working]).runs] == ["failing"]


def test_missed_slots_are_caught_up_once(settings: Settings, tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    job = fake_job(folder)
    assert [run.slot for run in run_due(settings, NOW, [job]).runs] == [SLOT]
    later = run_due(settings, NOW.replace(hour=15), [job])  # five slots missed
    assert [run.slot for run in later.runs] == ["2026-03-02T15:05:00+00:00"]
    assert run_due(settings, NOW.replace(hour=15, minute=59), [job]).runs == []
    assert starts(folder) == 2


def test_two_schedulers_never_run_the_same_job_at_once(settings: Settings,
                                                       tmp_path: Path) -> None:
    folder = job_folder(tmp_path, "job", "hold")
    first = scheduler(settings, folder, "once", NOW.isoformat())
    wait_for(lambda: starts(folder) == 1)

    second = report_of(scheduler(settings, folder, "once", NOW.isoformat()))
    assert [(run["job"], run["outcome"]) for run in second["runs"]] == [
        ("fake", "skipped: running elsewhere")]
    (folder / "hold").unlink()
    assert [run["outcome"] for run in report_of(first)["runs"]] == ["ok"]
    third = report_of(scheduler(settings, folder, "once", NOW.isoformat()))
    assert third["runs"] == [] and starts(folder) == 1  # the slot was run, once


def test_a_killed_job_leaves_no_lock_and_runs_again(settings: Settings, tmp_path: Path) -> None:
    folder = job_folder(tmp_path, "job", "hold")
    process = scheduler(settings, folder, "once", NOW.isoformat())
    wait_for(lambda: starts(folder) == 1)
    os.kill(running_pid(settings), signal.SIGKILL)

    [run] = report_of(process)["runs"]
    assert run["outcome"] == "killed" and run["exit_code"] == -signal.SIGKILL
    state = read_state(settings, "fake")
    assert state.running is None and state.last_slot == ""
    assert state.unfinished == {"slot": SLOT, "tries": 1}
    with job_lock(settings, "fake") as held:
        assert held is not None  # free again
    (folder / "hold").unlink()
    [again] = run_due(settings, NOW, [fake_job(folder)]).runs
    assert again.outcome == "ok" and again.slot == SLOT
    assert read_state(settings, "fake").unfinished == {} and starts(folder) == 2


def test_a_killed_scheduler_leaves_its_job_the_lock_and_the_slot_runs_again(
        settings: Settings, tmp_path: Path) -> None:
    folder = job_folder(tmp_path, "job", "hold")
    process = scheduler(settings, folder, "once", NOW.isoformat())
    wait_for(lambda: starts(folder) == 1)
    job_pid = running_pid(settings)
    process.kill()  # SIGKILL the scheduler only: its job goes on, holding the lock
    process.wait(timeout=30)
    assert alive(job_pid)

    blocked = report_of(scheduler(settings, folder, "once", NOW.isoformat()))
    assert [run["outcome"] for run in blocked["runs"]] == ["skipped: running elsewhere"]
    (folder / "hold").unlink()
    wait_for(lambda: not alive(job_pid) or open(f"/proc/{job_pid}/stat").read().split()[2] == "Z")

    again = scheduler(settings, folder, "once", NOW.isoformat())
    report = report_of(again)
    assert [run["outcome"] for run in report["runs"]] == ["ok"]
    assert starts(folder) == 2 and read_state(settings, "fake").last_slot == SLOT


def test_a_job_over_its_timeout_is_stopped_and_recorded(settings: Settings,
                                                        tmp_path: Path) -> None:
    folder = job_folder(tmp_path, "job", "hold")
    short = settings.replace(schedule_job_timeout_minutes=0.01)  # 0.6 s
    [run] = run_due(short, NOW, [fake_job(folder)]).runs
    assert run.outcome == "timed out" and run.exit_code == -signal.SIGTERM
    assert run_due(short, NOW, [fake_job(folder)]).runs == []  # not retried: it would hang again


def test_a_slot_whose_runs_never_finish_is_given_up_after_three(settings: Settings) -> None:
    suicidal = Job("suicidal", ("suicidal",), "hourly", 5, program=(
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    outcomes = [[run.outcome for run in run_due(settings, NOW, [suicidal]).runs]
                for _ in range(5)]
    assert outcomes == [["killed"], ["killed"], ["killed"], ["gave up"], []]
    assert "3 runs of the 2026-03-02T10:05:00+00:00 slot did not finish" in read_state(
        settings, "suicidal").last_error


def test_a_stopped_scheduler_interrupts_its_job_which_runs_again_next_time(
        settings: Settings, tmp_path: Path) -> None:
    folder = job_folder(tmp_path, "job", "hold")
    process = scheduler(settings, folder, "forever")
    wait_for(lambda: running_pid(settings))
    job_pid = running_pid(settings)
    assert heartbeat_path(settings).exists()

    process.send_signal(signal.SIGTERM)  # as `docker stop` does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert not alive(job_pid)
    state = read_state(settings, "fake")
    assert state.last_outcome == "interrupted" and state.last_slot == ""
    assert state.unfinished["tries"] == 1
    (folder / "hold").unlink()
    [run] = run_due(settings, None, [fake_job(folder)]).runs
    assert run.outcome == "ok"


@pytest.mark.postgres
def test_schedulers_sharing_a_postgresql_store_exclude_each_other(
        postgres_url: str, tmp_path: Path) -> None:
    """Two homes (two machines) on one event store: the advisory lock keeps them apart."""
    one = load_settings(home=tmp_path / "one", env={}).replace(database_url=postgres_url)
    other = load_settings(home=tmp_path / "other", env={}).replace(database_url=postgres_url)
    with job_lock(one, "export") as held:
        assert held is not None
        with job_lock(other, "export") as elsewhere:
            assert elsewhere is None
        with job_lock(other, "validate") as different_job:
            assert different_job is not None
    with job_lock(other, "export") as released:
        assert released is not None


def test_an_unreachable_lock_database_skips_the_job_with_the_reason(settings: Settings,
                                                                   tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = settings.replace(database_url=f"postgresql://tailor@127.0.0.1:{port}/tailor")
    [run] = run_due(unreachable, NOW, [fake_job(job_folder(tmp_path))]).runs
    assert run.outcome.startswith("skipped: lock unavailable (")
