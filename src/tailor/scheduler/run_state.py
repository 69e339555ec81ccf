"""What each scheduled job did last: one small JSON file per job.

Reads and writes `<home>/schedule/<job>.json` (written whole and renamed into place, only
by the process holding the job's lock): the slot of the last completed run, when it started
and ended, its outcome, exit code, duration and last error line, and while a run is in
flight, its process. A run whose process vanished (the scheduler or the machine died) is
found by the next scheduler that takes the lock and recorded as interrupted.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tailor.config import Settings

# How often a slot is tried again after runs that did not finish (killed, interrupted)
# before it is given up until the next slot.
MAX_TRIES_PER_SLOT = 3


@dataclass
class JobState:
    """One job's record."""

    job: str
    last_slot: str = ""  # ISO slot of the last completed run ("" before the first)
    last_started: str = ""
    last_finished: str = ""
    last_outcome: str = ""  # ok, failed, timed out, killed, interrupted, gave up
    last_exit_code: int | None = None
    last_duration_seconds: float | None = None
    last_error: str = ""  # the last line the command wrote, when it did not succeed
    running: dict[str, Any] | None = None  # pid, host, scheduler_pid, started, slot
    unfinished: dict[str, Any] = field(default_factory=dict)  # {"slot", "tries"} of a slot retried

    def completed_slot(self) -> datetime | None:
        return datetime.fromisoformat(self.last_slot) if self.last_slot else None

    def in_flight(self) -> bool:
        """Whether the recorded run's process still exists (on this machine)."""
        if not self.running or self.running.get("host") != socket.gethostname():
            return bool(self.running)
        try:
            os.kill(int(self.running["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path(settings: Settings, job_name: str) -> Path:
    return settings.home_path / "schedule" / f"{job_name}.json"


def read_state(settings: Settings, job_name: str) -> JobState:
    """The job's record (an empty one before its first run, or if the file is unreadable)."""
    path = state_path(settings, job_name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = set(JobState.__dataclass_fields__)
        return JobState(**{key: value for key, value in data.items() if key in known})
    except (FileNotFoundError, ValueError, TypeError):
        return JobState(job=job_name)


def write_state(settings: Settings, state: JobState) -> None:
    """Replace the job's record (call only while holding the job's lock)."""
    path = state_path(settings, state.job)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(state.to_dict(), indent=1), encoding="utf-8")
    os.replace(temporary, path)
