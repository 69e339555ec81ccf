"""The analysis of one experiment: every metric per variant against the control, the
guardrails, the sample-ratio check and a verdict.

Reads the experiment's row in `experiment_state` (its definition as started,
`tailor.experiments.state`) and its attribution (`tailor.experiments.attribution`: the
exposures in the prediction log or the campaign mails, and the events after them). Writes
nothing; `tailor.experiments.analysis_report` writes the HTML page and
`tailor.experiments.analysis_commands` prints it.

Per metric (`tailor.experiments.analysis_metrics`): `analyze_metric` with CUPED (when the
pre-period is on), the sequential test over daily looks (planned looks = the definition's
`max_duration_days`, a look = the units first exposed by the end of a day) and the
probability to beat the control. The decision p-value of a treatment on a metric is the
sequential one (stopping method `sequential`) or the fixed-horizon one; Holm's correction
runs over every metric and treatment (`adjusted_p_values`), and the verdict uses the primary
metric's p-values Holm-corrected across its treatments only.

The verdict's rules and the guardrail checks are `tailor.experiments.analysis_verdict`'s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from tailor.errors import InputError
from tailor.experiments.analysis_metrics import (
    ALWAYS, SPECS, arm_values, daily_sums, look_is_valid, problem_of, treatment_rows,
    unit_values,
)
from tailor.experiments.analysis_verdict import (
    KEEP_RUNNING, NO_WINNER, SRM, WINNER, Verdict, breaches as guardrail_breaches, decide,
)
from tailor.experiments.statistics import MetricAnalysis, analyze_metric

if TYPE_CHECKING:
    from tailor.config import Settings
    from tailor.experiments.attribution import Attribution
    from tailor.experiments.definition import Definition

__all__ = ["KEEP_RUNNING", "NO_WINNER", "SRM", "WINNER", "ExperimentAnalysis", "MetricResult",
           "NoExposures", "UnknownExperiment", "VariantGuardrails", "Verdict",
           "analyze_attribution", "analyze_experiment", "decide"]


class UnknownExperiment(InputError):
    """No experiment of that name in `experiment_state`."""


class NoExposures(InputError):
    """The experiment has no exposure before `as_of`."""


@dataclass(frozen=True)
class VariantGuardrails:
    """A variant's serving and behaviour figures the guardrails are checked on."""

    variant: str
    answers: int                  # exposures: prediction-log answers, or mails sent
    units: int
    fallback_rate: float | None   # fallback answers / answers (None: campaign mails)
    latency_p99_ms: float | None  # None: no answer of the variant logged its latency
    bounce_rate: float | None     # bounced exposed sessions / exposed sessions observed


