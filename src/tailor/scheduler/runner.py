"""Run the jobs that are due: each under its lock, as a subprocess, its outcome recorded.

Reads: the job table, each job's record (`tailor.scheduler.run_state`) and the clock it is
given. Writes: each run's output to `<home>/schedule/logs/<job>.log` (the previous file kept
as `.log.1` past 1 MB), the job's record before and after the run, and
`<home>/scheduler.heartbeat`. One round runs the due jobs one after another in table order; a
job that fails is recorded and the round goes on. Runs that did not finish (the job killed by
a signal, the scheduler stopped or killed) leave their slot due, so the next round runs the
job again, at most `MAX_TRIES_PER_SLOT` times per slot.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from tailor.config import Settings
from tailor.scheduler.job_locks import HeldLock, LockUnavailable, job_lock
from tailor.scheduler.jobs import Job, job_table
from tailor.scheduler.run_state import MAX_TRIES_PER_SLOT, JobState, read_state, write_state
from tailor.scheduler.slots import is_due

log = logging.getLogger(__name__)

LOG_ROTATE_BYTES = 1_000_000
_BORDERS = " \t│╭╮╰╯─"
STOP_GRACE_SECONDS = 30.0
OK, FAILED, TIMED_OUT, KILLED, INTERRUPTED, GAVE_UP = (
    "ok", "failed", "timed out", "killed", "interrupted", "gave up")


@dataclass
class JobRun:
    """What one round did with one due job."""

    job: str
    slot: str
    outcome: str  # ok, failed, timed out, killed, interrupted, gave up, or "skipped: <why>"
    exit_code: int | None = None
    duration_seconds: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == OK or self.outcome.startswith("skipped")


@dataclass
class RoundReport:
    """One round: the time it was run for and each due job's run."""

    now: str
    runs: list[JobRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now, "ok": self.ok, "runs": [asdict(run) for run in self.runs]}


class JobRunner:
    """Runs job processes and can stop them (the scheduler's SIGTERM handler calls `stop`)."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._processes: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop the running job (SIGTERM to its process group) and start no other."""
        self._stopping.set()
        with self._lock:
            for process in self._processes:
                _signal_group(process, signal.SIGTERM)

    def execute(self, settings: Settings, job: Job, held: HeldLock,
                started: Callable[[int], None]) -> tuple[str, int | None, str]:
        """Run the job's command to its end; returns (outcome, exit code, last output line).

        `started(pid)` is called once the process exists (to record it)."""
        log_path = _open_log(settings, job)
        timeout = settings.schedule_job_timeout_minutes * 60
        with log_path.open("ab") as output:
            output.write(f"=== {datetime.now(timezone.utc).isoformat()} "
                         f"{job.shell_command}\n".encode())
            output.flush()
            offset = output.tell()
            try:
                # The job's process inherits the locked descriptor: the lock lasts as long as
                # the run, even if this scheduler dies first. Its own session, so a timeout or
                # a stop reaches every process it started.
                process = subprocess.Popen(job.argv(settings), stdout=output,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           pass_fds=(held.fd,), start_new_session=True)
            except OSError as error:  # the program is missing or not executable
                return FAILED, None, f"could not start `{job.shell_command}`: {error}"
            with self._lock:
                self._processes.add(process)
            try:
                started(process.pid)
                outcome, code = self._wait(process, timeout)
            finally:
                with self._lock:
                    self._processes.discard(process)
        error = "" if outcome == OK else _last_line(log_path, offset)
        return outcome, code, error

    def _wait(self, process: subprocess.Popen, timeout: float) -> tuple[str, int]:
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
            return TIMED_OUT, process.wait()
        if code == 0:
            return OK, code
        if self.stopping:
            return INTERRUPTED, code
        return (KILLED if code < 0 else FAILED), code


def run_due(settings: Settings, now: datetime | None = None, jobs: Iterable[Job] | None = None,
            runner: JobRunner | None = None) -> RoundReport:
    """Run every job that is due at `now`, one after another, in table order.

    Args:
        settings: the home, `[schedule]` and `database_url` (for the locks).
        now: the time to run for (tests pass a simulated clock); default the clock.
        jobs: the jobs to consider (default the table of `schedule.jobs`).
        runner: the `JobRunner` to run them with (the long-running scheduler's, to stop them).

    Returns:
        The `RoundReport`; a job that failed is in it, never raised.
    """
    now = now or datetime.now(timezone.utc)
    runner = runner or JobRunner()
    report = RoundReport(now.isoformat())
    for job in jobs if jobs is not None else job_table(settings):
        if runner.stopping:
            break
        last = read_state(settings, job.name).completed_slot()
        slot = is_due(job, settings.schedule_timezone, now, last)
        if slot is None:
            continue
        try:
            with job_lock(settings, job.name) as held:
                if held is None:
                    log.info("%s: running elsewhere (its lock is held); skipped", job.name)
                    report.runs.append(JobRun(job.name, slot.isoformat(),
                                              "skipped: running elsewhere"))
                    continue
                report.runs.append(_run_locked(settings, job, now, held, runner))
        except LockUnavailable as error:
            log.error("%s: skipped, its lock is unavailable: %s", job.name, error)
            report.runs.append(JobRun(job.name, slot.isoformat(),
                                      f"skipped: lock unavailable ({error})"))
    return report


