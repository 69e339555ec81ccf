"""The gate that blocks training: raises on a failed gate, lets a forced run through with a
WARNING and a line in forced.log, and re-checks the store each time."""

from __future__ import annotations

import logging

import pytest

from tailor.config import Settings
from tailor.events.store import open_event_store
from tailor.quality import QualityGateFailed, require_passing_gate


def fill_faulty(settings: Settings, ingest_faulty_file) -> None:
    store = open_event_store(settings.event_store_url)
    ingest_faulty_file(store)
    store.close()


def test_a_failed_gate_blocks_training(settings: Settings, ingest_faulty_file) -> None:
    fill_faulty(settings, ingest_faulty_file)
    with pytest.raises(QualityGateFailed) as failure:
        require_passing_gate(settings)

    message = str(failure.value)
    for rule in ("missing_customer_id", "nonpositive_price", "future_timestamp", "malformed_row",
                 "unknown_product", "missing_product_id"):
        assert rule in message
    assert failure.value.report.report_paths["html"] in message
    assert not (settings.reports_path / "quality" / "forced.log").exists()


def test_forcing_past_a_failed_gate_is_logged_and_recorded(
        settings: Settings, ingest_faulty_file, caplog: pytest.LogCaptureFixture) -> None:
    fill_faulty(settings, ingest_faulty_file)
    with caplog.at_level(logging.WARNING, logger="tailor.quality"):
        report = require_passing_gate(settings, force=True)
        require_passing_gate(settings, force=True)

    assert not report.passed
    assert any("training forced past a failed data-quality gate" in record.getMessage()
               for record in caplog.records)
    lines = (settings.reports_path / "quality" / "forced.log").read_text().splitlines()
    assert len(lines) == 2
    assert "rules=missing_customer_id," in lines[0] and report.report_paths["html"] in lines[0]


def test_a_passing_gate_lets_training_start(settings: Settings, ingest_rows,
                                            make_daily_rows) -> None:
    store = open_event_store(settings.event_store_url)
    ingest_rows(store, make_daily_rows([100] * 9), "b1")
    store.close()
    report = require_passing_gate(settings)
    assert report.passed and report.stored == 900
    assert (settings.reports_path / "quality" / "latest.json").is_file()


def test_the_gate_sees_data_ingested_after_the_last_report(settings: Settings, ingest_rows,
                                                           make_daily_rows) -> None:
    store = open_event_store(settings.event_store_url)
    ingest_rows(store, make_daily_rows([100] * 9), "b1")
    assert require_passing_gate(settings).passed
    bad = make_daily_rows([50], first_day="2026-02-20", prefix="late").assign(customer_id=None)
    ingest_rows(store, bad, "b2")
    store.close()
    with pytest.raises(QualityGateFailed, match="missing_customer_id"):
        require_passing_gate(settings)
