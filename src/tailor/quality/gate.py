"""The data-quality gate: run the rules on the event store, report, alert, and block training.

Reads: the event store named by `settings.event_store_url` (aggregates only).
Writes: `<reports>/quality/<timestamp>.json|html` and `latest.*` (see
`tailor.quality.report`); alerts when the gate fails (see `tailor.quality.alerts`);
`<reports>/quality/forced.log` when training is forced past a failed gate.

`tailor validate` calls `run_quality_gate`; `tailor train` calls `require_passing_gate`,
which always runs the rules afresh: they are aggregate queries, cheap next to training,
and a report read from disk could predate the latest ingest.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pandas as pd

from tailor.config import Settings
from tailor.events.store import EventStore, open_event_store
from tailor.quality.alerts import send_alerts
from tailor.quality.report import plan_report_paths, write_report_files
from tailor.quality.rules import EventAggregates, QualityReport, as_utc, build_report, gather_facts

log = logging.getLogger(__name__)

FORCED_LOG = "forced.log"


class QualityGateFailed(RuntimeError):
    """A blocking data-quality rule failed, so training must not start; `report` says which."""

    def __init__(self, report: QualityReport) -> None:
        self.report = report
        failed = "; ".join(f"{rule.name} ({rule.details})" for rule in report.failed_rules)
        where = report.report_paths.get("html", "report not written")
        super().__init__(f"data-quality gate failed: {failed}. Report: {where}. "
                         "Fix the data, or force training past the gate deliberately.")


def _lake_aggregates_when_current(settings: Settings, store: EventStore,
                                  now: pd.Timestamp) -> EventAggregates | None:
    """With `features.engine = spark`, the stored events' aggregates from the lake on Spark,
    when the lake holds every stored event (its export watermark is at the store's newest
    seq); None otherwise: the event store's own aggregates, never a lake that lags."""
    if settings.features_engine != "spark":
        return None
    from tailor.events.lake_files import Lake, read_watermark
    from tailor.quality.engine_facts import lake_aggregates

    exported, stored = read_watermark(Lake(settings.lake_root)).seq, store.max_seq()
    if exported < stored:
        log.info("data-quality gate: the lake is behind the event store (seq %d < %d); "
                 "aggregates from the event store", exported, stored)
        return None
    return lake_aggregates(settings, now)


def run_quality_gate(settings: Settings, now: pd.Timestamp | None = None, write: bool = True,
                     alert: bool = True) -> QualityReport:
    """Run every data-quality rule against the event store.

    Args:
        settings: store URL, thresholds (`quality_*`), report folder, alert channels.
        now: the reference time for future timestamps, freshness and "today" (default: now).
        write: write the JSON and HTML reports (their paths go in `report.report_paths`).
        alert: when the gate fails, log, post the webhook and send the e-mail (as configured).

    Returns:
        The `QualityReport`; `report.passed` is False when a blocking rule failed.
    """
    now = as_utc(now if now is not None else pd.Timestamp.now(tz="UTC"))
    store = open_event_store(settings.event_store_url)
    try:
        facts = gather_facts(store, now, _lake_aggregates_when_current(settings, store, now))
    finally:
        store.close()
    report = build_report(facts, now, settings)
    if write:
        report.report_paths = plan_report_paths(settings)
    if alert and not report.passed:
        report.alerts = send_alerts(report, settings)
    if write:
        write_report_files(report, facts, settings)
    log.info("data-quality gate %s (%s)", "passed" if report.passed else "FAILED",
             ", ".join(f"{rule.name}={rule.status}" for rule in report.rules))
    return report


def require_passing_gate(settings: Settings, force: bool = False) -> QualityReport:
    """Run the gate before training; refuse to go on when it fails, unless forced.

    Args:
        settings: as for `run_quality_gate`.
        force: go on past a failed gate; the override is logged as a WARNING and appended
            to `<reports>/quality/forced.log` (time, failed rules, report).

    Returns:
        The report (passed, or failed and forced).

    Raises:
        QualityGateFailed: a blocking rule failed and `force` is False.
    """
    report = run_quality_gate(settings)
    if report.passed:
        return report
    if not force:
        raise QualityGateFailed(report)
    failed = ",".join(rule.name for rule in report.failed_rules)
    log.warning("training forced past a failed data-quality gate (failed rules: %s)", failed)
    record_forced_run(settings, report)
    return report


def record_forced_run(settings: Settings, report: QualityReport) -> None:
    """Append one tab-separated line (time, failed rules, report) to the forced-run log."""
    path = settings.reports_path / "quality" / FORCED_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    failed = ",".join(rule.name for rule in report.failed_rules)
    line = (f"{datetime.now(timezone.utc).isoformat()}\tforced past failed gate\t"
            f"rules={failed}\treport={report.report_paths.get('html', '-')}\n")
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
