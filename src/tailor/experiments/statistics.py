"""The frequentist comparison of a variant with the control on one metric: absolute and
relative lift, their confidence intervals, the p-value, and the CUPED-adjusted version.

Reads: per-variant sums (`tailor.experiments.sums.VariantSums`). Writes nothing. Pure
functions; each has an array form (`*_arrays`, numpy arrays of any shape, one element per
simulated experiment) that `tailor.experiments.validation` runs over thousands of simulated
experiments at once, and the one-experiment form below (`compare`, `compare_cuped`,
`analyze_metric`) that checks its input and answers with frozen dataclasses.

Methods (the formulas are in docs/experiments.md, "Statistics"):
- proportion (conversion, click-through): two-proportion z-test with the pooled rate under
  the null for the p-value; the interval on the difference is Wald's, unpooled.
- mean (revenue per visitor): Welch's t-test (scipy), unequal variances, Welch-Satterthwaite
  degrees of freedom for the interval.
- ratio (AOV = revenue / orders, bounce rate = bounced sessions / sessions; the unit is the
  visitor, not the order): delta-method variance of each arm's ratio of means, z-test.
- relative lift (treatment / control - 1): delta-method variance of the ratio of the two
  arms' means, the arms independent; the same critical value as the absolute interval.
- CUPED: the unit's pre-period value of the metric as covariate, theta = cov(y, x) / var(x)
  pooled over all units of all arms (Deng et al., 2013); each arm's mean is shifted by
  theta * (arm's covariate mean - overall covariate mean); Welch's test on the adjusted values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tailor.errors import InputError
from tailor.experiments.sums import VariantSums, check_variants

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tailor.experiments.sequential import SequentialResult

DEFAULT_ALPHA = 0.05
PROPORTION, MEAN, RATIO = "proportion", "mean", "ratio"
KINDS = (PROPORTION, MEAN, RATIO)


class LiftArrays(NamedTuple):
    """Treatment minus control, elementwise over arrays of experiments."""

    absolute: np.ndarray
    absolute_lower: np.ndarray
    absolute_upper: np.ndarray
    relative: np.ndarray          # NaN where the control's value is 0
    relative_lower: np.ndarray
    relative_upper: np.ndarray
    p_value: np.ndarray
    standard_error: np.ndarray    # of the absolute lift


@dataclass(frozen=True)
class Lift:
    """A variant against the control: absolute and relative lift with their intervals."""

    absolute: float
    absolute_lower: float
    absolute_upper: float
    relative: float | None        # None when the control's value is 0
    relative_lower: float | None
    relative_upper: float | None
    p_value: float
    standard_error: float

    @classmethod
    def first(cls, arrays: LiftArrays) -> Lift:
        """The first element of `arrays` (a one-experiment computation)."""
        values = [float(np.ravel(column)[0]) for column in arrays]
        return cls(*[None if np.isnan(value) else value for value in values])


@dataclass(frozen=True)
class CupedLift:
    """The lift with the pre-period as covariate, and what it saved."""

    lift: Lift
    theta: float
    variance_reduction: float     # 1 - var(adjusted lift) / var(plain lift)
    interval_width_ratio: float   # adjusted interval width / plain interval width


@dataclass(frozen=True)
class VariantResult:
    """One variant's row of an analysis; the control's row has no lift."""

    variant: str
    units: int
    value: float                  # rate, mean or ratio
    lift: Lift | None = None
    cuped: CupedLift | None = None
    sequential: SequentialResult | None = None
    probability_to_beat_control: float | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricAnalysis:
    metric: str
    kind: str
    control: str
    alpha: float
    variants: tuple[VariantResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN as None)."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _normal() -> Any:
    from scipy import stats

    return stats.norm


def lift_arrays(mean_c: Any, var_c: Any, mean_t: Any, var_t: Any, critical: Any,
                p_value: Any) -> LiftArrays:
    """Absolute and relative lift with intervals from each arm's mean and the variance of
    that mean (independent arms), given the critical value and the p-value."""
    mean_c, var_c, mean_t, var_t = (np.asarray(a, dtype=float) for a in (mean_c, var_c,
                                                                         mean_t, var_t))
    difference = mean_t - mean_c
    se = np.sqrt(var_c + var_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        defined = mean_c != 0
        relative = np.where(defined, mean_t / mean_c - 1.0, np.nan)
        relative_se = np.where(defined, np.sqrt(var_t / mean_c**2
                                                + mean_t**2 * var_c / mean_c**4), np.nan)
    return LiftArrays(difference, difference - critical * se, difference + critical * se,
                      relative, relative - critical * relative_se,
                      relative + critical * relative_se, np.asarray(p_value, dtype=float), se)


def proportion_arrays(units_c: Any, conversions_c: Any, units_t: Any, conversions_t: Any,
                      alpha: float = DEFAULT_ALPHA) -> LiftArrays:
    """Two-proportion z-test (pooled rate under the null) and Wald intervals."""
    n_c, x_c, n_t, x_t = (np.asarray(a, dtype=float) for a in (units_c, conversions_c,
                                                                 units_t, conversions_t))
    rate_c, rate_t = x_c / n_c, x_t / n_t
    pooled = (x_c + x_t) / (n_c + n_t)
    null_se = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(null_se > 0, (rate_t - rate_c) / null_se, 0.0)
    p_value = 2 * _normal().sf(np.abs(z))
    critical = _normal().isf(alpha / 2)
    return lift_arrays(rate_c, rate_c * (1 - rate_c) / n_c, rate_t, rate_t * (1 - rate_t) / n_t,
                       critical, p_value)


def _sample_variance(n: np.ndarray, total: np.ndarray, squares: np.ndarray) -> np.ndarray:
    return np.maximum((squares - total**2 / n) / (n - 1), 0.0)


def welch_arrays(mean_c: Any, variance_c: Any, n_c: Any, mean_t: Any, variance_t: Any, n_t: Any,
                 alpha: float = DEFAULT_ALPHA) -> LiftArrays:
    """Welch's t-test from each arm's mean, sample variance (of a unit) and units."""
    from scipy import stats

    mean_c, variance_c, n_c, mean_t, variance_t, n_t = (
        np.asarray(a, dtype=float) for a in (mean_c, variance_c, n_c, mean_t, variance_t, n_t))
    var_c, var_t = variance_c / n_c, variance_t / n_t
    spread = var_c + var_t > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = (var_c + var_t) ** 2 / (var_c**2 / (n_c - 1) + var_t**2 / (n_t - 1))
        tested = stats.ttest_ind_from_stats(mean_t, np.sqrt(variance_t), n_t, mean_c,
                                            np.sqrt(variance_c), n_c, equal_var=False)
    # Without spread in either arm the difference is exact: p is 0 or 1, the interval a point.
    p_value = np.where(spread, tested.pvalue, np.where(mean_t == mean_c, 1.0, 0.0))
    critical = np.where(spread, stats.t.isf(alpha / 2, np.where(spread, dof, 1.0)), 0.0)
    return lift_arrays(mean_c, var_c, mean_t, var_t, critical, p_value)


def mean_arrays(n_c: Any, total_c: Any, squares_c: Any, n_t: Any, total_t: Any, squares_t: Any,
                alpha: float = DEFAULT_ALPHA) -> LiftArrays:
    """Welch's t-test from each arm's sums of y and y**2."""
    n_c, total_c, squares_c, n_t, total_t, squares_t = (
        np.asarray(a, dtype=float) for a in (n_c, total_c, squares_c, n_t, total_t, squares_t))
    return welch_arrays(total_c / n_c, _sample_variance(n_c, total_c, squares_c), n_c,
                        total_t / n_t, _sample_variance(n_t, total_t, squares_t), n_t, alpha)


def ratio_moments(n: Any, total: Any, squares: Any, denominator: Any, denominator_squares: Any,
                  cross: Any) -> tuple[np.ndarray, np.ndarray]:
    """An arm's ratio sum(y) / sum(d) and its delta-method variance:
    (s_y^2 - 2 r s_yd + r^2 s_d^2) / (n * mean(d)^2), the s's sample (co)variances per unit."""
    n, total, squares, den, den_sq, cross = (np.asarray(a, dtype=float) for a in (
        n, total, squares, denominator, denominator_squares, cross))
    ratio = total / den
    var_y = _sample_variance(n, total, squares)
    var_d = _sample_variance(n, den, den_sq)
    cov_yd = (cross - total * den / n) / (n - 1)
    variance = np.maximum(var_y - 2 * ratio * cov_yd + ratio**2 * var_d, 0.0) / (n * (den / n)**2)
    return ratio, variance


