"""The daily report's mail: a plain-text summary in the body, the page attached.

Reads a `DailyReport` and the paths it was written to; writes only through `tailor.mail`
(the message goes to `<home>/outbox/` first, and waits there while the SMTP server is down).
The summary holds figures, model names and paths: no customer, no id, no address.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailor.config import Settings
from tailor.pages import formats
from tailor.reports.daily import DailyReport


def subject(report: DailyReport) -> str:
    today = report.today
    return (f"[tailor] daily report {report.day.isoformat()}: conversion "
            f"{formats.percent(today.conversion)}, revenue {formats.money(today.revenue)}")


def summary_text(report: DailyReport, paths: dict[str, str]) -> str:
    """The mail body: the day's figures, variants, models, drift and serving, then where the
    page is."""
    today, before = report.today, report.previous
    lines = [f"Tailor daily report for {report.day.isoformat()} (UTC)", ""]
    for label, field, formatter in (("sessions", "sessions", formats.count),
                                    ("conversion", "conversion", formats.percent),
                                    ("orders", "orders", formats.count),
                                    ("revenue", "revenue", formats.money),
                                    ("AOV", "aov", formats.money)):
        value = getattr(today, field)
        earlier = getattr(before, field) if before is not None else None
        lines.append(f"  {label:<12} {formatter(value):>14}   "
                     f"({formats.change(value, earlier)} on the day before)")
    lines += ["", "By variant:"]
    if report.shop.variants is None:
        lines.append(f"  {report.shop.note}")
    for row in report.variants_today():
        lines.append(f"  {row.model} {row.variant or '(none)'}: {row.sessions:,} sessions, "
                     f"conversion {formats.percent(row.conversion)}, revenue "
                     f"{formats.money(row.revenue)}, AOV {formats.money(row.aov)}")
    lines += ["", "Models against their baselines:"]
    for status in report.models:
        drifted = [f"{flag.dataset} {len(flag.drifted)}/{flag.columns}"
                   for flag in status.drift if flag.flagged]
        figures = (f"{status.metric} {formats.metric(status.current)} vs baseline "
                   f"{formats.metric(status.baseline)}" if status.metric else "")
        if status.served is not None:
            figures += f" (as served {formats.metric(status.served)})"
        lines.append(f"  {status.model}: {status.decision or 'no round yet'}"
                     + (f", {figures}" if figures else "")
                     + (f"; drift in {', '.join(drifted)}" if drifted else ""))
    lines += ["", "Serving:"]
    for row in report.answers_today():
        lines.append(f"  {row.endpoint}: {row.answers:,} answers, fallbacks "
                     f"{formats.percent(row.fallback_rate)} (prediction log)")
    server = report.server
    for row in server.endpoints:
        if row.requests:
            lines.append(f"  {row.endpoint}: p50 {formats.milliseconds(row.p50)}, p95 "
                         f"{formats.milliseconds(row.p95)}, p99 {formats.milliseconds(row.p99)}"
                         f", errors {formats.percent(row.error_rate)} (server metrics)")
    lines.append(f"  server metrics {server.status}: {server.note}")
    lines += ["", f"The full report is attached ({Path(paths['html']).name}); on the server it "
              f"is {paths['html']}, and GET /dashboard (secret key) shows the newest one."]
    return "\n".join(lines) + "\n"


def mail_report(settings: Settings, report: DailyReport, paths: dict[str, str]) -> Any:
    """Mail the team the summary with the page attached; returns the `Delivery` (never
    raises for a mail problem)."""
    from tailor.mail import send

    return send(settings, subject(report), summary_text(report, paths),
                attachments=[Path(paths["html"])])
