"""When a job is due: its slots (the times its cron fields name) around a given moment.

Reads nothing but its arguments; the time arithmetic is APScheduler's `CronTrigger` in the
schedule's zone (daylight-saving changes included: a wall time that does not exist that day
runs once, an hour later). `now` is always passed in, so tests move a simulated clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from tailor.scheduler.jobs import Job


def trigger(job: Job, zone: str) -> Any:
    """The job's APScheduler `CronTrigger` in `zone`."""
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(minute=job.minute, hour="*" if job.hour is None else job.hour,
                       day_of_week="*" if job.weekday is None else job.weekday, timezone=zone)


def latest_slot(job: Job, zone: str, now: datetime) -> datetime:
    """The job's most recent slot at or before `now` (UTC)."""
    cron = trigger(job, zone)
    # Two periods back always hold a slot, daylight-saving shifts included.
    slot = cron.get_next_fire_time(None, now - 2 * job.period)
    latest = slot
    while slot is not None and slot <= now:
        latest = slot
        slot = cron.get_next_fire_time(slot, slot + timedelta(seconds=1))
    return latest.astimezone(timezone.utc)


def next_slot(job: Job, zone: str, now: datetime) -> datetime:
    """The job's first slot after `now` (UTC)."""
    slot = trigger(job, zone).get_next_fire_time(None, now + timedelta(seconds=1))
    return slot.astimezone(timezone.utc)


def is_due(job: Job, zone: str, now: datetime, last_slot: datetime | None) -> datetime | None:
    """The slot to run now, or None. However many slots passed since `last_slot` (the
    scheduler was down), the job is due once, for the latest (missed runs coalesce)."""
    slot = latest_slot(job, zone, now)
    if last_slot is not None and slot <= last_slot:
        return None
    return slot