def ratio_arrays(control: tuple, treatment: tuple, alpha: float = DEFAULT_ALPHA) -> LiftArrays:
    """Delta-method z-test of two ratio metrics; each arm is (n, total, squares, denominator,
    denominator_squares, cross) as arrays."""
    ratio_c, var_c = ratio_moments(*control)
    ratio_t, var_t = ratio_moments(*treatment)
    se = np.sqrt(var_c + var_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (ratio_t - ratio_c) / se, 0.0)
    p_value = np.where(se > 0, 2 * _normal().sf(np.abs(z)), np.where(ratio_t == ratio_c, 1., 0.))
    return lift_arrays(ratio_c, var_c, ratio_t, var_t, _normal().isf(alpha / 2), p_value)


class CupedArrays(NamedTuple):
    lift: LiftArrays
    theta: np.ndarray
    variance_reduction: np.ndarray
    interval_width_ratio: np.ndarray


def cuped_arrays(control: tuple, treatment: tuple, alpha: float = DEFAULT_ALPHA) -> CupedArrays:
    """CUPED on a mean (or 0/1) metric; each arm is (n, total, squares, covariate,
    covariate_squares, covariate_cross) as arrays. Theta is pooled over both arms."""
    (n_c, y_c, yy_c, x_c, xx_c, xy_c), (n_t, y_t, yy_t, x_t, xx_t, xy_t) = (
        [np.asarray(a, dtype=float) for a in arm] for arm in (control, treatment))
    n = n_c + n_t
    pooled_var_x = _sample_variance(n, x_c + x_t, xx_c + xx_t)
    pooled_cov = (xy_c + xy_t - (x_c + x_t) * (y_c + y_t) / n) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(pooled_var_x > 0, pooled_cov / pooled_var_x, 0.0)
    overall_x = (x_c + x_t) / n

    def adjusted(arm_n, y, yy, x, xx, xy):
        var_y = _sample_variance(arm_n, y, yy)
        var_x = _sample_variance(arm_n, x, xx)
        cov = (xy - x * y / arm_n) / (arm_n - 1)
        mean = y / arm_n - theta * (x / arm_n - overall_x)
        return mean, np.maximum(var_y - 2 * theta * cov + theta**2 * var_x, 0.0), var_y

    mean_c, variance_c, plain_c = adjusted(n_c, y_c, yy_c, x_c, xx_c, xy_c)
    mean_t, variance_t, plain_t = adjusted(n_t, y_t, yy_t, x_t, xx_t, xy_t)
    lift = welch_arrays(mean_c, variance_c, n_c, mean_t, variance_t, n_t, alpha)
    plain = welch_arrays(y_c / n_c, plain_c, n_c, y_t / n_t, plain_t, n_t, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        reduction = np.where(plain.standard_error > 0,
                             1 - lift.standard_error**2 / plain.standard_error**2, 0.0)
        width = np.where(plain.absolute_upper > plain.absolute_lower,
                         (lift.absolute_upper - lift.absolute_lower)
                         / (plain.absolute_upper - plain.absolute_lower), 1.0)
    return CupedArrays(lift, theta, reduction, width)


def check_alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    return float(alpha)


def _check_arm(sums: VariantSums, kind: str) -> None:
    where = f"variant {sums.variant!r}"
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    least = 1 if kind == PROPORTION else 2
    if sums.units < least:
        raise InputError(f"{where}: units is {sums.units}; a {kind} metric needs at least "
                         f"{least} unit{'s' * (least > 1)} per variant")
    if kind == PROPORTION and (sums.total != sums.squares or not 0 <= sums.total <= sums.units):
        raise InputError(f"{where}: a proportion metric takes 0/1 values per unit (total "
                         f"{sums.total:g} of {sums.units} units, sum of squares {sums.squares:g})")
    if kind == RATIO and not sums.is_ratio:
        raise InputError(f"{where}: a ratio metric needs the denominator sums")
    if kind == RATIO and sums.denominator <= 0:
        raise InputError(f"{where}: the denominator sums to {sums.denominator:g}; the ratio is "
                         "undefined (no orders or sessions in this variant)")


def _arrays(control: VariantSums, treatment: VariantSums, kind: str, alpha: float) -> LiftArrays:
    if kind == PROPORTION:
        return proportion_arrays(control.units, control.total, treatment.units,
                                 treatment.total, alpha)
    if kind == MEAN:
        return mean_arrays(control.units, control.total, control.squares, treatment.units,
                           treatment.total, treatment.squares, alpha)
    return ratio_arrays(*[(s.units, s.total, s.squares, s.denominator, s.denominator_squares,
                           s.cross) for s in (control, treatment)], alpha)


def _flags(control: VariantSums, treatment: VariantSums, kind: str, lift: Lift) -> tuple:
    flags = []
    if kind == PROPORTION and control.total == 0 and treatment.total == 0:
        flags.append("no_conversions")
    if lift.relative is None:
        flags.append("control_zero")
    if lift.standard_error == 0:
        flags.append("zero_variance")
    return tuple(flags)


def compare(control: VariantSums, treatment: VariantSums, kind: str,
            alpha: float = DEFAULT_ALPHA) -> tuple[Lift, tuple[str, ...]]:
    """The treatment's lift over the control and flags for degenerate data.

    No conversions in either arm answers lift 0, p = 1, flagged `no_conversions`; a control at
    0 answers no relative lift (`control_zero`); no spread in either arm, `zero_variance`.
    Raises InputError for a variant with too few units, a ratio without denominator.
    """
    alpha = check_alpha(alpha)
    for arm in (control, treatment):
        _check_arm(arm, kind)
    lift = Lift.first(_arrays(control, treatment, kind, alpha))
    return lift, _flags(control, treatment, kind, lift)


def compare_cuped(control: VariantSums, treatment: VariantSums,
                  alpha: float = DEFAULT_ALPHA) -> CupedLift:
    """CUPED-adjusted lift of a mean or proportion metric (both arms carry covariate sums)."""
    alpha = check_alpha(alpha)
    for arm in (control, treatment):
        _check_arm(arm, MEAN)
        if not arm.has_covariate:
            raise InputError(f"variant {arm.variant!r}: CUPED needs the pre-period "
                             "(covariate) sums")
        if arm.is_ratio:
            raise InputError(f"variant {arm.variant!r}: CUPED is applied to mean and "
                             "proportion metrics only, not to ratio metrics")
    result = cuped_arrays(*[(s.units, s.total, s.squares, s.covariate, s.covariate_squares,
                             s.covariate_cross) for s in (control, treatment)], alpha)
    return CupedLift(Lift.first(result.lift), float(result.theta),
                     float(result.variance_reduction), float(result.interval_width_ratio))


def arm_value(sums: VariantSums, kind: str) -> float:
    """The variant's rate, mean or ratio."""
    if kind == RATIO:
        return sums.total / sums.denominator
    return sums.total / sums.units


def analyze_metric(sums: Mapping[str, VariantSums], control: str, kind: str, *,
                   metric: str = "metric", alpha: float = DEFAULT_ALPHA,
                   history: Sequence[Mapping[str, VariantSums]] | None = None,
                   planned_looks: int | None = None) -> MetricAnalysis:
    """Every variant against the control on one metric.

    Args:
        sums: {variant: sums of the metric over its units so far}.
        control: the control variant's name.
        kind: proportion, mean or ratio.
        alpha: two-sided significance level of the intervals and tests.
        history: for the sequential test, the cumulative sums at each earlier look (daily),
            oldest first; `sums` is the current look.
        planned_looks: the number of looks the experiment plans (its days); with `history`
            or alone (then this is look 1).

    Returns:
        A row per variant (the control first). CUPED is added when the sums carry the
        pre-period; the sequential test when `planned_looks` is given.
    """
    from tailor.experiments.bayes import probability_to_beat_control
    from tailor.experiments.sequential import sequential_test

    check_variants(sums, control)
    alpha = check_alpha(alpha)
    looks = [*(history or ()), sums]
    rows = [VariantResult(control, sums[control].units, arm_value(sums[control], kind))]
    for name, treatment in sums.items():
        if name == control:
            continue
        lift, flags = compare(sums[control], treatment, kind, alpha)
        cuped = None
        if treatment.has_covariate and kind != RATIO:
            cuped = compare_cuped(sums[control], treatment, alpha)
        sequential = None
        if planned_looks is not None:
            past = [compare(look[control], look[name], kind, alpha)[0] for look in looks[:-1]]
            steps = [*past, lift]
            sequential = sequential_test([step.absolute for step in steps],
                                         [step.standard_error**2 for step in steps],
                                         planned_looks=planned_looks, alpha=alpha)
        probability = probability_to_beat_control(sums[control], treatment, kind, lift)
        rows.append(VariantResult(name, treatment.units, arm_value(treatment, kind), lift,
                                  cuped, sequential, probability, flags))
    return MetricAnalysis(metric, kind, control, alpha, tuple(rows))
