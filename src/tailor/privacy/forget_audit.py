"""The privacy audit trail: one line per finished forget, and one per run that stopped, without
anything that names a person.

Writes (appends) `<home>/privacy/audit.jsonl`: per finished forget the time, the action
(`forget`), the tombstone (the keyed hash of the id, `tailor.events.tombstones`), who asked
(`--actor`, the admin key's id, or the login name), the counts per store, the number of files
left holding a value, the steps an earlier run had done, and the seconds it took; per run that
stopped on an error (`forget_stopped`) the time, tombstone, actor, the step that failed, the
steps done and the error's type (not its message, which might quote a value). Never the id,
an e-mail or a name. Reads it back for `read_audit`.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tailor.config import Settings
from tailor.events.forget_jobs import AUDIT_FILE



def audit_path(settings: Settings) -> Path:
    """Where the privacy audit trail lives."""
    return settings.home_path / AUDIT_FILE


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


def record_forget(settings: Settings, result: Any, *, actor: str = "") -> dict[str, Any]:
    """Append the entry of one finished forget (a `ForgetResult`); returns it."""
    entry = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "action": "forget",
        "tombstone": result.tombstone,
        "actor": actor or _login(),
        "removed": result.removed,
        "total": result.total,
        "files_left": len(result.left),
        "resumed_steps": result.resumed_steps,
        "seconds": result.seconds,
    }
    return _append(settings, entry)


def record_stopped(settings: Settings, tombstone: str, *, actor: str, step: str,
                   steps_done: list[str], error: BaseException) -> dict[str, Any]:
    """Append the entry of a forget run that stopped in `step` on `error`; returns it."""
    entry = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "action": "forget_stopped",
        "tombstone": tombstone,
        "actor": actor or _login(),
        "step": step,
        "steps_done": steps_done,
        "error": type(error).__name__,
    }
    return _append(settings, entry)


def _append(settings: Settings, entry: dict[str, Any]) -> dict[str, Any]:
    """One line at the end of the trail, synced to disk."""
    path = audit_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return entry


def read_audit(settings: Settings) -> list[dict[str, Any]]:
    """Every entry, oldest first (empty when nothing was ever forgotten)."""
    path = audit_path(settings)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
