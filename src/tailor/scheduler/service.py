"""`tailor schedule` running for good: a round every minute, a heartbeat, a clean stop.

Reads: the settings and the job table. Writes: what each round writes
(`tailor.scheduler.runner`) and `<home>/scheduler.heartbeat` every minute from a thread of its
own, so a long job does not make the scheduler look dead. APScheduler's `BlockingScheduler`
drives both: the round on a cron trigger at second 0 of every minute (coalesced, one at a
time, never dropped for being late: a round that takes an hour is followed by one round,
which catches up whatever came due meanwhile, once), the first round and heartbeat at start.
SIGTERM or SIGINT stops the running job (SIGTERM to its process group; recorded as
interrupted, so the next start runs it again) and ends the process.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timezone
from typing import Any, Sequence

from tailor.config import Settings
from tailor.scheduler.jobs import Job, job_table
from tailor.scheduler.runner import JobRunner, beat, run_due

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60


def run_forever(settings: Settings, jobs: Sequence[Job] | None = None) -> None:
    """Run rounds until SIGTERM or SIGINT."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # not a line per minute
    jobs = list(jobs) if jobs is not None else job_table(settings)
    runner = JobRunner()
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(1), "heartbeat": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=timezone.utc)
    start = datetime.now(timezone.utc)
    scheduler.add_job(_round, CronTrigger(second=0, timezone=timezone.utc),
                      args=(settings, jobs, runner), id="round", next_run_time=start)
    scheduler.add_job(beat, IntervalTrigger(seconds=HEARTBEAT_SECONDS), args=(settings,),
                      id="heartbeat", executor="heartbeat", next_run_time=start)

    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        if stopping.is_set():  # a second signal (docker stop after a timeout's): one shutdown
            return
        stopping.set()
        # Later stop signals are ignored at the OS level: Python resets its own handlers to
        # the default while it exits, and a second SIGTERM then would kill the clean exit.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log.info("scheduler: %s received; stopping the running job and exiting",
                 signal.Signals(signum).name)
        runner.stop()
        # shutdown takes the scheduler's locks: never from inside a signal handler
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": False}, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler: %d jobs (%s), zone %s; a round every minute", len(jobs),
             ", ".join(job.name for job in jobs), settings.schedule_timezone)
    scheduler.start()


def _round(settings: Settings, jobs: Sequence[Job], runner: JobRunner) -> None:
    beat(settings)
    try:
        run_due(settings, datetime.now(timezone.utc), jobs, runner)
    except Exception:  # a bug in a round must not end the schedule; the next round tries again
        log.exception("scheduler: the round failed")