@dataclass(frozen=True)
class MetricResult:
    """One metric's analysis, or why it could not be analysed."""

    metric: str
    role: str                     # primary | secondary | guardrail | reported
    kind: str
    higher_is_better: bool
    values: dict[str, float | None]           # each variant's rate, mean or ratio
    analysis: MetricAnalysis | None
    adjusted_p_values: dict[str, float]       # Holm over every metric x treatment
    decision_p_values: dict[str, float]       # sequential (or fixed) p per treatment
    problem: str | None = None


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Everything `tailor experiment analyze` prints (`to_dict` is its JSON)."""

    experiment: str
    status: str
    surface: str
    control: str
    variants: tuple[str, ...]
    as_of: str
    started_at: str | None
    days_running: float | None
    window_hours: float
    pre_period_days: float
    units: dict[str, int]
    srm: dict[str, Any]
    metrics: tuple[MetricResult, ...]
    guardrails: dict[str, VariantGuardrails]
    guardrail_breaches: dict[str, list[str]]
    verdict: Verdict
    daily: list[dict[str, Any]]
    notes: tuple[str, ...]
    sources: dict[str, Any]

    def metric(self, name: str) -> MetricResult | None:
        """The result of metric `name`, if it was analysed."""
        return next((result for result in self.metrics if result.metric == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN and infinities as None)."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _plain(value.item())
    return value


# -- entry point ----------------------------------------------------------------------------


def analyze_experiment(settings: Settings, name: str, *, as_of: datetime | None = None,
                       progress: Callable[[str], None] | None = None) -> ExperimentAnalysis:
    """Analyse experiment `name` as of `as_of` (default: now, or its stop if earlier).

    Raises:
        UnknownExperiment: no such experiment in `experiment_state`.
        NoExposures: none of its exposures is before `as_of`.
    """
    from tailor.experiments.attribution import attribute_experiment, utc
    from tailor.experiments.state import open_store

    with open_store(settings) as store:
        record = store.record(name)
        known = [each.name for each in store.records()] if record is None else []
    if record is None:
        raise UnknownExperiment(f"{name}: no such experiment (known: "
                                f"{', '.join(known) or 'none'}); `tailor experiment status` "
                                "lists them")
    definition = record.definition()
    moment = utc(as_of) if as_of is not None else datetime.now(timezone.utc)
    if as_of is None and record.stopped_at:
        moment = min(moment, utc(datetime.fromisoformat(record.stopped_at)))
    window = settings.experiments_attribution_window_hours \
        or definition.metrics.attribution_window_hours
    attribution = attribute_experiment(settings, name, definition.surface, as_of=moment,
                                       window_hours=window,
                                       pre_period_days=settings.experiments_pre_period_days,
                                       progress=progress)
    if not len(attribution.units):
        where = "no campaign mail was sent in it" if definition.surface == "campaign" \
            else "the prediction log has no answer served in it"
        raise NoExposures(f"{name}: no exposure before {moment.isoformat()} (status "
                          f"{record.status}): {where}")
    if progress:
        progress("testing the metrics")
    return analyze_attribution(definition, attribution, status=record.status,
                               started_at=record.started_at)


def analyze_attribution(definition: Definition, attribution: Attribution, *,
                        status: str = "running", started_at: str | None = None
                        ) -> ExperimentAnalysis:
    """The analysis of an attribution under a definition (no I/O)."""
    import numpy as np

    from tailor.experiments.attribution import first_exposure_days
    from tailor.experiments.srm import sample_ratio_mismatch

    units = attribution.units
    variants = [variant.name for variant in definition.variants]
    labels = units["variant"].astype("category")   # a Categorical from the SQL already
    present = [str(name) for name in labels.cat.categories[np.unique(labels.cat.codes)]] \
        if len(labels) else []
    unknown = sorted(set(present) - set(variants))
    if unknown:
        raise InputError(f"{definition.name}: exposures in variants the definition does not "
                         f"have: {unknown}")
    positions = np.asarray([variants.index(str(name)) if str(name) in variants else -1
                            for name in labels.cat.categories], dtype=np.int64)
    codes = positions[labels.cat.codes.to_numpy()]
    days, dates = first_exposure_days(attribution)
    counts = np.bincount(codes, minlength=len(variants))
    unit_counts = {name: int(counts[index]) for index, name in enumerate(variants)}
    srm = sample_ratio_mismatch(unit_counts, {v.name: v.weight for v in definition.variants})
    looks = max(1, math.ceil(definition.max_duration_days))
    metrics, series = _metric_results(definition, attribution, codes, days, len(dates),
                                      variants, looks)
    guardrails = _guardrails(attribution, variants, unit_counts, definition.surface)
    breaches = guardrail_breaches(definition, guardrails, metrics)
    days_running = _days_running(started_at, units["first_exposure"].min(), attribution.as_of)
    verdict = decide(definition, metrics, unit_counts, srm.mismatch, breaches, status,
                     days_running)
    notes = _notes(attribution, definition)
    return ExperimentAnalysis(
        experiment=definition.name, status=status, surface=definition.surface,
        control=definition.control, variants=tuple(variants),
        as_of=attribution.as_of.isoformat(), started_at=started_at, days_running=days_running,
        window_hours=attribution.window_hours, pre_period_days=attribution.pre_period_days,
        units=unit_counts, srm=asdict(srm), metrics=tuple(metrics), guardrails=guardrails,
        guardrail_breaches=breaches, verdict=verdict,
        daily=_daily_rows(dates, variants, series, definition.control),
        notes=notes, sources=attribution.sources)


# -- metrics --------------------------------------------------------------------------------


def metric_roles(definition: Definition) -> list[tuple[str, str]]:
    """(metric, role) in report order: the primary, the secondary ones, the guardrails'
    metrics, then the brief's headline figures; each metric once, only those defined for
    the experiment's surface."""
    campaign = definition.surface == "campaign"
    wanted: list[tuple[str, str]] = [(definition.metrics.primary, "primary")]
    wanted += [(metric, "secondary") for metric in definition.metrics.secondary]
    wanted += [(guard.metric, "guardrail") for guard in definition.guardrails]
    wanted += [(metric, "reported") for metric in ALWAYS]
    seen: set[str] = set()
    roles: list[tuple[str, str]] = []
    for metric, role in wanted:
        spec = SPECS.get(metric)
        if spec is None or metric in seen or not (spec.campaign if campaign else spec.surface):
            continue
        seen.add(metric)
        roles.append((metric, role))
    return roles


