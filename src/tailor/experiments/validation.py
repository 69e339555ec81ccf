"""`tailor experiment validate`: the statistics checked on simulated experiments whose truth
is known.

Reads nothing, writes nothing: it simulates, runs the same array functions the analysis
uses (`tailor.experiments.statistics`, `tailor.experiments.sequential`) over all simulated
experiments at once, and reports rates.

- A/A (no true difference), conversion at `baseline` over `days` daily looks: the share of
  runs called significant at alpha at the fixed horizon (the last day only), with the
  sequential test looked at every day, with the always-valid p-value looked at every day,
  and, as the contrast, the fixed-horizon test looked at every day (naive peeking, which the
  sequential test exists to prevent). Also the sample-ratio check's flag rate.
- The same with a true relative lift of `lift` in the treatment: power, and how often the
  intervals (absolute and relative, fixed horizon; the confidence sequence at every look)
  cover the true lift.
- CUPED on a revenue-like metric with a pre-period correlated `cuped_correlation` with the
  outcome: the interval width ratio (CUPED / plain; theory sqrt(1 - r^2)), its A/A rate and
  coverage; and with an independent pre-period, the width ratio (no gain, no loss).
- A ratio metric (AOV = revenue / orders per visitor, delta method) and a mean metric
  (revenue per visitor, Welch): A/A rates and coverage of the relative lift.

Every rate of 1,000 runs has a Monte Carlo standard error of sqrt(p (1 - p) / runs), 0.7
points at 5%; the gates are the issue's: false-positive rates within [3%, 7%], interval
coverage >= 93% (at alpha 0.05; for another alpha, [0.6, 1.4] alpha and 1 - alpha - 2%).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tailor.errors import InputError
from tailor.experiments.sequential import sequential_arrays
from tailor.experiments.srm import DEFAULT_SRM_THRESHOLD
from tailor.experiments.statistics import (
    cuped_arrays,
    mean_arrays,
    proportion_arrays,
    ratio_arrays,
)

DEFAULT_RUNS = 1_000
DEFAULT_SEED = 13
# The gates at alpha = 0.05: false-positive rates within [3%, 7%], coverage >= 93%;
# for another alpha the same band in units of alpha, the same slack below 1 - alpha.
FALSE_POSITIVE_BAND = (0.6, 1.4)
COVERAGE_SLACK = 0.02


def _rate(hits: np.ndarray) -> float:
    return round(float(np.mean(hits)), 4)


def _daily_proportions(rng: np.random.Generator, runs: int, days: int, units_per_day: int,
                       rate_c: float, rate_t: float) -> tuple[np.ndarray, ...]:
    """Cumulative (units, conversions) per arm after each day, shape (runs, days); each day's
    visitors split between the arms by a fair coin, as the hash assignment does."""
    arriving = rng.binomial(2 * units_per_day, 0.5, size=(runs, days))
    units_c, units_t = arriving, 2 * units_per_day - arriving
    conversions_c = rng.binomial(units_c, rate_c)
    conversions_t = rng.binomial(units_t, rate_t)
    return tuple(np.cumsum(a, axis=1) for a in (units_c, conversions_c, units_t, conversions_t))


def _conversion_runs(rng: np.random.Generator, runs: int, days: int, units_per_day: int,
                     baseline: float, lift: float, alpha: float) -> dict[str, Any]:
    """Fixed horizon, daily peeking (sequential, always-valid, naive) on conversion."""
    from scipy import stats

    units_c, conv_c, units_t, conv_t = _daily_proportions(rng, runs, days, units_per_day,
                                                          baseline, baseline * (1 + lift))
    daily = proportion_arrays(units_c, conv_c, units_t, conv_t, alpha)
    true_absolute, true_relative = baseline * lift, lift
    sequential_hits = np.zeros(runs, dtype=bool)
    always_valid_hits = np.zeros(runs, dtype=bool)
    sequence_covers = np.ones(runs, dtype=bool)
    stopped_day = np.full(runs, np.nan)
    for look in range(1, days + 1):
        test = sequential_arrays(daily.absolute[:, :look], daily.standard_error[:, :look]**2,
                                 planned_looks=days, alpha=alpha)
        stopped_day = np.where(test.significant & ~sequential_hits, look, stopped_day)
        sequential_hits |= test.significant
        always_valid_hits |= test.always_valid_p_value <= alpha
        sequence_covers &= (test.lower <= true_absolute) & (true_absolute <= test.upper)
    last = slice(None), -1
    weights = np.full(2, 0.5)
    observed = np.stack([units_c[last], units_t[last]], axis=1)
    srm = stats.chisquare(observed, observed.sum(axis=1, keepdims=True) * weights, axis=1)
    result = {
        "fixed_horizon": _rate(daily.p_value[last] < alpha),
        "sequential_daily": _rate(sequential_hits),
        "always_valid_daily": _rate(always_valid_hits),
        "naive_daily_peeking": _rate((daily.p_value < alpha).any(axis=1)),
        "srm_flag_rate": _rate(srm.pvalue < DEFAULT_SRM_THRESHOLD),
        "absolute_interval_coverage": _rate((daily.absolute_lower[last] <= true_absolute)
                                            & (true_absolute <= daily.absolute_upper[last])),
        "relative_interval_coverage": _rate((daily.relative_lower[last] <= true_relative)
                                            & (true_relative <= daily.relative_upper[last])),
        "confidence_sequence_coverage": _rate(sequence_covers),
    }
    if lift:
        result["sequential_mean_stopping_day"] = round(float(np.nanmean(stopped_day)), 2) \
            if sequential_hits.any() else None
    return result


def _revenue_units(rng: np.random.Generator, runs: int, units: int, scale: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(orders, revenue) per visitor, shape (runs, units): Poisson orders, each order's value
    Gamma(2, 25 * scale) (mean 50 * scale)."""
    orders = rng.poisson(0.3, size=(runs, units)).astype(float)
    revenue = rng.gamma(np.maximum(2 * orders, 1e-12), 25.0 * scale) * (orders > 0)
    return orders, revenue


