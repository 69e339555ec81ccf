"""Alerts when the data-quality gate fails: a log line, a webhook POST, an e-mail.

Reads: a failed `QualityReport`, `alerts_webhook_url` and the `[mail]` settings. Writes: one
WARNING log line always; a JSON POST to `alerts_webhook_url` when set (Slack-compatible: a
`text` field, plus the structured summary under `report`); a mail to `mail.recipients`
through `tailor.mail` when set (it waits in `<home>/outbox/` while the SMTP server is down).
A channel that fails is logged and reported back, never raised: an alert must not crash the
job it reports on. Alerts carry rule names, counts and report paths only (never rows, so
never PII).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from tailor.config import Settings
from tailor.quality.rules import QualityReport

log = logging.getLogger(__name__)

ALERT_TIMEOUT_SECONDS = 5.0
SENT, NOT_CONFIGURED = "sent", "not configured"


def alert_text(report: QualityReport) -> str:
    """One line naming the failed rules, their figures and where the report is."""
    failed = ", ".join(
        f"{rule.name} ({rule.count if rule.count is not None else '-'} rows; "
        f"{_figure(rule.value)} > {_figure(rule.threshold)})"
        if rule.count is not None and rule.value is not None and rule.threshold is not None
        else rule.name
        for rule in report.failed_rules)
    where = report.report_paths.get("html", "report not written")
    return f"Tailor data-quality gate FAILED on {report.store}: {failed}. Report: {where}"


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def alert_payload(report: QualityReport) -> dict[str, Any]:
    """The webhook body: Slack's `text` plus a structured summary of the report."""
    return {
        "text": alert_text(report),
        "report": {
            "passed": report.passed,
            "checked_at": report.checked_at.isoformat(),
            "store": report.store,
            "failed_rules": [rule.name for rule in report.failed_rules],
            "rules": [{key: rule.to_dict()[key]
                       for key in ("name", "status", "blocking", "count", "value", "threshold")}
                      for rule in report.rules],
            "report_paths": dict(report.report_paths),
        },
    }


def post_webhook(url: str, payload: dict[str, Any],
                 timeout: float = ALERT_TIMEOUT_SECONDS) -> str:
    """POST the payload as JSON; returns "sent" or "failed: <why>" (logged, never raised)."""
    body = json.dumps(payload, default=str).encode("utf-8")
    try:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return SENT
    except (urllib.error.URLError, OSError, ValueError) as error:  # HTTPError is a URLError
        log.warning("quality alert webhook failed (%s): %s", _host_of(url), error)
        return f"failed: {error}"


def _host_of(url: str) -> str:
    """The URL without path or query (Slack webhook paths are secrets)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else "<malformed url>"


def send_email(settings: Settings, subject: str, text: str) -> str:
    """Mail the team through `tailor.mail`; returns the delivery's status ("sent", "queued",
    "not configured", "refused"), followed by ": <why>" when it has a reason."""
    from tailor.mail import send

    delivery = send(settings, subject, text)
    return f"{delivery.status}: {delivery.error}" if delivery.error else delivery.status


def send_alerts(report: QualityReport, settings: Settings) -> dict[str, str]:
    """Raise the alarm for a failed gate on every configured channel.

    Args:
        report: the failed report (its `report_paths` should already be set).
        settings: `alerts_webhook_url` and the `[mail]` settings.

    Returns:
        Outcome per channel: `log`, `webhook` -> "sent", "not configured" or "failed: <why>";
        `email` -> "sent", "not configured", "queued: <why>" (in the outbox, retried by
        `tailor mail flush`) or "refused: <why>".
    """
    text = alert_text(report)
    log.warning(text)
    outcomes = {"log": SENT, "webhook": NOT_CONFIGURED, "email": NOT_CONFIGURED}
    if settings.alerts_webhook_url:
        outcomes["webhook"] = post_webhook(settings.alerts_webhook_url, alert_payload(report))
    if settings.mail_recipients.strip():
        failed = ", ".join(rule.name for rule in report.failed_rules)
        body = text + "\n\n" + report.summary_text() + "\n"
        outcomes["email"] = send_email(settings, f"[tailor] data-quality gate failed: {failed}",
                                       body)
    return outcomes
