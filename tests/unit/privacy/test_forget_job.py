"""`tailor forget` as a job on an embedded home (SQLite, local lake, DuckDB): what it removes,
that a run stopped midway resumes where it stopped, that it is idempotent, that the audit and
the tombstone never name the customer, and that import then skips the id."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from privacy_scan import scan_files
from shop_homes import build_shop_home
from tailor.config import load_settings
from tailor.privacy import forget_files
from tailor.privacy.forget import STEP_NAMES, forget_customer, job_path
from tailor.privacy.forget_audit import read_audit


@pytest.fixture
def shop_home(tmp_path: Path):
    """A small shop ingested (with e-mails and names), exported and in the warehouse; an
    opt-out row for the customer; returns (settings, shop folder, customer, e-mail, name)."""
    settings = load_settings(home=tmp_path / "home", env={})
    shop = build_shop_home(settings, tmp_path / "shop", customers=60, products=20, days=14,
                           seed=3, ends_days_ago=1)
    events = pd.read_parquet(shop / "events.parquet", columns=["customer_id"])
    customer = str(events["customer_id"].value_counts().index[0])
    people = pd.read_csv(shop / "customers.csv", dtype=str).set_index("customer_id")
    exclusions = settings.home_path / "privacy" / "excluded_customers.csv"
    exclusions.parent.mkdir(parents=True, exist_ok=True)
    exclusions.write_text(f"customer_id,reason,recorded_at\n{customer},opted_out,2026-01-01\n"
                          "c-other,opted_out,2026-01-01\n")
    return settings, shop, customer, people.loc[customer, "email"], people.loc[customer, "name"]


def test_forget_removes_the_customer_and_leaves_only_the_tombstone(shop_home) -> None:
    settings, _shop, customer, email, name = shop_home
    result = forget_customer(settings, customer)
    assert list(result.removed) == list(STEP_NAMES) and result.complete
    assert result.removed["event_store"]["events"] > 0
    assert result.removed["lake"]["events"] == result.removed["event_store"]["events"]
    assert result.removed["pii_store"] == {"records": 1}
    assert result.removed["exclusion_list"] == {"rows": 1}
    assert scan_files([settings.home_path], [customer, email, name]) == []
    assert "c-other" in (settings.home_path / "privacy" / "excluded_customers.csv").read_text()


def test_a_second_forget_finds_nothing_and_the_audit_names_nobody(shop_home) -> None:
    settings, _shop, customer, email, _name = shop_home
    first = forget_customer(settings, customer, actor="dpo")
    again = forget_customer(settings, customer)
    assert again.total == 0 and again.removed["tombstone"] == {"added": 0}
    audit = read_audit(settings)
    assert [entry["tombstone"] for entry in audit] == [first.tombstone] * 2
    assert audit[0]["actor"] == "dpo" and audit[0]["total"] == first.total
    text = (settings.home_path / "privacy" / "audit.jsonl").read_text()
    assert customer not in text and email not in text


def test_a_run_stopped_midway_resumes_after_its_last_finished_step(shop_home, monkeypatch) -> None:
    settings, _shop, customer, email, name = shop_home

    def broken(*_args, **_kwargs):
        raise ConnectionError("the lake's storage went away")

    monkeypatch.setattr(forget_files, "forget_in_lake", broken)
    with pytest.raises(ConnectionError):
        forget_customer(settings, customer, actor="dpo")
    monkeypatch.undo()
    stopped = read_audit(settings)  # the stop is audited, without the id or the error's text
    assert [(entry["action"], entry["step"], entry["steps_done"], entry["error"], entry["actor"])
            for entry in stopped] == [("forget_stopped", "lake",
                                       ["tombstone", "event_store", "campaign_mails"],
                                       "ConnectionError", "dpo")]
    assert customer not in json.dumps(stopped) and "storage" not in json.dumps(stopped)
    state = json.loads(next((settings.home_path / "privacy" / "forget-jobs").glob("*.json"))
                       .read_text())
    assert list(state["steps"]) == ["tombstone", "event_store", "campaign_mails"]
    assert customer not in json.dumps(state)
    events_before = state["steps"]["event_store"]["events"]
    assert events_before > 0

    result = forget_customer(settings, customer, resume=True)
    assert [entry["action"] for entry in read_audit(settings)] == ["forget_stopped", "forget"]
    assert result.resumed_steps == ["tombstone", "event_store", "campaign_mails"]
    assert result.removed["event_store"]["events"] == events_before  # carried over
    assert result.removed["lake"]["events"] == events_before  # done by the resumed run
    assert not job_path(settings, result.tombstone).exists()
    assert scan_files([settings.home_path], [customer, email, name]) == []


def test_import_and_training_data_skip_a_forgotten_customer(shop_home) -> None:
    from tailor.events.ingest.job import ingest_files
    from tailor.events.store import open_event_store
    from tailor.events.lake import export_lake
    from tailor.models.data import load_shop_data
    from tailor.warehouse import refresh_warehouse

    settings, shop, customer, _email, _name = shop_home
    forget_customer(settings, customer)
    report = ingest_files(settings, shop / "events.parquet", customers_path=shop / "customers.csv",
                          progress=False)
    assert report.forgotten > 0 and report.to_dict()["forgotten"] == report.forgotten
    store = open_event_store(settings.event_store_url)
    try:
        assert store.customer_sessions(customer) == []
        assert customer not in set(store.customers()["customer_id"])
    finally:
        store.close()
    export_lake(settings, progress=False)
    refresh_warehouse(settings)
    data = load_shop_data(settings)
    assert customer not in set(data.events["customer_id"])


def test_a_killed_forget_process_resumes_where_it_was_killed(shop_home) -> None:
    """SIGKILL while the job waits for the lake's export lock (held here, so the moment is
    certain), then `tailor forget --resume`: the steps done are not redone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tailor.events.lake import EXPORT_LOCK_FILE
    from tailor.events.lake_files import export_lock

    settings, _shop, customer, email, name = shop_home
    jobs = settings.home_path / "privacy" / "forget-jobs"
    command = [sys.executable, "-m", "tailor.cli", "forget", "-", "--json", "--home",
               str(settings.home_path)]
    with export_lock(settings.home_path / EXPORT_LOCK_FILE):  # an export "is running"
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=dict(os.environ))
        process.stdin.write(customer.encode())
        process.stdin.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = next(iter(jobs.glob("*.json")), None) if jobs.exists() else None
            if state and "campaign_mails" in json.loads(state.read_text())["steps"]:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert list(json.loads(state.read_text())["steps"]) == [
        "tombstone", "event_store", "campaign_mails"]
    resumed = subprocess.run(command[:4] + ["--resume"] + command[4:], input=customer,
                             capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    answer = json.loads(resumed.stdout)
    assert answer["resumed_steps"] == ["tombstone", "event_store", "campaign_mails"]
    assert answer["removed"]["lake"]["events"] == answer["removed"]["event_store"]["events"] > 0
    assert scan_files([settings.home_path], [customer, email, name]) == []


def test_the_embedded_online_store_loses_the_customer_rows(shop_home) -> None:
    """Feast's SQLite online store (no Redis): the customer's rows go, with their bytes."""
    import sqlite3

    from tailor.features.build import run_features
    from tailor.features.repo import online_store_path

    settings, _shop, customer, email, name = shop_home
    run_features(settings, show_progress=False)
    result = forget_customer(settings, customer)
    assert result.removed["online_store"]["sqlite_rows"] > 0
    assert result.complete, f"files still holding the customer: {result.left}"
    with sqlite3.connect(online_store_path(settings)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master "
                                               "WHERE type = 'table'")]
        assert sum(db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                   for table in tables) > 0  # the other customers' rows stay
    assert scan_files([settings.home_path], [customer, email, name]) == []
