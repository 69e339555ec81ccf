"""`tailor schedule --status`: each job's last run and its next slot.

Reads: the job table, each job's record under `<home>/schedule/` and the heartbeat file.
Writes nothing and takes no lock (a status never delays a job).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from tailor.config import Settings
from tailor.scheduler.jobs import Job
from tailor.scheduler.run_state import read_state
from tailor.scheduler.runner import heartbeat_path
from tailor.scheduler.slots import is_due, next_slot


def schedule_status(settings: Settings, jobs: Sequence[Job], now: datetime) -> dict[str, Any]:
    """The table `--status` prints: one row per job, plus the heartbeat."""
    zone = settings.schedule_timezone
    rows = []
    for job in jobs:
        state = read_state(settings, job.name)
        due = is_due(job, zone, now, state.completed_slot())
        rows.append({
            "job": job.name, "command": job.shell_command, "cron": job.cron, "timezone": zone,
            "cadence": job.cadence, "description": job.description,
            "running": state.running if state.in_flight() else None,
            "due_now": due.isoformat() if due else None,
            "next_slot": next_slot(job, zone, now).isoformat(),
            **{key: value for key, value in state.to_dict().items()
               if key.startswith("last_") or key == "unfinished"},
        })
    heartbeat = heartbeat_path(settings)
    return {"now": now.isoformat(), "home": str(settings.home_path), "jobs": rows,
            "heartbeat": heartbeat.read_text().strip() if heartbeat.exists() else None}


def status_lines(status: dict[str, Any]) -> list[str]:
    """The status as text: one line per job (times in UTC, to the minute)."""
    lines = [f"{'job':<10} {'cron':<11} {'last run':<17} {'outcome':<11} {'took':>7}  next"]
    for row in status["jobs"]:
        took = (f"{row['last_duration_seconds']:.0f} s"
                if row["last_duration_seconds"] is not None else "-")
        upcoming = (f"running (pid {row['running']['pid']})" if row["running"]
                    else "due now" if row["due_now"] else _minute(row["next_slot"]))
        lines.append(f"{row['job']:<10} {row['cron']:<11} {_minute(row['last_started']):<17} "
                     f"{row['last_outcome'] or '-':<11} {took:>7}  {upcoming}")
        if row["last_error"]:
            lines.append(f"{'':<10} last error: {row['last_error']}")
    lines.append(f"heartbeat: {status['heartbeat'] or 'none yet'}")
    return lines


def _minute(text: str) -> str:
    """`2026-03-02 02:00Z` from an ISO time; "never" for none."""
    if not text:
        return "never"
    return datetime.fromisoformat(text).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%MZ")
