"""The demo shop's public key: one `events:write` key per home, shared by every worker.

Reads and writes `<home>/demo_shop_key.txt` (mode 0600) and the keys file
(`tailor.events.keys`). The key is a public one, the kind a shop pastes into its pages:
it may only send events, and only from the origins the server is bound to. It is kept in
plain text so every worker process (and every restart) hands the pages the same key; a
new one is made when the file is missing or its key was revoked (`tailor keys revoke`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tailor.config import Settings

KEY_FILE_NAME = "demo_shop_key.txt"
KEY_LABEL = "demo shop (tailor serve --demo-shop)"


def demo_shop_key(settings: Settings) -> str:
    """The home's demo shop key, created on first use (under a lock: workers start at once)."""
    from tailor.events.keys import create_key, hash_key, keys_file_path, read_key_entries

    path = settings.home_path / KEY_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(KEY_FILE_NAME + ".lock"), os.O_WRONLY | os.O_CREAT,
                         0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        keys_file = keys_file_path(settings)
        key = _read(path)
        active = {entry["sha256"] for entry in read_key_entries(keys_file)
                  if entry["kind"] == "public" and not entry.get("revoked_at")}
        if key is None or hash_key(key) not in active:
            key = create_key("public", keys_file, label=KEY_LABEL)
            _write(path, key)
        return key
    finally:
        os.close(descriptor)  # closing releases the lock


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _write(path: Path, key: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    os.replace(temporary, path)