def _sums(values: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per run: units, sum y, sum y^2, and for each other array x: sum x, sum x^2, sum x*y."""
    out = [np.full(values.shape[0], float(values.shape[1])), values.sum(axis=1),
           (values**2).sum(axis=1)]
    for other in others:
        out += [other.sum(axis=1), (other**2).sum(axis=1), (other * values).sum(axis=1)]
    return tuple(out)


def _ratio_runs(rng: np.random.Generator, runs: int, units: int, lift: float,
                alpha: float) -> dict[str, Any]:
    """AOV (delta method) and revenue per visitor (Welch): rates and relative coverage."""
    orders_c, revenue_c = _revenue_units(rng, runs, units, 1.0)
    orders_t, revenue_t = _revenue_units(rng, runs, units, 1.0 + lift)
    n_c, y_c, yy_c, d_c, dd_c, yd_c = _sums(revenue_c, orders_c)
    n_t, y_t, yy_t, d_t, dd_t, yd_t = _sums(revenue_t, orders_t)
    ratio = ratio_arrays((n_c, y_c, yy_c, d_c, dd_c, yd_c), (n_t, y_t, yy_t, d_t, dd_t, yd_t),
                         alpha)
    mean = mean_arrays(n_c, y_c, yy_c, n_t, y_t, yy_t, alpha)
    return {
        "aov_significant_rate": _rate(ratio.p_value < alpha),
        "aov_relative_interval_coverage": _rate((ratio.relative_lower <= lift)
                                                & (lift <= ratio.relative_upper)),
        "revenue_per_visitor_significant_rate": _rate(mean.p_value < alpha),
        "revenue_per_visitor_relative_interval_coverage": _rate(
            (mean.relative_lower <= lift) & (lift <= mean.relative_upper)),
    }


def _cuped_runs(rng: np.random.Generator, runs: int, units: int, correlation: float,
                lift: float, alpha: float) -> dict[str, Any]:
    """A metric with mean 10 and standard deviation 3, its pre-period correlated at
    `correlation`; the treatment adds `lift` * 10."""
    def arm(shift: float) -> tuple[np.ndarray, ...]:
        pre = rng.normal(0.0, 1.0, size=(runs, units))
        noise = rng.normal(0.0, 1.0, size=(runs, units))
        outcome = 10.0 + shift + 3.0 * (correlation * pre + np.sqrt(1 - correlation**2) * noise)
        return _sums(outcome, 10.0 + 3.0 * pre)

    control, treatment = arm(0.0), arm(10.0 * lift)
    result = cuped_arrays(control, treatment, alpha)
    true_absolute = 10.0 * lift
    covered = (result.lift.absolute_lower <= true_absolute) \
        & (true_absolute <= result.lift.absolute_upper)
    return {"interval_width_ratio": round(float(np.mean(result.interval_width_ratio)), 4),
            "variance_reduction": round(float(np.mean(result.variance_reduction)), 4),
            "significant_rate": _rate(result.lift.p_value < alpha),
            "absolute_interval_coverage": _rate(covered)}


def validate_statistics(runs: int = DEFAULT_RUNS, seed: int = DEFAULT_SEED, *,
                        alpha: float = 0.05, days: int = 14, units_per_day: int = 8_500,
                        baseline: float = 0.05, lift: float = 0.05, unit_runs: int | None = None,
                        units_per_arm: int = 1_000, cuped_correlation: float = 0.7
                        ) -> dict[str, Any]:
    """Simulate `runs` A/A and `runs` A/B experiments (+`lift` relative) and report the
    false-positive rates, power, coverage and CUPED's interval width ratio.

    Args:
        runs: simulated experiments per scenario.
        seed: the random seed; the same seed gives the same report.
        alpha: the significance level tested.
        days: daily looks (the sequential plan's length and the fixed horizon).
        units_per_day: visitors per arm per day (8,500: about 80% power at the fixed horizon
            for +5% on a 5% conversion rate).
        baseline: the control's conversion rate.
        lift: the injected relative lift.
        unit_runs: runs of the unit-level scenarios (CUPED, AOV); default `runs`.
        units_per_arm: visitors per arm in the unit-level scenarios.
        cuped_correlation: correlation of the pre-period with the outcome.

    Returns:
        A JSON-ready report; `passed` says whether every gate held.
    """
    if runs < 10 or days < 1 or units_per_day < 10 or units_per_arm < 10:
        raise InputError("runs >= 10, days >= 1, units_per_day >= 10 and units_per_arm >= 10 "
                         "are needed")
    if not 0 < alpha < 1 or not 0 < baseline < 1 or not 0 < baseline * (1 + lift) < 1:
        raise InputError("alpha and the conversion rates (baseline, with the lift) must be "
                         "between 0 and 1")
    if not 0 <= cuped_correlation < 1:
        raise InputError(f"cuped_correlation must be in [0, 1), got {cuped_correlation!r}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    unit_runs = runs if unit_runs is None else unit_runs
    null = _conversion_runs(rng, runs, days, units_per_day, baseline, 0.0, alpha)
    effect = _conversion_runs(rng, runs, days, units_per_day, baseline, lift, alpha)
    cuped = {"correlated": {"correlation": cuped_correlation,
                            "expected_width_ratio": round(float(np.sqrt(1 - cuped_correlation**2)),
                                                          4),
                            "a_a": _cuped_runs(rng, unit_runs, units_per_arm, cuped_correlation,
                                               0.0, alpha),
                            "with_lift": _cuped_runs(rng, unit_runs, units_per_arm,
                                                     cuped_correlation, lift, alpha)},
             "independent": _cuped_runs(rng, unit_runs, units_per_arm, 0.0, 0.0, alpha)}
    ratio = {"a_a": _ratio_runs(rng, unit_runs, units_per_arm, 0.0, alpha),
             "with_lift": _ratio_runs(rng, unit_runs, units_per_arm, lift, alpha)}
    low, high = (round(alpha * bound, 6) for bound in FALSE_POSITIVE_BAND)
    coverage = round(1 - alpha - COVERAGE_SLACK, 6)
    gates = {
        "fixed_horizon_false_positive_rate_in_range": low <= null["fixed_horizon"] <= high,
        "sequential_false_positive_rate_in_range": low <= null["sequential_daily"] <= high,
        "absolute_interval_coverage": effect["absolute_interval_coverage"] >= coverage,
        "relative_interval_coverage": effect["relative_interval_coverage"] >= coverage,
    }
    return {
        "runs": runs, "unit_runs": unit_runs, "seed": seed, "alpha": alpha,
        "design": {"days": days, "units_per_arm_per_day": units_per_day,
                   "baseline_conversion": baseline, "injected_relative_lift": lift,
                   "units_per_arm_unit_level": units_per_arm},
        "monte_carlo_standard_error_at_alpha": round(float(np.sqrt(alpha * (1 - alpha) / runs)),
                                                     4),
        "false_positive_rate": null,
        "power": {"fixed_horizon": effect["fixed_horizon"],
                  "sequential_daily": effect["sequential_daily"],
                  "always_valid_daily": effect["always_valid_daily"],
                  "sequential_mean_stopping_day": effect["sequential_mean_stopping_day"]},
        "coverage": {key: effect[key] for key in ("absolute_interval_coverage",
                                                  "relative_interval_coverage",
                                                  "confidence_sequence_coverage")},
        "cuped": cuped,
        "ratio_and_mean_metrics": ratio,
        "gates": gates,
        "gate_limits": {"false_positive_rate": [low, high], "minimum_coverage": coverage},
        "passed": all(gates.values()),
        "seconds": round(time.perf_counter() - started, 2),
    }
