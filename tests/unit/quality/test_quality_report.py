"""The quality report: JSON schema, the HTML page with its plots, file locations, no PII."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tailor.config import Settings
from tailor.events.store import open_event_store
from tailor.quality import run_quality_gate

NOW = pd.Timestamp("2026-03-01T12:00:00Z")
EMAIL = "jane.doe@example.com"


def failing_report(settings: Settings, ingest_faulty_file, ingest_rows):
    store = open_event_store(settings.event_store_url)
    ingest_faulty_file(store)
    # A shop sent PII where it does not belong; the rows are rejected and must stay out of reports.
    ingest_rows(store, pd.DataFrame([
        {"customer_id": EMAIL, "event_type": EMAIL, "timestamp": "2026-02-20T10:00:00Z"},
        {"customer_id": "c9", "event_type": "page_view", "timestamp": "2026-02-20T10:00:00Z",
         "properties": json.dumps([EMAIL])},
    ]), "pii")
    store.close()
    return run_quality_gate(settings, now=NOW, alert=False)


def test_report_files_are_written_with_latest_copies(settings: Settings, ingest_faulty_file,
                                                     ingest_rows) -> None:
    report = failing_report(settings, ingest_faulty_file, ingest_rows)

    paths = {key: Path(value) for key, value in report.report_paths.items()}
    folder = settings.reports_path / "quality"
    assert set(paths) == {"json", "html", "latest_json", "latest_html"}
    assert all(path.parent == folder and path.is_file() for path in paths.values())
    assert paths["latest_html"].read_text() == paths["html"].read_text()
    assert json.loads(paths["latest_json"].read_text()) == json.loads(paths["json"].read_text())
    second = run_quality_gate(settings, now=NOW, alert=False)
    assert second.report_paths["json"] != report.report_paths["json"]
    assert len(list(folder.glob("2*.json"))) == 2


def test_json_has_the_documented_shape(settings: Settings, ingest_faulty_file,
                                       ingest_rows) -> None:
    report = failing_report(settings, ingest_faulty_file, ingest_rows)
    document = json.loads(Path(report.report_paths["json"]).read_text())

    assert {"passed", "checked_at", "store", "received", "stored", "rules",
            "report_paths"} <= set(document)
    assert document["passed"] is False and document["stored"] == 1000
    assert document["checked_at"] == NOW.isoformat()
    assert document["report_paths"] == report.report_paths
    assert len(document["rules"]) == 10
    for rule in document["rules"]:
        assert {"name", "description", "blocking", "status", "count", "value", "threshold",
                "details"} <= set(rule)
        assert rule["status"] in {"pass", "warn", "fail"}
    malformed = next(rule for rule in document["rules"] if rule["name"] == "malformed_row")
    assert malformed["count"] == 5 + 2  # five injected, plus the two PII rows above
    assert document["rejections_by_field"]["malformed_row"]["event_type"] == 2


def test_html_embeds_plots_and_the_rule_table(settings: Settings, ingest_faulty_file,
                                              ingest_rows) -> None:
    report = failing_report(settings, ingest_faulty_file, ingest_rows)
    page = Path(report.report_paths["html"]).read_text()

    assert page.count("<img") == 2 and page.count("data:image/png;base64,iVBORw0KGgo") == 2
    assert "FAILED" in page
    for rule in report.rules:
        assert f"<td>{rule.name}</td>" in page


def test_no_pii_reaches_the_reports(settings: Settings, ingest_faulty_file,
                                    ingest_rows) -> None:
    report = failing_report(settings, ingest_faulty_file, ingest_rows)
    store = open_event_store(settings.event_store_url)
    assert EMAIL in " ".join(store.rejected_rows(limit=1000)["raw"])  # kept in the dead letter...
    store.close()
    for path in report.report_paths.values():
        assert "jane.doe" not in Path(path).read_text()  # ...never in a report
    assert "jane.doe" not in report.summary_text()


def test_summary_text_is_a_table_ending_with_the_report(settings: Settings, ingest_faulty_file,
                                                        ingest_rows) -> None:
    report = failing_report(settings, ingest_faulty_file, ingest_rows)
    lines = report.summary_text().splitlines()

    assert lines[0].startswith("data-quality gate FAILED (missing_customer_id")
    assert lines[-1] == f"report: {report.report_paths['html']}"
    row = next(line for line in lines if line.startswith("missing_customer_id"))
    assert row.split()[:3] == ["missing_customer_id", "fail", "3"]


def test_nothing_is_written_on_request(settings: Settings) -> None:
    report = run_quality_gate(settings, now=NOW, write=False, alert=False)
    assert report.report_paths == {}
    assert not (settings.reports_path / "quality").exists()
    assert report.summary_text().endswith("report: not written")