def _run_locked(settings: Settings, job: Job, now: datetime, held: HeldLock,
                runner: JobRunner) -> JobRun:
    """Run `job` for its due slot; the caller holds its lock."""
    state = read_state(settings, job.name)
    if state.running:  # its last run's processes are gone, or we would not hold the lock
        _record_interrupted(state)
    slot = is_due(job, settings.schedule_timezone, now, state.completed_slot())
    if slot is None:  # another scheduler ran it between our check and our lock
        write_state(settings, state)
        return JobRun(job.name, "", "skipped: already run")
    slot_text = slot.isoformat()
    tries = state.unfinished.get("tries", 0) if state.unfinished.get("slot") == slot_text else 0
    if tries >= MAX_TRIES_PER_SLOT:
        message = f"{tries} runs of the {slot_text} slot did not finish; waiting for the next slot"
        state.last_slot, state.last_outcome, state.last_error = slot_text, GAVE_UP, message
        state.unfinished = {}
        write_state(settings, state)
        log.error("%s: %s", job.name, message)
        return JobRun(job.name, slot_text, GAVE_UP, error=message)

    def started(pid: int) -> None:
        state.running = {"pid": pid, "host": socket.gethostname(), "scheduler_pid": os.getpid(),
                         "started": now.isoformat(), "slot": slot_text}
        state.last_started = now.isoformat()
        write_state(settings, state)

    log.info("%s: starting `%s` (slot %s)", job.name, job.shell_command, slot_text)
    clock = time.monotonic()
    outcome, code, error = runner.execute(settings, job, held, started)
    duration = round(time.monotonic() - clock, 3)
    state.running = None
    state.last_finished = (now + timedelta(seconds=duration)).isoformat()
    state.last_outcome, state.last_exit_code, state.last_duration_seconds = outcome, code, duration
    state.last_error = error
    if outcome in (KILLED, INTERRUPTED):
        state.unfinished = {"slot": slot_text, "tries": tries + 1}
    else:
        state.last_slot, state.unfinished = slot_text, {}
    write_state(settings, state)
    level = logging.INFO if outcome == OK else logging.ERROR
    log.log(level, "%s: %s (exit %s) in %.1f s%s", job.name, outcome, code, duration,
            f": {error}" if error else "")
    return JobRun(job.name, slot_text, outcome, code, duration, error)


def _record_interrupted(state: JobState) -> None:
    """Record a run whose scheduler died mid-run; its slot stays due."""
    running = state.running or {}
    state.last_outcome, state.last_exit_code = INTERRUPTED, None
    state.last_started = running.get("started", state.last_started)
    state.last_finished, state.last_duration_seconds = "", None
    state.last_error = (f"the run started at {running.get('started')} (pid {running.get('pid')} "
                        f"on {running.get('host')}) ended without a result: its scheduler or "
                        "machine stopped")
    slot = running.get("slot", "")
    tries = state.unfinished.get("tries", 0) if state.unfinished.get("slot") == slot else 0
    state.unfinished = {"slot": slot, "tries": tries + 1}
    state.running = None
    log.warning("%s: %s", state.job, state.last_error)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _open_log(settings: Settings, job: Job) -> Path:
    path = settings.home_path / "schedule" / "logs" / f"{job.name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > LOG_ROTATE_BYTES:
        os.replace(path, path.with_name(path.name + ".1"))
    return path


def _last_line(path: Path, offset: int) -> str:
    """The last line of the run's output that says something (rich's box borders dropped),
    at most 300 characters."""
    with path.open("rb") as handle:
        handle.seek(max(offset, path.stat().st_size - 8192))
        text = handle.read().decode("utf-8", "replace")
    lines = [" ".join(line.strip(_BORDERS).split()) for line in text.splitlines()]
    lines = [line for line in lines if any(character.isalnum() for character in line)]
    return lines[-1][:300] if lines else ""


def heartbeat_path(settings: Settings) -> Path:
    return settings.home_path / "scheduler.heartbeat"


def beat(settings: Settings) -> None:
    """Touch the heartbeat file (the compose healthcheck wants it recent)."""
    path = heartbeat_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary file per thread: the heartbeat thread and a round may beat at one instant.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(f"{datetime.now(timezone.utc).isoformat()} pid {os.getpid()}\n")
    os.replace(temporary, path)
