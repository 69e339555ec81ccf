"""Where a round's decisions go: the audit table, a run in the MLflow experiment
`tailor-monitoring` with the evidence, tags on the champion version, and the alert channels.

Writes the event store's `monitoring_decisions` table (`tailor.monitoring.audit`), the MLflow
tracking store and registry, the webhook and the mail outbox. Never raises for a failed
MLflow record or alert (the audit row holds the decision).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import pandas as pd

from tailor.config import Settings
from tailor.monitoring import audit

if TYPE_CHECKING:
    from tailor.monitoring.rounds import ModelRound

log = logging.getLogger(__name__)

EXPERIMENT = "tailor-monitoring"


def _iso(moment: pd.Timestamp | None) -> str | None:
    return None if moment is None else moment.isoformat()


def round_key(model: str, end: pd.Timestamp, version: str | None) -> str:
    """A round is one model, one champion, one window: the same again does nothing."""
    return f"{model}|v{version}|{end.isoformat()}"


def record(settings: Settings, result: ModelRound, now: pd.Timestamp) -> None:
    """The audit row, the MLflow run in `tailor-monitoring` and the version's tags.

    A decision taken before any window was measured (no champion, not enough data, a failure
    such as a registry that is down) is recorded under a key of its own time, so it never
    stands in for the window's round; a failure is also sent as an alert.
    """
    key = (round_key(result.model, result.window_end, result.champion_version)
           if result.window_end is not None
           else f"{result.model}|{result.decision}|{now.isoformat()}")
    audit.record(settings, audit.Decision(
        key, now.isoformat(), result.model, _iso(result.window_start),
        _iso(result.window_end), result.champion_version, result.decision, result.reason,
        result.evidence()))
    if result.decision == "failed":
        send_alert(settings, result.model, result)
    if result.champion_version is None or result.window_end is None:
        return
    try:
        _log_to_mlflow(settings, result)
    except Exception as error:  # the audit row holds the decision already
        log.warning("monitoring: the MLflow record of %s failed: %s", result.model, error)


def _log_to_mlflow(settings: Settings, result: ModelRound) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from tailor.training.registration import experiment_id
    from tailor.training.specs import get_spec

    name = get_spec(result.model).registered_name
    experiment = experiment_id(settings, EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment,
                          run_name=f"monitor-{result.model}-{result.window_end:%Y-%m-%d}"):
        mlflow.set_tags({"model": result.model, "decision": result.decision,
                         "champion_version": result.champion_version,
                         "new_champion": result.new_champion or "",
                         "window_start": _iso(result.window_start),
                         "window_end": _iso(result.window_end)})
        mlflow.log_metrics({key: float(value) for key, value in (
            ("baseline", result.baseline), ("current", result.current), ("drop", result.drop),
            ("challenger", result.challenger)) if value is not None})
        mlflow.log_dict(result.to_dict(), "decision.json")
    client = MlflowClient()
    for key, value in (("monitoring_decision", result.decision),
                       ("monitoring_window_end", _iso(result.window_end) or ""),
                       ("monitoring_current", "" if result.current is None
                        else f"{result.current:.6f}")):
        client.set_model_version_tag(name, result.champion_version, key, value)


def send_alert(settings: Settings, model: str, result: ModelRound) -> None:
    """The alert of a drop, on the configured channels (never raises)."""
    from tailor.mail import send
    from tailor.quality.alerts import post_webhook

    log.warning("monitoring: %s", result.reason)
    subject = (f"[tailor] {model}: monitoring round failed" if result.decision == "failed"
               else f"[tailor] {model}: accuracy drop, {result.decision.replace('_', ' ')}")
    if settings.alerts_webhook_url:
        post_webhook(settings.alerts_webhook_url, {"text": f"{subject}: {result.reason}",
                                                   "monitoring": result.to_dict()})
    if settings.mail_recipients.strip():
        send(settings, subject, result.reason + "\n\n" + json.dumps(
            result.to_dict(), indent=2, default=str) + "\n")
