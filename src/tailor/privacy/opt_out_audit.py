"""The audit log of opt-outs and opt-ins: who changed which customer's choice, when and how,
without the customer's id or any personal data.

Appends JSON lines to `<home>/privacy/opt_out_audit.jsonl` and reads them back
(`audit_entries`). The customer is written as `customer_ref`, an HMAC-SHA256 of the id under
a key kept beside the log (`<home>/privacy/audit.key`, created once, mode 0600): whoever
holds the home can check whether an entry is about a given id (`customer_ref`), but the log
alone names nobody and survives `tailor forget` without linking back to a deleted customer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tailor.config import Settings

AUDIT_FILE = "opt_out_audit.jsonl"
AUDIT_KEY_FILE = "audit.key"


def audit_path(settings: Settings) -> Path:
    """Where the opt-out audit log lives."""
    return settings.home_path / "privacy" / AUDIT_FILE


def customer_ref(settings: Settings, customer_id: str) -> str:
    """The id as the audit log writes it: hex HMAC-SHA256 under the home's audit key."""
    key = _audit_key(settings.home_path / "privacy" / AUDIT_KEY_FILE)
    return hmac.new(key, customer_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def record_change(settings: Settings, action: str, customer_id: str, source: str, status: str,
                  changed: bool) -> None:
    """Append one entry: time, action (`opt_out`, `opt_in`), `customer_ref`, whether the id
    is a browser's anonymous one, the source (`cli`, `api`, `browser`), the state after and
    whether the list changed."""
    entry = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "action": action,
             "customer_ref": customer_ref(settings, customer_id),
             "anonymous": customer_id.startswith("anon-"), "source": source, "status": status,
             "changed": changed}
    path = audit_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def audit_entries(settings: Settings) -> list[dict[str, Any]]:
    """Every audit entry, oldest first (none before the first change)."""
    path = audit_path(settings)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _audit_key(path: Path) -> bytes:
    """The home's audit key, created (32 random bytes, hex, mode 0600) on first use."""
    try:
        return bytes.fromhex(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    try:
        os.link(temporary, path)  # atomic, and refuses to replace a key another process made
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return bytes.fromhex(path.read_text(encoding="utf-8").strip())
