"""The verdict of an experiment's analysis, and the guardrails it checks.

Reads the analysis's figures (`tailor.experiments.analysis`: the metric results, each
variant's guardrail figures, the sample-ratio check); writes nothing. The rules, in order
(docs/experiments.md, "Analysis"):

1. `srm`: the units' split fails the sample-ratio check: do not trust any figure;
2. `keep_running`: a variant has fewer units than `minimum_sample`, or the primary metric
   cannot be tested yet;
3. `winner`: treatments significantly better on the primary metric (its decision p-values,
   Holm-corrected across the treatments, at most the definition's alpha) that breach no
   guardrail; the one with the largest lift wins; the control wins when every treatment is
   significantly worse;
4. otherwise `no_winner` when the experiment is stopped or has run `max_duration_days`, else
   `keep_running`.

A guardrail with `max_increase` is breached when a treatment's figure exceeds the control's
by more than that (absolute: 0.05 is five points of bounce rate); one with `max` when a
treatment's figure exceeds it. A figure that was not measured (latency of answers logged
before latency was, or of campaign mails) breaches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tailor.experiments.analysis_metrics import treatment_rows

if TYPE_CHECKING:
    from tailor.experiments.analysis import MetricResult, VariantGuardrails
    from tailor.experiments.definition import Definition

WINNER, NO_WINNER, KEEP_RUNNING, SRM = "winner", "no_winner", "keep_running", "srm"


@dataclass(frozen=True)
class Verdict:
    decision: str                 # winner | no_winner | keep_running | srm
    winner: str | None
    reasons: tuple[str, ...]


def breaches(definition: Definition, guardrails: dict[str, VariantGuardrails],
              metrics: list[MetricResult]) -> dict[str, list[str]]:
    """Per treatment, the guardrails its figures break (a guardrail on a figure that was not
    measured is reported as such, not as a breach)."""
    control = definition.control
    values: dict[str, dict[str, float | None]] = {
        "fallback_rate": {n: g.fallback_rate for n, g in guardrails.items()},
        "latency_p99_ms": {n: g.latency_p99_ms for n, g in guardrails.items()},
        "bounce_rate": {n: g.bounce_rate for n, g in guardrails.items()}}
    values.update({result.metric: result.values for result in metrics
                   if result.metric not in values})
    breaches: dict[str, list[str]] = {name: [] for name in guardrails if name != control}
    for guard in definition.guardrails:
        figures = values.get(guard.metric, {})
        for name in breaches:
            value, base = figures.get(name), figures.get(control)
            if value is None:
                continue
            if guard.max is not None and value > guard.max:
                breaches[name].append(f"{guard.metric} {value:.4g} above the ceiling "
                                      f"{guard.max:g}")
            if guard.max_increase is not None and base is not None \
                    and value - base > guard.max_increase:
                breaches[name].append(f"{guard.metric} {value:.4g} is {value - base:+.4g} "
                                      f"over the control's {base:.4g} (at most "
                                      f"+{guard.max_increase:g})")
    return breaches


def decide(definition: Definition, metrics: list[MetricResult], units: dict[str, int],
           srm_mismatch: bool, breaches: dict[str, list[str]], status: str,
           days_running: float | None) -> Verdict:
    """The verdict from the figures (the rules are the module docstring's)."""
    from tailor.experiments.corrections import adjust_p_values

    if srm_mismatch:
        return Verdict(SRM, None, ("the units' split across variants does not match the "
                                   "weights (sample-ratio mismatch): assignment or logging "
                                   "is broken; do not trust these figures",))
    short = [f"{name} has {count:,} units of the {definition.minimum_sample:,} needed"
             for name, count in units.items() if count < definition.minimum_sample]
    if short:
        return Verdict(KEEP_RUNNING, None, tuple(short))
    primary = metrics[0]
    if primary.analysis is None:
        return Verdict(KEEP_RUNNING, None, (primary.problem or "the primary metric cannot "
                                            "be tested yet",))
    alpha = definition.stopping.alpha
    adjusted = adjust_p_values(primary.decision_p_values)
    better: list[tuple[str, float]] = []
    worse: list[str] = []
    reasons: list[str] = []
    for row, lift in treatment_rows(primary.analysis):
        significant = adjusted[row.variant] <= alpha
        good = (lift.absolute > 0) == primary.higher_is_better
        if significant and good and breaches.get(row.variant):
            reasons.append(f"{row.variant} is better on {primary.metric} but breaks a "
                           f"guardrail: {'; '.join(breaches[row.variant])}")
        elif significant and good:
            better.append((row.variant, abs(lift.absolute)))
        elif significant:
            worse.append(row.variant)
    if better:
        best = max(better, key=lambda pair: pair[1])[0]
        return Verdict(WINNER, best, (
            f"{best} beats {definition.control} on {primary.metric} (adjusted p "
            f"{adjusted[best]:.3g} <= {alpha:g})", *reasons))
    if worse and len(worse) == len(primary.analysis.variants) - 1:
        return Verdict(WINNER, definition.control, (
            f"every treatment is significantly worse than {definition.control} on "
            f"{primary.metric}: keep the control", *reasons))
    finished = status != "running" or (days_running is not None
                                       and days_running >= definition.max_duration_days)
    if finished:
        return Verdict(NO_WINNER, None, (
            f"no treatment differs significantly from {definition.control} on "
            f"{primary.metric} after {days_running or 0:.1f} days", *reasons))
    return Verdict(KEEP_RUNNING, None, (
        f"no significant difference on {primary.metric} yet (day {days_running or 0:.1f} of "
        f"{definition.max_duration_days:g})", *reasons))


