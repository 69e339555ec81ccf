"""Timestamps at the edge of the contract: implausible times (epoch 0, 1970,
negative epochs, year 1) are rejected with a reason of their own at import, in the collector
and by the quality rule; zone-less times follow `events.naive_timezone` (DST handled one
way, always) and the ingest report says how many there were and which zone was assumed."""

from __future__ import annotations

import json
import uuid
import warnings
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from tailor.cli import app as cli_app
from tailor.config import ConfigError, load_settings
from tailor.events.collector.app import create_collector_app
from tailor.events.keys import create_key, keys_file_path
from tailor.events.lake import export_lake
from tailor.events.records import validate_records
from tailor.events.schema import (
    IMPLAUSIBLE_TIMESTAMP, REJECT_REASONS, TimestampRules, validate_events,
)
from tailor.events.store import open_event_store
from tailor.quality import run_quality_gate

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

NOW = pd.Timestamp("2026-12-01T12:00:00Z")
IMPLAUSIBLE = ["1970-01-01T00:00:00Z", 0, -86_400, "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z"]


def events(stamps: list) -> pd.DataFrame:
    return pd.DataFrame({"event_id": [f"e{index}" for index in range(len(stamps))],
                         "customer_id": "c1", "event_type": "page_view",
                         "timestamp": pd.Series(stamps, dtype=object)})


def test_implausible_times_are_rejected_with_their_own_reason() -> None:
    good = ["2026-05-01T10:00:00Z", 1_780_000_000]
    result = validate_events(events(IMPLAUSIBLE + good), now=NOW)
    assert IMPLAUSIBLE_TIMESTAMP in REJECT_REASONS
    rejected = result.rejected.set_index("row_number")
    assert list(rejected.index) == [0, 1, 2, 3, 4]
    assert set(rejected["reason"]) == {IMPLAUSIBLE_TIMESTAMP}
    assert set(rejected["field"]) == {"timestamp"}
    assert rejected["detail"].str.contains("before events.min_timestamp 2000-01-01").all()
    assert "'0001-01-01T00:00:00Z'" in rejected.at[3, "detail"]  # not "cannot parse"
    assert len(result.valid) == 2  # good rows kept


def test_the_window_start_is_a_setting() -> None:
    rules = TimestampRules(min_timestamp="2026-01-01")
    result = validate_events(events(["2025-12-31T23:00:00Z", "2026-01-01T00:00:00Z"]), now=NOW,
                             timestamps=rules)
    assert result.rejected["reason"].tolist() == [IMPLAUSIBLE_TIMESTAMP]
    with pytest.raises(ConfigError, match="events_min_timestamp"):
        load_settings(env={"TAILOR_EVENTS_MIN_TIMESTAMP": "long ago"})
    with pytest.raises(ConfigError, match="events_naive_timezone"):
        load_settings(env={"TAILOR_EVENTS_NAIVE_TIMEZONE": "Europe/Atlantis"})


@pytest.mark.parametrize("zone, stamp, expected", [
    ("UTC", "2026-03-29T02:30:00", "2026-03-29T02:30:00Z"),
    ("Europe/Berlin", "2026-01-05T10:00:00", "2026-01-05T09:00:00Z"),
    ("Europe/Berlin", "2026-03-29T02:30:00", "2026-03-29T01:00:00Z"),  # gap: to 03:00 CEST
    ("Europe/Berlin", "2026-10-25T02:30:00", "2026-10-25T00:30:00Z"),  # twice: the first
    ("America/New_York", "2026-03-08 02:30", "2026-03-08T07:00:00Z"),  # gap: to 03:00 EDT
])
def test_zone_less_times_follow_the_naive_timezone(zone: str, stamp: str, expected: str) -> None:
    frame = events([stamp, "2026-01-05T10:00:00+01:00"])
    result = validate_events(frame, now=NOW, timestamps=TimestampRules(naive_timezone=zone))
    assert result.valid["timestamp"].tolist() == [pd.Timestamp(expected),
                                                  pd.Timestamp("2026-01-05T09:00:00Z")]
    assert (result.naive_timestamps, result.naive_timezone) == (1, zone)
    records = validate_records(frame.to_dict(orient="records"), now=NOW,
                               timestamps=TimestampRules(naive_timezone=zone))
    assert records.valid["timestamp"].tolist() == result.valid["timestamp"].tolist()
    assert records.naive_timestamps == 1


def test_the_collector_fast_path_rejects_implausible_times() -> None:
    records = [{"customer_id": "c1", "event_type": "page_view", "timestamp": stamp}
               for stamp in ["1970-01-01T00:00:00Z", 0, "2026-05-01T10:00:00Z"]]
    result = validate_records(records, now=NOW)
    assert result.rejected["reason"].tolist() == [IMPLAUSIBLE_TIMESTAMP] * 2
    assert len(result.valid) == 1


