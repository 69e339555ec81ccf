"""The models in the daily report: each champion's accuracy against its baseline and the
drift flags of its newest monitoring round.

Reads the audit table `monitoring_decisions` (`tailor.monitoring.audit.history`: one row per
model and round, with the metric, baseline, current value, the served answers' own accuracy
and the Evidently verdicts as evidence); writes nothing. A model that never had a round is listed as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tailor.config import Settings
from tailor.models.constants import MODEL_NAMES

HISTORY_LIMIT = 5_000  # decisions read per report: months of daily rounds for four models


@dataclass(frozen=True)
class DriftFlag:
    """One Evidently comparison of a round: which of its columns drifted."""

    dataset: str  # profile (the shoppers), scored (the model's inputs and outputs), ...
    columns: int
    drifted: list[str]
    snapshot: str | None = None
    html: str | None = None

    @property
    def flagged(self) -> bool:
        return bool(self.drifted)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flagged": self.flagged}


@dataclass(frozen=True)
class ModelStatus:
    """A model's newest round by the report's cutoff (decision None: no round yet)."""

    model: str
    decision: str | None = None
    reason: str = "no monitoring round yet (`tailor monitor`)"
    decided_at: str | None = None
    champion_version: str | None = None
    metric: str | None = None
    baseline: float | None = None
    current: float | None = None
    drop: float | None = None  # relative drop below the baseline; negative: it rose
    z: float | None = None  # standard errors the current value lies below the baseline
    served: float | None = None  # the metric of the answers actually served (labels matured)
    served_answers: int | None = None  # how many served answers that is over
    source: str | None = None  # served version, backtest, no new data
    window_start: str | None = None
    window_end: str | None = None
    drift: list[DriftFlag] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drift": [flag.to_dict() for flag in self.drift]}


@dataclass(frozen=True)
class AccuracyPoint:
    """One round's measurement of a champion, for the accuracy trend."""

    model: str
    decided_at: str
    metric: str
    baseline: float
    current: float

    @property
    def change(self) -> float:
        """current / baseline - 1: the relative change against the baseline."""
        return self.current / self.baseline - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change}


def model_figures(settings: Settings, since: datetime, cutoff: datetime
                  ) -> tuple[list[ModelStatus], list[AccuracyPoint]]:
    """Each model's newest round decided by `cutoff`, and every measured round from `since`
    to `cutoff` (oldest first), from the audit table.

    Args:
        settings: uses `event_store_url` (the audit table lives beside the events).
        since, cutoff: tz-aware UTC times.
    """
    from tailor.monitoring.audit import history

    decisions = [decision for decision in history(settings, limit=HISTORY_LIMIT)
                 if _parse(decision.decided_at) <= cutoff]
    statuses = []
    for model in MODEL_NAMES:
        newest = next((decision for decision in decisions if decision.model == model), None)
        statuses.append(ModelStatus(model) if newest is None else _status(newest))
    trend = [AccuracyPoint(decision.model, decision.decided_at, decision.evidence["metric"],
                           float(decision.evidence["baseline"]),
                           float(decision.evidence["current"]))
             for decision in reversed(decisions)
             if _parse(decision.decided_at) >= since and _measured(decision.evidence)]
    return statuses, trend


def _status(decision: Any) -> ModelStatus:
    evidence = decision.evidence
    served = evidence.get("served") or {}
    metric = evidence.get("metric")
    return ModelStatus(
        model=decision.model, decision=decision.decision, reason=decision.reason,
        decided_at=decision.decided_at, champion_version=decision.champion_version,
        metric=metric, baseline=evidence.get("baseline"),
        current=evidence.get("current"), drop=evidence.get("drop"), z=evidence.get("z"),
        served=served.get(metric) if metric else None,
        served_answers=int(served["answers"]) if "answers" in served else None,
        source=evidence.get("source"), window_start=decision.window_start,
        window_end=decision.window_end,
        drift=[DriftFlag(item.get("dataset", "?"), int(item.get("columns") or 0),
                         list(item.get("drifted") or []), item.get("snapshot"), item.get("html"))
               for item in evidence.get("drift") or []])


def _measured(evidence: dict[str, Any]) -> bool:
    """Whether a round measured the champion against a usable baseline."""
    baseline, current = evidence.get("baseline"), evidence.get("current")
    return bool(evidence.get("metric")) and isinstance(baseline, (int, float)) \
        and isinstance(current, (int, float)) and baseline > 0


def _parse(moment: str) -> datetime:
    """An audit time (ISO text) as a tz-aware datetime (naive text is UTC)."""
    from datetime import timezone

    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
