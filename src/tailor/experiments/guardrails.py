"""Guardrails: a running experiment whose variant breaks one is stopped by itself.

Reads the running experiments (`experiment_state`, the definitions as started), the
prediction log per variant since the start (`tailor.events.prediction_store`: answers,
customers, fallbacks, errors, a latency histogram), and, for a guardrail on an attributed
metric such as `bounce_rate`, the analysis (`tailor.experiments.analysis`, when installed).
Writes, for a breach: the experiment's stop (`experiment_state` and an `experiment_audit` row
whose reason names the guardrail, by `tailor-guardrails`), and an alert on the alert channels
(the webhook and the team's mail, as monitoring's). The server's next refresh
(`experiments.refresh_seconds`) then serves everyone the defaults, the control's settings.

The rules, per treatment variant (the control is the baseline, not judged):
- `max_increase`: the variant's value minus the control's above the limit is a breach;
  `max`: the variant's value above the limit is;
- log metrics (from the prediction log): `fallback_rate` (fallback answers / answers),
  `error_rate` (answers whose model or pipeline failed / answers), `latency_p99_ms` (the 99th
  percentile of the pipeline's time per answer, to the millisecond above). Every served
  experiment also has an `error_rate` guardrail of `max_increase:
  experiments.guardrail_max_error_increase` unless its definition declares one;
- attributed metrics (`bounce_rate`, `conversion`, ...): the analysis's value per variant;
- nothing is judged before the variant, and for `max_increase` the control, has
  `experiments.guardrail_min_units` customers (`waiting`); a value that cannot be had
  (a campaign has no served answers; no analysis) is `not_measured`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from tailor.config import Settings
from tailor.errors import InputError
from tailor.experiments.definition import Definition, Guardrail
from tailor.experiments.promotion import GUARDRAIL_ACTOR
from tailor.experiments.promotion import default_analysis as promotion_analysis
from tailor.experiments.state import RUNNING, ExperimentRecord, open_store
from tailor.experiments.state import stop as stop_experiment

log = logging.getLogger(__name__)

ACTOR = GUARDRAIL_ACTOR
LOG_METRICS: tuple[str, ...] = ("fallback_rate", "error_rate", "latency_p99_ms")
OK, BREACHED, WAITING, NOT_MEASURED = "ok", "breached", "waiting", "not_measured"
PERCENTILE = 0.99

# Per metric, per variant: its value (None: not measured) and the customers it rests on.
Values = dict[str, dict[str, float | None]]


@dataclass(frozen=True)
class ServedVariant:
    """One variant's answers in the prediction log since the experiment started."""

    variant: str
    answers: int
    units: int          # distinct customers served
    fallbacks: int
    errors: int
    latency_p99_ms: float | None

    def values(self) -> dict[str, float | None]:
        rate = (lambda count: count / self.answers if self.answers else None)
        return {"fallback_rate": rate(self.fallbacks), "error_rate": rate(self.errors),
                "latency_p99_ms": self.latency_p99_ms}


@dataclass(frozen=True)
class GuardrailCheck:
    """One guardrail judged for one variant."""

    metric: str
    variant: str
    limit: str                 # "max_increase 0.02" or "max 100"
    value: float | None
    control_value: float | None
    status: str                # ok | breached | waiting | not_measured
    detail: str


@dataclass
class ExperimentGuardrails:
    """What one check found for one running experiment, and what it did."""

    experiment: str
    surface: str
    units: dict[str, int]
    checks: list[GuardrailCheck] = field(default_factory=list)
    stopped: bool = False
    stop_reason: str | None = None
    alerted: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def breaches(self) -> list[GuardrailCheck]:
        return [check for check in self.checks if check.status == BREACHED]

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["breaches"] = len(self.breaches)
        return payload


