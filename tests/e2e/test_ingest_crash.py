"""An interrupted import: SIGKILL `tailor ingest` mid-file, then import the file again.

Every chunk is stored whole or not at all, the reader process that validates ahead of the
writer does not outlive the import, and the second import stores every row exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tailor.config import load_settings
from tailor.events.store import open_event_store

pytestmark = pytest.mark.slow

TAILOR = str(Path(sys.executable).with_name("tailor"))
ROWS = 150_000
CHUNK_ROWS = 10_000


def write_events(path: Path) -> None:
    """ROWS valid events, ids in file order."""
    seconds = pd.Timestamp("2026-02-01", tz="UTC").value // 10**9 + pd.RangeIndex(ROWS) * 10
    pd.DataFrame({
        "event_id": [f"e{row:06d}" for row in range(ROWS)],
        "customer_id": [f"c{row % 997}" for row in range(ROWS)],
        "event_type": "page_view",
        "timestamp": pd.to_datetime(seconds, unit="s", utc=True),
        "session_id": [f"s{row // 40}" for row in range(ROWS)],
    }).to_parquet(path, index=False)


def running_with(argument: str) -> list[int]:
    """Live (not zombie) processes whose command line holds the argument."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if argument.encode() in command and state != "Z":
            found.append(int(entry.name))
    return found


def test_a_killed_import_keeps_whole_chunks_and_a_rerun_stores_each_row_once(
        tmp_path: Path) -> None:
    events, home = tmp_path / "events.parquet", tmp_path / "home"
    write_events(events)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TAILOR_")}
    env.update(TAILOR_HOME=str(home), TAILOR_INGEST_CHUNK_ROWS=str(CHUNK_ROWS))
    store = open_event_store(load_settings(home=home, env={}).event_store_url)
    importing = subprocess.Popen([TAILOR, "ingest", str(events)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while store.count_events() < CHUNK_ROWS and importing.poll() is None:
            assert time.monotonic() < deadline, "no chunk was committed within 120 s"
            time.sleep(0.01)
    finally:
        importing.send_signal(signal.SIGKILL)
        importing.wait()
    kept = store.count_events()
    assert 0 < kept < ROWS and kept % CHUNK_ROWS == 0  # whole chunks only, killed mid-file
    stored = store.events_after(0, ROWS)["event_id"].tolist()
    assert stored == [f"e{row:06d}" for row in range(kept)]  # in file order, nothing skipped

    deadline = time.monotonic() + 30
    while running_with(str(events)):  # the reader notices the broken pipe and stops
        assert time.monotonic() < deadline, "the reader process outlived the killed import"
        time.sleep(0.1)

    rerun = subprocess.run([TAILOR, "ingest", str(events), "--json"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads(rerun.stdout)
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (ROWS - kept, kept, {})
    assert store.count_events() == ROWS
    store.close()
