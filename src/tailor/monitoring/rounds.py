"""One monitoring round: measure each champion on the newest window, then keep, retrain,
promote, roll back or escalate (`tailor monitor`, and the scheduler's daily job).

Reads: the warehouse (the newest window; excluded customers left out), the model registry
(the champion, its reference, earlier champions), the data-quality gate; measures through
`tailor.monitoring.measure` and records through `tailor.monitoring.records`. Writes: one row per
model in the audit table (`tailor.monitoring.audit`), a run per model in the MLflow
experiment `tailor-monitoring` with the evidence, `monitoring_*` tags on the champion version,
Evidently snapshots and HTML reports (`tailor.monitoring.drift`), and, when it retrains, a
new registered version through the normal training path. Alerts go to the alert channels.

The policy, per model (the brief's "if accuracy drops >5%: alert; retrain; if still poor,
roll back"):
  1. The window is the newest `W` days of data, `W` = the length of the champion's own
     holdout (so the measurement repeats the one its baseline came from), or
     `monitoring.window_days` when set.
  2. Accuracy on the window: the served version itself scores it when its training data
     ended before the window starts (unseen data, so a broken artifact shows); otherwise the
     champion's parameters are refitted on the data before the window and backtested on it
     (an early signal: the version's own training data covers the window).
  3. A relative drop of more than `monitoring.max_drop` below the baseline (the holdout's
     primary metric, kept with the version) raises an alert, when the drop is also beyond
     sampling noise: at least the one-sided normal quantile of `monitoring.significance`
     (1.64 at 5%) standard errors of the difference, each side's error from its own sample
     (per-unit values for the rankers, Hanley-McNeil for an AUC). A version whose reference
     has no standard error is judged on the drop alone. What the popularity baseline scored
     on the holdout and on the window is given beside it, for context. Then: the quality gate fails ->
     no retraining, the alert says why; else a challenger is trained with the window as its
     holdout (fit on the data before it) and compared with the champion on that window;
     better -> promoted; else an earlier champion that does better on the window gets the
     champion alias back (rollback); else the champion stays and the alert escalates.
  4. A round is keyed by model, champion version and window end: a second round on the same
     data finds the decision and does nothing (it retrains once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import pandas as pd

from tailor.config import Settings
from tailor.errors import InputError
from tailor.models.constants import MODEL_NAMES
from tailor.monitoring import audit, through_experiment
from tailor.monitoring.drift import DriftResult
from tailor.monitoring.measure import Measured, drift, measure, score_version, served
from tailor.monitoring.records import record, round_key, send_alert

log = logging.getLogger(__name__)

# Decisions after which the model is still below its threshold (`tailor monitor` exits 1).
STILL_BELOW = frozenset({"escalated", "retrain_blocked", "would_retrain"})


@dataclass
class ModelRound:
    """What one round found and did for one model."""

    model: str
    decision: str  # ok | promoted | rolled_back | escalated | retrain_blocked | would_retrain
    #                | experiment_started | experiment_running
    #                | not_enough_data | no_champion | no_reference | failed
    reason: str
    champion_version: str | None = None
    window_start: pd.Timestamp | None = None
    window_end: pd.Timestamp | None = None
    metric: str | None = None
    baseline: float | None = None
    current: float | None = None
    source: str | None = None  # "served version" or "backtest"
    popularity_baseline: float | None = None  # the popularity baseline on the holdout
    popularity_current: float | None = None  # ... and on the window
    baseline_se: float | None = None  # standard errors of baseline and current
    current_se: float | None = None
    served: dict[str, float] | None = None  # the served answers' own accuracy (labels matured)
    drift: list[DriftResult] = field(default_factory=list)
    challenger_version: str | None = None
    challenger: float | None = None
    new_champion: str | None = None
    experiment: str | None = None  # the champion-vs-challenger experiment deciding it
    repeated: bool = False  # the round had run on this window already

    @property
    def drop(self) -> float | None:
        """Relative drop of the current metric below the baseline (negative: it rose)."""
        if self.baseline is None or self.current is None or self.baseline <= 0:
            return None
        return (self.baseline - self.current) / self.baseline

    @property
    def z(self) -> float | None:
        """How many standard errors the current metric lies below the baseline (None without
        both standard errors)."""
        if self.drop is None or self.baseline_se is None or self.current_se is None:
            return None
        spread = (self.baseline_se ** 2 + self.current_se ** 2) ** 0.5
        return float("inf") if spread == 0 else (self.baseline - self.current) / spread

    @property
    def below_threshold(self) -> bool:
        return self.decision in STILL_BELOW

    def evidence(self) -> dict[str, Any]:
        return {"metric": self.metric, "baseline": self.baseline, "current": self.current,
                "drop": self.drop,
                "popularity_baseline": self.popularity_baseline,
                "popularity_current": self.popularity_current, "baseline_se": self.baseline_se,
                "current_se": self.current_se, "z": self.z, "served": self.served,
                "source": self.source,
                "challenger_version": self.challenger_version, "challenger": self.challenger,
                "new_champion": self.new_champion, "experiment": self.experiment,
                "drift": [result.to_dict() for result in self.drift]}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "decision": self.decision, "reason": self.reason,
                "champion_version": self.champion_version,
                "window_start": _iso(self.window_start), "window_end": _iso(self.window_end),
                "below_threshold": self.below_threshold, "repeated": self.repeated,
                **self.evidence()}


def _iso(moment: pd.Timestamp | None) -> str | None:
    return None if moment is None else moment.isoformat()


def run_round(settings: Settings, models: Iterable[str] | None = None, *, dry_run: bool = False,
              now: pd.Timestamp | None = None,
              progress: Callable[[str], None] | None = None) -> list[ModelRound]:
    """Run one round for `models` (default: all four); see the module for the policy.

    Args:
        settings: stores, registry and the `monitoring_*` settings.
        models: names among homepage, cross_sell, churn, checkout.
        dry_run: measure and report, but train, move aliases and record nothing.
        now: the time of the round (the gate's "now"; default: now).
        progress: called with a short line as each model starts.

    Returns:
        One `ModelRound` per model, in order. A model that cannot be measured gets a
        decision that says why ("not_enough_data", "no_champion", "no_reference", "failed");
        nothing raises for one model's trouble.
    """
    from tailor.models.data import NotEnoughData, load_shop_data
    from tailor.privacy.excluded_customers import excluded_customer_ids

    names = list(models or MODEL_NAMES)
    for name in names:
        if name not in MODEL_NAMES:
            raise InputError(f"model: must be one of {', '.join(MODEL_NAMES)}, got {name!r}")
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    try:
        data = load_shop_data(settings, excluded_customer_ids(settings))
    except NotEnoughData as error:
        return [ModelRound(name, "not_enough_data", str(error)) for name in names]
    from tailor.monitoring.drift import RoundReports

    rounds, shared_reports = [], RoundReports()
    for name in names:
        if progress:
            progress(name)
        try:
            result = _one_model(settings, name, data, dry_run, now, shared_reports)
        except Exception as error:  # one model's failure must not stop the others' rounds
            if _registry_down(error):
                result = ModelRound(name, "failed", f"model registry unreachable: {error}")
            else:
                log.exception("monitoring round of %s failed", name)
                result = ModelRound(name, "failed", f"{type(error).__name__}: {error}")
        if not dry_run and not result.repeated:
            record(settings, result, now)
        rounds.append(result)
    return rounds


def _registry_down(error: Exception) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return any(word in text for word in ("connection refused", "max retries", "unreachable",
                                          "could not connect", "operationalerror"))


def _one_model(settings: Settings, model: str, data: Any, dry_run: bool, now: pd.Timestamp,
               shared_reports: Any) -> ModelRound:
    from mlflow.tracking import MlflowClient

    from tailor.models.data import NotEnoughData
    from tailor.registry.tracking import CHAMPION, tracking_store_exists, use_tracking
    from tailor.training.reference import ReferenceMissing, load_reference
    from tailor.training.registration import alias_version
    from tailor.training.specs import get_spec

    spec = get_spec(model)
    if not tracking_store_exists(settings):
        return ModelRound(model, "no_champion", "no model registry yet: run `tailor train`")
    use_tracking(settings)
    client = MlflowClient()
    champion = alias_version(client, spec.registered_name, CHAMPION)
    if champion is None:
        return ModelRound(model, "no_champion",
                          f"{spec.registered_name} has no champion: nothing to monitor")
    version = str(champion.version)
    try:
        reference = load_reference(champion.run_id, f"{spec.registered_name} v{version}")
    except ReferenceMissing as error:
        return ModelRound(model, "no_reference", str(error), champion_version=version)
    days = settings.monitoring_window_days or reference.window_days
    end = data.end
    start = end - pd.Timedelta(days=days)
    result = ModelRound(model, "ok", "", champion_version=version, window_start=start,
                        window_end=end, metric=reference.primary_metric,
                        baseline=reference.baseline,
                        popularity_baseline=reference.popularity,
                        baseline_se=reference.baseline_se)
    earlier = audit.find(settings, round_key(model, end, version)) if not dry_run else None
    if earlier is not None:
        result.decision, result.repeated = earlier.decision, True
        result.reason = (f"already decided at {earlier.decided_at} for the window ending "
                         f"{end:%Y-%m-%d %H:%M}: {earlier.reason}")
        result.champion_version = earlier.champion_version
        for key in ("current", "source", "challenger_version", "challenger", "new_champion",
                    "popularity_current", "current_se", "served", "experiment"):
            setattr(result, key, earlier.evidence.get(key))
        return result
    if end <= reference.data_to:
        result.source = "no new data"
        result.reason = (f"no events after v{version}'s training data (it ends "
                         f"{reference.data_to:%Y-%m-%d %H:%M}): nothing new to measure")
        return result
    try:
        measured = measure(settings, client, spec, champion, reference, data, start)
    except NotEnoughData as error:
        result.decision, result.reason = "not_enough_data", f"window {start:%Y-%m-%d} to " \
            f"{end:%Y-%m-%d}: {error}"
        return result
    result.current, result.source = measured.primary, measured.source
    result.popularity_current, result.current_se = measured.popularity, measured.se
    result.served = served(settings, data, model, start, end, reference.k)
    result.drift = drift(settings, model, reference, data, start, measured, version,
                         shared_reports)
    if _follow_experiment(settings, result, dry_run):
        return result
    drop = result.drop
    needed = NormalDist().inv_cdf(1.0 - settings.monitoring_significance)
    if drop is not None and drop > settings.monitoring_max_drop and result.z is not None \
            and result.z < needed:
        result.reason = (f"{result.metric} {result.current:.4f} on the newest {days:.1f} days "
                         f"vs baseline {result.baseline:.4f}{_against(result)}: "
                         f"{_percent(drop)}, but only {result.z:.2f} standard errors (a drop "
                         f"needs {needed:.2f}): within sampling noise")
        return result
    if drop is None or drop <= settings.monitoring_max_drop:
        result.reason = (f"{result.metric} {result.current:.4f} on the newest "
                         f"{days:.1f} days vs baseline {result.baseline:.4f}{_against(result)}: "
                         f"{_percent(drop)}, within {settings.monitoring_max_drop:.0%}")
        return result
    alert = (f"{spec.registered_name} v{version}: {result.metric} {result.current:.4f} on "
             f"{start:%Y-%m-%d}..{end:%Y-%m-%d} vs baseline {result.baseline:.4f}"
             f"{_against(result)}: {_percent(drop)} (threshold "
             f"{settings.monitoring_max_drop:.0%}; {_z_text(result)})")
    if dry_run:
        result.decision, result.reason = "would_retrain", alert + "; dry run: nothing done"
        return result
    _act(settings, client, spec, result, data, start, measured, now, alert)
    send_alert(settings, model, result)
    return result


def _against(result: ModelRound) -> str:
    """What the popularity baseline scored on the same customers, for context: a window whose
    shoppers are harder to predict lowers both."""
    served = ""
    if result.served and result.metric in result.served:
        served = (f"; as served: {result.served[result.metric]:.4f} over "
                  f"{int(result.served['answers']):,} answers")
    if not result.popularity_baseline or result.popularity_current is None:
        return f" ({served[2:]})" if served else ""
    return (f" (popularity: {result.popularity_current:.4f} here, "
            f"{result.popularity_baseline:.4f} on the holdout{served})")


def _z_text(result: ModelRound) -> str:
    return "no standard errors to test it" if result.z is None else \
        f"{result.z:.2f} standard errors"


def _percent(drop: float | None) -> str:
    if drop is None:
        return "no baseline"
    return f"{abs(drop):.1%} {'below' if drop > 0 else 'above'}"


def _act(settings: Settings, client: Any, spec: Any, result: ModelRound, data: Any,
         start: pd.Timestamp, measured: Measured, now: pd.Timestamp, alert: str) -> None:
    """Steps 3: gate, challenger, promotion, rollback or escalation (sets the decision)."""
    from tailor.quality.gate import run_quality_gate

    gate = run_quality_gate(settings, now=now, alert=True)
    if not gate.passed:
        failed = ", ".join(rule.name for rule in gate.failed_rules)
        result.decision = "retrain_blocked"
        result.reason = f"{alert}; retraining blocked: the data-quality gate failed ({failed})"
        return
    from tailor.training.run import train_model

    challenger = train_model(settings, spec.name, settings.monitoring_retrain_trials, data=data,
                             cutoff=start.isoformat(), gate_forced=False, register_only=True)
    result.challenger_version = challenger.version
    result.challenger = float(challenger.metrics.get(result.metric, 0.0))
    if result.challenger > measured.primary and through_experiment.wanted(settings, spec.name):
        _start_experiment(settings, result, alert)
        return
    if result.challenger > measured.primary:
        _move_champion(settings, client, spec.registered_name, str(challenger.version),
                       f"promoted by monitoring: {result.metric} {result.challenger:.4f} beats "
                       f"champion v{result.champion_version} ({measured.primary:.4f}) on the "
                       f"window from {start:%Y-%m-%d}")
        result.decision, result.new_champion = "promoted", str(challenger.version)
        result.reason = (f"{alert}; challenger v{challenger.version} scored "
                         f"{result.challenger:.4f} on the same window and was promoted")
        return
    earlier = _best_earlier_champion(settings, client, spec, result, data, start,
                                     measured.primary)
    if earlier is not None:
        version, value = earlier
        _move_champion(settings, client, spec.registered_name, version,
                       f"rolled back by monitoring: {result.metric} {value:.4f} beats champion "
                       f"v{result.champion_version} ({measured.primary:.4f}) on the window "
                       f"from {start:%Y-%m-%d}")
        result.decision, result.new_champion = "rolled_back", version
        result.reason = (f"{alert}; challenger v{challenger.version} ({result.challenger:.4f}) "
                         f"did not beat it; rolled back to v{version} ({value:.4f})")
        return
    result.decision = "escalated"
    result.reason = (f"{alert}; challenger v{challenger.version} ({result.challenger:.4f}) did "
                     "not beat it and no earlier champion does better: kept, needs a person")


def _follow_experiment(settings: Settings, result: ModelRound, dry_run: bool) -> bool:
    """When an experiment a round started for this model is open, its analysis decides
    (`tailor.monitoring.through_experiment`) and no new challenger is trained: sets the
    decision and returns True. False when there is none."""
    name = through_experiment.open_experiment(settings, result.model)
    if name is None:
        return False
    result.experiment = name
    if dry_run:
        result.decision = "experiment_running"
        result.reason = f"experiment {name} decides the promotion; dry run: not looked at"
        return True
    outcome = through_experiment.follow(settings, name)
    result.decision, result.reason = outcome.decision, outcome.reason
    result.new_champion = outcome.new_champion
    if outcome.decision != "experiment_running":
        send_alert(settings, result.model, result)
    return True


def _start_experiment(settings: Settings, result: ModelRound, alert: str) -> None:
    """Put the challenger that beat the champion on the window in front of visitors against
    it (sets the decision; a start that fails escalates with the reason)."""
    beat = (f"challenger v{result.challenger_version} scored {result.challenger:.4f} on the "
            "same window")
    try:
        name = through_experiment.start(settings, result.model, str(result.challenger_version),
                                        f"monitoring: {alert}"[:500])
    except InputError as error:
        result.decision = "escalated"
        result.reason = (f"{alert}; {beat}, but its experiment could not start ({error}): "
                         "promote it by hand")
        return
    result.decision, result.experiment = "experiment_started", name
    result.reason = (f"{alert}; {beat}; experiment {name} started: v"
                     f"{result.challenger_version} becomes champion if it wins in front of "
                     "visitors")


def _best_earlier_champion(settings: Settings, client: Any, spec: Any, result: ModelRound,
                           data: Any, start: pd.Timestamp, to_beat: float
                           ) -> tuple[str, float] | None:
    """The newest earlier champion that beats `to_beat` on the window, measured the same
    way (a version whose reference is missing is passed over)."""
    from tailor.models.data import NotEnoughData
    from tailor.training.reference import ReferenceMissing, load_reference

    current = int(result.champion_version or 0)
    versions = client.search_model_versions(f"name = '{spec.registered_name}'")
    earlier = sorted((v for v in versions if int(v.version) < current
                      and str(v.tags.get("promotion", "")).startswith(("promoted",
                                                                       "rolled back"))),
                     key=lambda v: int(v.version), reverse=True)
    for version in earlier:
        try:
            reference = load_reference(version.run_id, f"v{version.version}")
            scored, _ = score_version(settings, client, spec, version, reference, data,
                                       start)
        except (ReferenceMissing, NotEnoughData) as error:
            log.info("v%s not considered for rollback: %s", version.version, error)
            continue
        if scored.primary > to_beat:
            return str(version.version), scored.primary
    return None


def _move_champion(settings: Settings, client: Any, registered_name: str, version: str,
                   reason: str) -> None:
    """Give `version` the champion alias under the model's promotion lock, tagged why."""
    from tailor.training.registration import move_champion

    move_champion(settings, client, registered_name, version, reason)