def percentile_from_histogram(buckets: Iterable[tuple[float, int]],
                              share: float = PERCENTILE) -> float | None:
    """The nearest-rank percentile of values counted per bucket ((value, count) pairs)."""
    ordered = sorted((float(value), int(count)) for value, count in buckets if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        return None
    rank, seen = max(1, math.ceil(share * total)), 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return value
    return ordered[-1][0]


def served_variants(settings: Settings, record: ExperimentRecord) -> dict[str, ServedVariant]:
    """Per variant, its answers in the prediction log since the experiment started."""
    from tailor.events.prediction_store import datetime_to_micros, open_prediction_store

    since = datetime_to_micros(datetime.fromisoformat(record.started_at or record.created_at))
    store = open_prediction_store(settings.event_store_url)
    try:
        summary = store.experiment_summary(record.name, since)
        latencies = store.experiment_latencies(record.name, since)
    finally:
        store.close()
    histograms: dict[str, list[tuple[float, int]]] = {}
    for variant, milliseconds, count in latencies:
        histograms.setdefault(str(variant), []).append((milliseconds, count))
    return {str(variant): ServedVariant(str(variant), int(answers), int(units),
                                        int(fallbacks or 0), int(errors or 0),
                                        percentile_from_histogram(histograms.get(str(variant),
                                                                                 ())))
            for variant, answers, units, fallbacks, errors in summary}


def effective_guardrails(definition: Definition, max_error_increase: float
                         ) -> list[Guardrail]:
    """The definition's guardrails, plus the implicit error-rate one for a served surface."""
    guardrails = list(definition.guardrails)
    if definition.surface != "campaign" and \
            not any(guardrail.metric == "error_rate" for guardrail in guardrails):
        guardrails.append(Guardrail(metric="error_rate", max_increase=max_error_increase,
                                    max=None))
    return guardrails


def judge(definition: Definition, guardrails: Iterable[Guardrail], values: Values,
          units: dict[str, int], min_units: int,
          unmeasured: dict[str, str] | None = None) -> list[GuardrailCheck]:
    """Every guardrail for every treatment variant (see the module docstring's rules).

    Args:
        definition: the experiment (its variants and control).
        guardrails: what to judge.
        values: per metric, per variant, its value (missing or None: not measured).
        units: per variant, the customers the values rest on.
        min_units: the fewest customers a judged value may rest on.
        unmeasured: per metric, why it has no values (for the check's detail).
    """
    control = definition.control
    checks = []
    for guardrail in guardrails:
        by_variant = values.get(guardrail.metric, {})
        for variant in (v.name for v in definition.variants if v.name != control):
            checks.append(_check(guardrail, variant, control, by_variant, units, min_units,
                                 (unmeasured or {}).get(guardrail.metric)))
    return checks


def _check(guardrail: Guardrail, variant: str, control: str,
           by_variant: dict[str, float | None], units: dict[str, int], min_units: int,
           why_unmeasured: str | None) -> GuardrailCheck:
    relative = guardrail.max_increase is not None
    limit_value = guardrail.max_increase if relative else guardrail.max
    limit = f"{'max_increase' if relative else 'max'} {limit_value:g}"
    value, base = by_variant.get(variant), by_variant.get(control)

    def result(status: str, detail: str) -> GuardrailCheck:
        return GuardrailCheck(guardrail.metric, variant, limit, value, base, status, detail)

    needed = [variant, control] if relative else [variant]
    short = [name for name in needed if units.get(name, 0) < min_units]
    if short:
        return result(WAITING, ", ".join(f"{name} has {units.get(name, 0):,} customers"
                                         for name in short)
                      + f"; judged from {min_units:,} (experiments.guardrail_min_units)")
    if value is None or (relative and base is None):
        return result(NOT_MEASURED, why_unmeasured or "no value for it yet")
    assert limit_value is not None
    excess = value - base if relative and base is not None else value
    shown = (f"{variant} {_number(value)} vs {control} {_number(base)}: "
             f"{_signed(excess)}" if relative else f"{variant} {_number(value)}")
    if excess > limit_value:
        return result(BREACHED, f"{guardrail.metric}: {shown}, above {limit}")
    return result(OK, f"{shown}, within {limit}")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _signed(value: float) -> str:
    return f"{value:+.4g}"


# The analysis of an experiment by name (None: none to be had); tests give their own.
Analyze = Callable[[Settings, str], Any]


def default_analysis(settings: Settings, name: str) -> Any:
    """The analysis when `tailor.experiments.analysis` is installed and has exposures."""
    return promotion_analysis(settings, name)


def analysed_values(analysis: Any, metrics: Iterable[str]) -> tuple[Values, dict[str, int]]:
    """Per attributed metric, per variant, the analysis's value; and its units per variant."""
    values: Values = {}
    for metric in metrics:
        if metric == "bounce_rate" and getattr(analysis, "guardrails", None):
            values[metric] = {variant: guard.bounce_rate
                              for variant, guard in analysis.guardrails.items()}
            continue
        found = analysis.metric(metric)
        if found is None:
            continue
        by_variant = getattr(found, "values", None)  # each variant's figure, when given
        if by_variant is None and found.analysis is not None:
            by_variant = {row.variant: row.value for row in found.analysis.variants}
        if by_variant is not None:
            values[metric] = dict(by_variant)
    return values, dict(analysis.units)


def check_experiment(settings: Settings, record: ExperimentRecord,
                     analyze: Analyze = default_analysis) -> ExperimentGuardrails:
    """Judge one running experiment's guardrails (nothing is stopped here)."""
    definition = record.definition()
    guardrails = effective_guardrails(definition,
                                      settings.experiments_guardrail_max_error_increase)
    result = ExperimentGuardrails(record.name, definition.surface, {})
    values, log_units, unmeasured = _log_values(settings, record, definition.surface)
    attributed = sorted({guardrail.metric for guardrail in guardrails} - set(LOG_METRICS))
    analysis_units: dict[str, int] = {}
    if attributed:
        analysis = _analysis_or_none(settings, record.name, analyze, result)
        if analysis is None:
            unmeasured.update({metric: "no analysis available" for metric in attributed})
        else:
            found, analysis_units = analysed_values(analysis, attributed)
            values.update(found)
    result.units = log_units or analysis_units
    for guardrail in guardrails:
        units = analysis_units if guardrail.metric in attributed and analysis_units \
            else log_units
        result.checks += judge(definition, [guardrail], values, units,
                               settings.experiments_guardrail_min_units, unmeasured)
    return result


def _log_values(settings: Settings, record: ExperimentRecord, surface: str
                ) -> tuple[Values, dict[str, int], dict[str, str]]:
    """The log metrics per variant, the customers served per variant, and why a metric has
    no values (a campaign serves no answers; no latency measured yet)."""
    if surface == "campaign":
        return {}, {}, {metric: "a campaign has no served answers" for metric in LOG_METRICS}
    served = served_variants(settings, record)
    values: Values = {metric: {variant: stats.values()[metric]
                               for variant, stats in served.items()} for metric in LOG_METRICS}
    units = {variant: stats.units for variant, stats in served.items()}
    return values, units, {"latency_p99_ms": "no answer with a measured latency yet"}


def _analysis_or_none(settings: Settings, name: str, analyze: Analyze,
                      result: ExperimentGuardrails) -> Any:
    try:
        return analyze(settings, name)
    except InputError as error:
        result.notes.append(f"no analysis: {error}")
    except Exception as error:  # the log metrics are still judged; say why these are not
        log.exception("%s: the analysis failed", name)
        result.notes.append(f"the analysis failed: {type(error).__name__}: {error}")
    return None


def check_all(settings: Settings, analyze: Analyze = default_analysis
              ) -> list[ExperimentGuardrails]:
    """Judge every running experiment; stop and alert for each that breaks a guardrail."""
    with open_store(settings) as store:
        running = store.records((RUNNING,))
    results = []
    for record in running:
        result = check_experiment(settings, record, analyze)
        if result.breaches:
            _stop(settings, result)
        results.append(result)
    return results


def _stop(settings: Settings, result: ExperimentGuardrails) -> None:
    """Stop the experiment, naming the breached guardrails, then alert."""
    reason = "guardrail breached: " + "; ".join(check.detail for check in result.breaches)
    try:
        stop_experiment(settings, result.experiment, ACTOR, reason)
    except InputError as error:  # stopped or promoted by someone since it was read
        result.notes.append(f"not stopped here: {error}")
        return
    result.stopped, result.stop_reason = True, reason
    log.warning("%s: stopped: %s", result.experiment, reason)
    result.alerted = send_alert(settings, result)


def send_alert(settings: Settings, result: ExperimentGuardrails) -> dict[str, str]:
    """The stop's alert on the configured channels; per channel what happened (never
    raises: the stop is recorded already)."""
    from tailor.mail import send
    from tailor.quality.alerts import post_webhook

    subject = f"[tailor] experiment {result.experiment} stopped by a guardrail"
    text = (f"{result.stop_reason}\n\nEveryone gets the defaults (the control) from the "
            f"server's next refresh. `tailor experiment status {result.experiment}` shows it; "
            "the audit names the guardrail.\n\n"
            + json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    outcome: dict[str, str] = {}
    try:
        if settings.alerts_webhook_url:
            outcome["webhook"] = post_webhook(settings.alerts_webhook_url, {
                "text": f"{subject}: {result.stop_reason}", "experiment": result.to_dict()})
        if settings.mail_recipients.strip():
            outcome["mail"] = send(settings, subject, text).status
    except Exception as error:  # an alert channel's bug must not undo the stop's report
        log.exception("%s: the guardrail alert failed", result.experiment)
        outcome["error"] = f"{type(error).__name__}: {error}"
    return outcome


def report_lines(results: list[ExperimentGuardrails]) -> list[str]:
    """One line per experiment, then one per check that is not ok."""
    if not results:
        return ["no running experiments: nothing to check"]
    lines = []
    for result in results:
        counts = {status: sum(check.status == status for check in result.checks)
                  for status in (OK, BREACHED, WAITING, NOT_MEASURED)}
        state = "STOPPED" if result.stopped else "running"
        lines.append(f"{result.experiment}: {state}; " + ", ".join(
            f"{count} {status.replace('_', ' ')}" for status, count in counts.items() if count))
        lines += [f"  {check.metric} [{check.variant}] {check.status.replace('_', ' ')}: "
                  f"{check.detail}" for check in result.checks if check.status != OK]
        lines += [f"  note: {note}" for note in result.notes]
    return lines