def test_ingest_counts_implausible_and_zone_less_times(tailor_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tailor_home.parent / "events.csv"
    stamps = IMPLAUSIBLE + ["2026-03-29T02:30:00", "2026-05-01 08:00:00", "2026-05-01T10:00:00Z"]
    events(stamps).to_csv(path, index=False)
    monkeypatch.setenv("TAILOR_EVENTS_NAIVE_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("TAILOR_INGEST_CHUNK_ROWS", "3")  # several chunks: the reader process
    result = CliRunner().invoke(cli_app, ["ingest", str(path), "--home", str(tailor_home),
                                          "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rejected"] == {"implausible_timestamp": 5}
    assert report["accepted"] == 3
    assert report["timestamps"] | {"forms": {}} == {
        "zone_less": 2, "assumed_zone": "Europe/Berlin", "zone_from": "events.naive_timezone",
        "format": "ISO 8601 (detected)", "forms": {}}
    assert report["timestamps"]["forms"] == {"epoch_seconds": 2, "iso8601": 5}
    store = open_event_store(load_settings(home=tailor_home, env={}).event_store_url)
    try:
        daily = store.daily_counts()
    finally:
        store.close()
    assert min(daily["date"]).isoformat() == "2026-03-29"  # no 1969-12-31 or 1970 day
    settings = load_settings(home=tailor_home, env={})
    export_lake(settings)
    partitions = sorted(path.name for path in Path(settings.lake_root, "events").glob("date=*"))
    assert partitions[0] == "date=2026-03-29"  # no date=1969-12-31 or date=1970-01-01
    printed = CliRunner().invoke(cli_app, ["ingest", str(path), "--home", str(tailor_home)])
    assert "zone-less timestamps" in printed.output
    assert "2 in Europe/Berlin" in printed.output


def test_the_collector_rejects_before_the_configured_window(tailor_home: Path) -> None:
    settings = load_settings(home=tailor_home, env={}).replace(
        events_min_timestamp="2020-01-01T00:00:00Z")
    key = create_key("secret", keys_file_path(settings), label="test server")
    now = pd.Timestamp.now(tz="UTC")
    batch = [{"event_id": uuid.uuid4().hex, "customer_id": "c1", "event_type": "page_view",
              "timestamp": stamp}
             for stamp in ["2015-06-01T00:00:00Z", 0, (now - pd.Timedelta(minutes=1)).isoformat()]]
    with TestClient(create_collector_app(settings)) as client:
        body = client.post("/v1/events", json={"events": batch},
                           headers={"X-Tailor-Key": key}).json()
    assert body["accepted"] == 1
    assert [item["reason"] for item in body["rejected"]] == [IMPLAUSIBLE_TIMESTAMP] * 2
    assert "events.min_timestamp 2020-01-01" in body["rejected"][0]["detail"]


def test_the_quality_rule_counts_implausible_times(tailor_home: Path) -> None:
    settings = load_settings(home=tailor_home, env={})
    store = open_event_store(settings.event_store_url)
    try:  # another writer stored an epoch-0 event past the contract check
        good = validate_events(events(["2026-05-30T10:00:00Z"] * 3), now=NOW).valid
        zero = good.iloc[:1].assign(event_id="zero", timestamp=pd.Timestamp(0, tz="UTC"))
        store.insert_events(pd.concat([good.assign(event_id=["a", "b", "c"]), zero],
                                      ignore_index=True), "other-writer")
    finally:
        store.close()
    report = run_quality_gate(settings, now=NOW, write=False, alert=False)
    rule = report.rule("implausible_timestamp")
    assert rule.blocking and rule.count == 1 and rule.status == "fail"
    assert "1 among stored events" in rule.details


def test_a_zone_less_time_is_read_in_the_naive_zone_before_its_skew_is_corrected() -> None:
    from datetime import datetime, timezone

    from tailor.events.collector.batches import Submission
    from tailor.events.collector.enrichment import enrich_rows

    row = {"event_id": "e1", "customer_id": "c1", "event_type": "page_view",
           "timestamp": "2026-07-01T12:00:00"}  # Berlin summer time: 10:00 UTC
    batch = Submission(events=[row], received_at=datetime.now(timezone.utc), skew_seconds=60.0)
    berlin = enrich_rows([row], [batch], [0], "Europe/Berlin")[0]
    utc = enrich_rows([row], [batch], [0])[0]
    assert pd.Timestamp(berlin["timestamp"]) == pd.Timestamp("2026-07-01T10:01:00Z")
    assert pd.Timestamp(utc["timestamp"]) == pd.Timestamp("2026-07-01T12:01:00Z")