def _metric_results(definition: Definition, attribution: Attribution, codes: Any, days: Any,
                    day_count: int, variants: list[str], looks: int
                    ) -> tuple[list[MetricResult], dict[str, list[dict]]]:
    from tailor.experiments.corrections import adjust_p_values

    alpha = definition.stopping.alpha
    sequential = definition.stopping.method == "sequential"
    control = definition.control
    drafts, series = [], {}
    for metric, role in metric_roles(definition):
        spec = SPECS[metric]
        values = unit_values(attribution.units, metric,
                             with_covariate=attribution.pre_period_days > 0)
        history = daily_sums(codes, days, variants, day_count, values)
        series[metric] = history
        current = history[-1]
        problem = problem_of(current, spec.kind, metric)
        analysis = None
        if problem is None:
            earlier = [look for look in history[:-1] if look_is_valid(look, spec.kind)]
            analysis = analyze_metric(current, control, spec.kind, metric=metric, alpha=alpha,
                                      history=earlier, planned_looks=looks)
        drafts.append((metric, role, spec, arm_values(current, spec.kind), analysis, problem))
    decision: dict[tuple[str, str], float] = {}
    for metric, _, _, _, analysis, _ in drafts:
        for row, lift in (treatment_rows(analysis) if analysis else ()):
            p_value = row.sequential.p_value if sequential and row.sequential else \
                lift.p_value
            decision[(metric, row.variant)] = float(p_value)
    adjusted = adjust_p_values({f"{m}\t{v}": p for (m, v), p in decision.items()})
    results = [MetricResult(
        metric, role, spec.kind, spec.higher_is_better, values, analysis,
        {v: adjusted[f"{m}\t{v}"] for (m, v) in decision if m == metric},
        {v: p for (m, v), p in decision.items() if m == metric}, problem)
        for metric, role, spec, values, analysis, problem in drafts]
    return results, series


def _guardrails(attribution: Attribution, variants: list[str], unit_counts: dict[str, int],
                surface: str) -> dict[str, VariantGuardrails]:
    units = attribution.units
    sessions = units.groupby("variant", observed=True)["sessions"].sum()
    bounced = units.groupby("variant", observed=True)["bounced_sessions"].sum()
    result = {}
    for name in variants:
        served = attribution.answers.get(name)
        observed = int(sessions.get(name, 0))
        result[name] = VariantGuardrails(
            variant=name, answers=served.answers if served else 0, units=unit_counts[name],
            fallback_rate=None if surface == "campaign" or served is None
            else served.fallback_rate,
            latency_p99_ms=None if surface == "campaign" or served is None
            else served.latency_p99_ms,
            bounce_rate=int(bounced.get(name, 0)) / observed if observed else None)
    return result


def _days_running(started_at: str | None, first_exposure: Any, as_of: datetime
                  ) -> float | None:
    """Days from the start (or the first exposure, when that is earlier: a simulated or
    imported history) to `as_of`."""
    moments = [first_exposure.to_pydatetime()] if first_exposure is not None else []
    if started_at:
        start = datetime.fromisoformat(started_at)
        moments.append(start if start.tzinfo else start.replace(tzinfo=timezone.utc))
    if not moments:
        return None
    return round(max(0.0, (as_of - min(moments)).total_seconds()) / 86_400, 2)


def _notes(attribution: Attribution, definition: Definition) -> tuple[str, ...]:
    notes = [f"a unit's outcomes are its events within {attribution.window_hours:g} h after "
             "each exposure; a look is the units first exposed by the end of a day"]
    moved = attribution.units_in_several_variants
    if moved:
        notes.append(f"{moved:,} units were exposed in several variants (kept in their "
                     "first): a shop that sends no anonymous_id re-assigns at login")
    return tuple(notes)


def _daily_rows(dates: list, variants: list[str], series: dict[str, list[dict]],
                control: str) -> list[dict[str, Any]]:
    """Per day and variant: cumulative units and each metric's value; for treatments the
    relative lift of each metric with its interval at that look (not simultaneous)."""
    from tailor.experiments.statistics import compare

    rows = []
    for index, day in enumerate(dates):
        for name in variants:
            row: dict[str, Any] = {"date": day.isoformat(), "variant": name}
            for metric, history in series.items():
                kind = SPECS[metric].kind
                look = history[index]
                row["units"] = look[name].units
                row[metric] = arm_values(look, kind)[name]
                if name != control and look_is_valid({control: look[control], name: look[name]},
                                                     kind):
                    lift, _ = compare(look[control], look[name], kind)
                    row[f"{metric}_lift"] = [lift.relative, lift.relative_lower,
                                             lift.relative_upper]
            rows.append(row)
    return rows
