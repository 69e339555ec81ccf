"""Where a forget job keeps its state and its trail, and what they say about one tombstone.

Reads `<home>/privacy/forget-jobs/<tombstone>.json` (the steps a job has finished, written
after each; there while it runs and after it stopped, removed when it ends),
`<home>/privacy/audit.jsonl` (one entry per finished forget, one per run that stopped) and
the home's tombstones. Writes nothing. The forget job (`tailor.privacy.forget`, its audit
`tailor.privacy.forget_audit`) writes these files; the collector's
`GET /v1/forget-jobs/{tombstone}` reads them through `forget_job_status` (the event layer
imports no privacy module). Nothing here names a customer: the tombstone is a keyed hash.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tailor.events.tombstones import read_tombstones, tombstones_path

JOBS_DIR = "privacy/forget-jobs"
AUDIT_FILE = "privacy/audit.jsonl"
TOMBSTONE_PATTERN = re.compile(r"^[0-9a-f]{64}$")  # HMAC-SHA256, hex


def job_state_path(home: Path, tombstone: str) -> Path:
    """The state file of the forget job of one tombstone."""
    return Path(home) / JOBS_DIR / f"{tombstone}.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _audit_entries(home: Path, tombstone: str) -> list[dict[str, Any]]:
    path = Path(home) / AUDIT_FILE
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut by a crash: the others still count
            continue
        if isinstance(entry, dict) and entry.get("tombstone") == tombstone:
            entries.append(entry)
    return entries


def forget_job_status(home: Path, tombstone: str) -> dict[str, Any] | None:
    """What became of the forget of one tombstone; None when no forget wrote it.

    `status` is `running` (a run started and has not ended: the steps it finished in
    `steps_done`; also a job waiting for the home's lock, and one killed outright, until it
    is run again), `stopped` (its last run stopped on an error in `step`: run the forget
    again, it resumes) or `done` (the last run finished: the counts per store, files left,
    seconds; from the audit trail).
    """
    if not TOMBSTONE_PATTERN.match(tombstone) or \
            tombstone not in read_tombstones(tombstones_path(Path(home))):
        return None
    base: dict[str, Any] = {"tombstone": tombstone}
    state_path = job_state_path(home, tombstone)
    if state_path.exists():
        state = _read_json(state_path)
        steps = list(state.get("steps", {}))
        stopped = state.get("stopped")
        if isinstance(stopped, dict):
            return {**base, "status": "stopped", "step": stopped.get("step"),
                    "error": stopped.get("error"), "at": stopped.get("at"), "steps_done": steps}
        return {**base, "status": "running", "started_at": state.get("started_at"),
                "steps_done": steps}
    entries = _audit_entries(home, tombstone)
    last = entries[-1] if entries else None
    if last is not None and last.get("action") == "forget":
        return {**base, "status": "done", "at": last.get("at"), "removed": last.get("removed"),
                "total": last.get("total"), "files_left": last.get("files_left"),
                "seconds": last.get("seconds")}
    if last is not None and last.get("action") == "forget_stopped":
        return {**base, "status": "stopped", "step": last.get("step"),
                "error": last.get("error"), "at": last.get("at"),
                "steps_done": last.get("steps_done", [])}
    return {**base, "status": "running", "started_at": None, "steps_done": []}
