"""Data retention on SQLite and PostgreSQL event stores: the dry run says per store what
would go and changes nothing; `--apply` deletes exactly the events before the hour-rounded
cutoff from the store and the lake (which then agree), rebuilds the warehouse, and a second
run finds nothing; the lake's export lock is respected; a short window is warned about.

A small shop of events spread over 400 days is imported, exported to the lake and loaded
into the warehouse, as the hourly jobs do; every count is read back from the stores.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailor.cli import app as cli_app
from tailor.config import Settings, load_settings
from tailor.errors import InputError
from tailor.events.ingest.job import ingest_files
from tailor.events.lake import EXPORT_LOCK_FILE, export_lake
from tailor.events.lake_files import export_lock
from tailor.events.store import open_event_store
from tailor.privacy.retention import retention_cutoff, run_retention
from tailor.warehouse import query_warehouse, refresh_warehouse

NOW = datetime.now(timezone.utc)
DAYS_AGO = (1, 10, 29, 31, 45, 100, 200, 399)  # one purchase and one view per day
KEEP_DAYS = 30


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tailor_home: Path, tmp_path: Path) -> Settings:
    base = load_settings(home=tailor_home, env={})
    if request.param == "postgres":
        base = base.replace(database_url=request.getfixturevalue("postgres_url"))
    events = []
    for days in DAYS_AGO:
        moment = NOW - timedelta(days=days, minutes=7)
        for kind in ("product_view", "purchase"):
            events.append({"event_id": f"e-{days}-{kind}", "customer_id": f"c-{days % 3}",
                           "event_type": kind, "product_id": "p-1", "price": 10.0,
                           "quantity": 1, "order_id": f"o-{days}" if kind == "purchase" else "",
                           "timestamp": moment.isoformat()})
    events.append({"event_id": "bad", "customer_id": "c-1", "event_type": "teleport",
                   "timestamp": NOW.isoformat()})  # a dead letter, received now
    path = tmp_path / "events.csv"
    pd.DataFrame(events).to_csv(path, index=False)
    ingest_files(base, path, progress=False)
    export_lake(base, progress=False)
    refresh_warehouse(base)
    return base


def _store_events(settings: Settings) -> set[str]:
    store = open_event_store(settings.event_store_url)
    try:
        return set(store.events_after(0, 1000)["event_id"])
    finally:
        store.close()


def _lake_events(settings: Settings) -> set[str]:
    files = sorted(Path(settings.lake_root, "events").rglob("*.parquet"))
    return set(pd.concat([pd.read_parquet(file) for file in files])["event_id"]) if files else set()


def _expected_kept() -> set[str]:
    cutoff = retention_cutoff(NOW, KEEP_DAYS)
    return {f"e-{days}-{kind}" for days in DAYS_AGO for kind in ("product_view", "purchase")
            if NOW - timedelta(days=days, minutes=7) >= cutoff}


def test_the_dry_run_says_what_would_go_per_store_and_changes_nothing(settings: Settings) -> None:
    before = (_store_events(settings), _lake_events(settings))
    report = run_retention(settings, days=KEEP_DAYS, now=NOW)
    old = 2 * sum(days > KEEP_DAYS for days in DAYS_AGO)
    assert report.status == "dry_run"
    assert report.event_store["events"] == old and report.event_store["dead_letters"] == 0
    assert report.lake["partitions"] == old // 2 and report.lake["files"] == old // 2
    assert report.lake["bytes"] > 0 and report.warehouse == "would be rebuilt"
    assert (_store_events(settings), _lake_events(settings)) == before


def test_apply_deletes_exactly_the_old_events_from_store_lake_and_warehouse(
        settings: Settings) -> None:
    report = run_retention(settings, apply=True, days=KEEP_DAYS, now=NOW)
    kept = _expected_kept()
    assert report.status == "applied" and report.warehouse == "rebuilt"
    assert report.event_store["events"] == 2 * len(DAYS_AGO) - len(kept)
    assert _store_events(settings) == kept == _lake_events(settings)
    orders = query_warehouse(settings, "SELECT order_id FROM orders")["order_id"]
    assert set(orders) == {f"o-{days}" for days in DAYS_AGO if days < KEEP_DAYS}
    left = Path(settings.lake_root, "events")
    assert all(any(day.iterdir()) for day in left.glob("date=*"))  # no empty day folders
    again = run_retention(settings, apply=True, days=KEEP_DAYS, now=NOW)
    assert (again.event_store["events"], again.lake["partitions"]) == (0, 0)
    # Events the next export finds are the kept ones only: nothing old comes back.
    export_lake(settings, progress=False)
    assert _lake_events(settings) == kept


def test_dead_letters_go_by_the_time_they_were_received(settings: Settings) -> None:
    later = NOW + timedelta(days=KEEP_DAYS + 1)
    assert run_retention(settings, days=KEEP_DAYS, now=later).event_store["dead_letters"] == 1
    report = run_retention(settings, apply=True, days=KEEP_DAYS, now=later)
    assert report.event_store["dead_letters"] == 1
    store = open_event_store(settings.event_store_url)
    try:
        assert store.rejected_counts() == {}
    finally:
        store.close()


def test_a_running_export_is_waited_for_and_nothing_is_deleted_meanwhile(
        settings: Settings) -> None:
    before = _store_events(settings)
    with export_lock(settings.home_path / EXPORT_LOCK_FILE):
        with pytest.raises(InputError, match="lake export held its lock"):
            run_retention(settings, apply=True, days=KEEP_DAYS, now=NOW, lock_wait_seconds=0.3)
    assert _store_events(settings) == before == _lake_events(settings)


def test_off_by_default_and_the_setting_is_what_the_job_keeps(settings: Settings) -> None:
    assert run_retention(settings, apply=True, now=NOW).status == "off"
    assert len(_store_events(settings)) == 2 * len(DAYS_AGO)
    configured = settings.replace(privacy_event_retention_days=KEEP_DAYS)
    report = run_retention(configured, apply=True, now=NOW)
    assert report.retention_days == KEEP_DAYS and _store_events(settings) == _expected_kept()


def test_a_window_shorter_than_training_uses_is_warned_about(settings: Settings) -> None:
    assert run_retention(settings, days=KEEP_DAYS, now=NOW).warnings[0].startswith(
        "keeping 30 days, fewer than the 180")
    assert run_retention(settings, days=400, now=NOW).warnings == []


def test_the_command_is_a_dry_run_unless_told_to_apply(settings: Settings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_DATABASE_URL", settings.database_url)
    runner, home = CliRunner(), ["--home", str(settings.home_path)]
    dry = runner.invoke(cli_app, ["data-retention", "--days", str(KEEP_DAYS), *home, "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["status"] == "dry_run"
    assert len(_store_events(settings)) == 2 * len(DAYS_AGO)
    applied = runner.invoke(cli_app, ["data-retention", "--days", str(KEEP_DAYS), "--apply",
                                      *home, "--json"])
    assert json.loads(applied.stdout)["status"] == "applied"
    assert _store_events(settings) == _expected_kept()
    bad = runner.invoke(cli_app, ["data-retention", "--days", "0", *home])
    assert bad.exit_code == 2
