"""The lifts, intervals and p-values against independent computations: scipy's and
statsmodels' tests on the unit arrays (Tailor works from sums), the delta method written as
a linearisation of the unit values, CUPED written as a regression adjustment on the units,
the Beta posterior by sampling, and simulated coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tailor.experiments.bayes import proportion_probability
from tailor.experiments.corrections import adjust_p_values
from tailor.experiments.srm import sample_ratio_mismatch
from tailor.experiments.statistics import (
    analyze_metric,
    compare,
    compare_cuped,
    lift_arrays,
    ratio_arrays,
)
from tailor.experiments.sums import VariantSums, unit_sums


def _two_arms(control: np.ndarray, treatment: np.ndarray, **columns) -> dict[str, VariantSums]:
    variants = np.repeat(["control", "treatment"], [len(control), len(treatment)])
    return unit_sums(variants, np.concatenate([control, treatment]), **columns)


def test_welch_matches_scipy_on_the_unit_arrays() -> None:
    rng = np.random.default_rng(1)
    control, treatment = rng.gamma(2.0, 10.0, 300), rng.gamma(2.2, 9.0, 450)
    sums = _two_arms(control, treatment)
    lift, flags = compare(sums["control"], sums["treatment"], "mean")
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert lift.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert lift.absolute == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
    assert (lift.absolute_lower, lift.absolute_upper) == pytest.approx(
        (interval.low, interval.high), rel=1e-9)
    assert flags == ()


def test_two_proportion_z_test_matches_statsmodels() -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    control, treatment = VariantSums.proportion("a", 4_000, 212), VariantSums.proportion(
        "b", 3_900, 251)
    lift, _ = compare(control, treatment, "proportion")
    _, p_value = proportions_ztest([251, 212], [3_900, 4_000])   # pooled under the null
    low, high = confint_proportions_2indep(251, 3_900, 212, 4_000, method="wald",
                                           compare="diff")
    assert lift.p_value == pytest.approx(p_value, rel=1e-9)
    assert (lift.absolute_lower, lift.absolute_upper) == pytest.approx((low, high), rel=1e-9)
    assert lift.relative == pytest.approx((251 / 3_900) / (212 / 4_000) - 1, rel=1e-12)


def test_relative_interval_is_the_delta_method_of_the_ratio_of_means() -> None:
    """The gradient of m_t / m_c - 1 taken numerically, applied to the arms' variances."""
    mean_c, var_c, mean_t, var_t = 4.0, 0.01, 4.3, 0.02
    lift = lift_arrays(mean_c, var_c, mean_t, var_t, 1.959964, 0.0)

    def ratio(t: float, c: float) -> float:
        return t / c - 1

    step = 1e-6
    d_t = (ratio(mean_t + step, mean_c) - ratio(mean_t - step, mean_c)) / (2 * step)
    d_c = (ratio(mean_t, mean_c + step) - ratio(mean_t, mean_c - step)) / (2 * step)
    se = np.sqrt(d_t**2 * var_t + d_c**2 * var_c)
    assert float(lift.relative_upper - lift.relative) == pytest.approx(1.959964 * se, rel=1e-6)


def test_ratio_metric_variance_is_the_linearised_unit_variance() -> None:
    """Delta method for revenue / orders: the variance of (y - r d) / mean(d) over the units,
    computed on the unit arrays, over n."""
    rng = np.random.default_rng(2)
    orders = rng.poisson(0.4, 2_000).astype(float)
    revenue = orders * rng.gamma(2.0, 25.0, 2_000)
    sums = VariantSums.from_values("a", revenue, denominators=orders)
    ratio = revenue.sum() / orders.sum()
    influence = (revenue - ratio * orders) / orders.mean()
    from tailor.experiments.statistics import ratio_moments

    estimate, variance = ratio_moments(sums.units, sums.total, sums.squares, sums.denominator,
                                       sums.denominator_squares, sums.cross)
    assert float(estimate) == pytest.approx(ratio, rel=1e-12)
    assert float(variance) == pytest.approx(influence.var(ddof=1) / len(influence), rel=1e-9)


def test_ratio_metric_intervals_cover_the_true_relative_lift_by_simulation() -> None:
    """2,000 simulated AOV comparisons with a true +10%: coverage near 95%, within 3 Monte
    Carlo standard errors (0.5 points each), and no coverage at all without the control's
    variance term would show here as under-coverage."""
    rng = np.random.default_rng(3)
    runs, units = 2_000, 400

    def arm(scale: float) -> tuple[np.ndarray, ...]:
        orders = rng.poisson(0.5, (runs, units)).astype(float)
        revenue = rng.gamma(np.maximum(2 * orders, 1e-12), 20.0 * scale) * (orders > 0)
        return (np.full(runs, float(units)), revenue.sum(1), (revenue**2).sum(1),
                orders.sum(1), (orders**2).sum(1), (revenue * orders).sum(1))

    lift = ratio_arrays(arm(1.0), arm(1.1))
    covered = np.mean((lift.relative_lower <= 0.1) & (0.1 <= lift.relative_upper))
    assert abs(covered - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / runs)


def test_cuped_equals_the_regression_adjustment_done_on_the_units() -> None:
    """y - theta (x - mean x), theta = cov(y, x) / var(x) over all units, then scipy's Welch."""
    rng = np.random.default_rng(4)
    pre = rng.gamma(2.0, 10.0, 1_200)
    outcome = 0.8 * pre + rng.normal(0, 8, 1_200) + np.r_[np.zeros(600), np.full(600, 2.0)]
    sums = _two_arms(outcome[:600], outcome[600:], covariates=np.r_[pre[:600], pre[600:]])
    cuped = compare_cuped(sums["control"], sums["treatment"])
    theta = np.cov(outcome, pre)[0, 1] / pre.var(ddof=1)
    adjusted = outcome - theta * (pre - pre.mean())
    reference = stats.ttest_ind(adjusted[600:], adjusted[:600], equal_var=False)
    assert cuped.theta == pytest.approx(theta, rel=1e-9)
    assert cuped.lift.absolute == pytest.approx(adjusted[600:].mean() - adjusted[:600].mean(),
                                                rel=1e-9)
    assert cuped.lift.p_value == pytest.approx(reference.pvalue, rel=1e-6)
    interval = reference.confidence_interval()
    assert (cuped.lift.absolute_lower, cuped.lift.absolute_upper) == pytest.approx(
        (interval.low, interval.high), rel=1e-6)


@pytest.mark.parametrize("correlation", [0.0, 0.5, 0.9])
def test_cuped_narrows_the_interval_by_the_correlation_and_only_then(correlation) -> None:
    rng = np.random.default_rng(5)
    pre = rng.normal(0, 1, 20_000)
    outcome = correlation * pre + np.sqrt(1 - correlation**2) * rng.normal(0, 1, 20_000)
    sums = _two_arms(outcome[:10_000], outcome[10_000:],
                     covariates=np.r_[pre[:10_000], pre[10_000:]])
    cuped = compare_cuped(sums["control"], sums["treatment"])
    sample_r = np.corrcoef(outcome, pre)[0, 1]
    assert cuped.interval_width_ratio == pytest.approx(np.sqrt(1 - sample_r**2), abs=0.01)
    if correlation == 0.0:
        assert 0.99 <= cuped.interval_width_ratio <= 1.0 + 1e-9
    else:
        assert cuped.interval_width_ratio < 0.9


def test_analyze_metric_adds_cuped_sequential_and_probability_rows() -> None:
    rng = np.random.default_rng(6)
    pre = rng.normal(10, 3, 4_000)
    outcome = pre + rng.normal(0, 1, 4_000)
    sums = _two_arms(outcome[:2_000], outcome[2_000:], covariates=np.r_[pre[:2_000],
                                                                        pre[2_000:]])
    analysis = analyze_metric(sums, "control", "mean", metric="rpv", planned_looks=14)
    control, treatment = analysis.variants
    assert control.lift is None and treatment.lift is not None
    assert treatment.cuped.interval_width_ratio < 0.5
    assert treatment.sequential.look == 1 and treatment.sequential.planned_looks == 14
    assert treatment.probability_to_beat_control == pytest.approx(
        stats.norm.cdf(treatment.lift.absolute / treatment.lift.standard_error))
    assert analysis.to_dict()["variants"][1]["lift"]["p_value"] == treatment.lift.p_value


@pytest.mark.parametrize("counts", [(30, 100, 25, 90), (520, 10_000, 580, 10_000),
                                    (0, 50, 3, 50)])
def test_probability_to_beat_control_matches_sampling_the_beta_posteriors(counts) -> None:
    conversions_c, units_c, conversions_t, units_t = counts
    rng = np.random.default_rng(7)
    draws_c = rng.beta(1 + conversions_c, 1 + units_c - conversions_c, 400_000)
    draws_t = rng.beta(1 + conversions_t, 1 + units_t - conversions_t, 400_000)
    sampled = np.mean(draws_t > draws_c)
    exact = proportion_probability(units_c, conversions_c, units_t, conversions_t)
    assert exact == pytest.approx(sampled, abs=4 * np.sqrt(0.25 / 400_000))


def test_sample_ratio_mismatch_is_pearsons_chi_square_by_hand() -> None:
    observed, weights = {"a": 10_000, "b": 10_600}, {"a": 0.5, "b": 0.5}
    check = sample_ratio_mismatch(observed, weights)
    expected = 20_600 / 2
    chi_square = sum((count - expected) ** 2 / expected for count in observed.values())
    assert check.chi_square == pytest.approx(chi_square)
    assert check.p_value == pytest.approx(stats.chi2.sf(chi_square, 1))
    assert check.mismatch and check.p_value < 0.001
    balanced = sample_ratio_mismatch({"a": 10_000, "b": 10_050}, weights)
    assert not balanced.mismatch
    uneven = sample_ratio_mismatch({"a": 9_000, "b": 1_000, "c": 10_000},
                                   {"a": 0.45, "b": 0.05, "c": 0.5})
    assert not uneven.mismatch


def test_holm_and_benjamini_hochberg_match_hand_and_scipy() -> None:
    p_values = {"conversion": 0.012, "aov": 0.04, "revenue_per_visitor": 0.03, "bounce": 0.5}
    holm = adjust_p_values(p_values, "holm")
    ordered = sorted(p_values, key=p_values.get)
    running, by_hand = 0.0, {}
    for rank, name in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p_values[name]))
        by_hand[name] = running
    assert holm == pytest.approx(by_hand)
    bh = adjust_p_values(p_values, "benjamini-hochberg")
    assert list(bh.values()) == pytest.approx(
        list(stats.false_discovery_control(list(p_values.values()))))


def test_above_the_exact_limit_the_normal_posterior_approximation_agrees() -> None:
    from tailor.experiments.bayes import EXACT_TERMS_LIMIT, beta_probability_greater

    units, conversions_c, conversions_t = 2_000_000, EXACT_TERMS_LIMIT + 10, EXACT_TERMS_LIMIT + 600
    approximate = proportion_probability(units, conversions_c, units, conversions_t)
    exact = 1 - beta_probability_greater(1 + conversions_c, 1 + units - conversions_c,
                                         1 + conversions_t, 1 + units - conversions_t)
    assert approximate == pytest.approx(exact, abs=1e-6)
    assert 0.5 < exact < 1


def test_analyze_metric_runs_the_sequential_test_over_the_daily_history() -> None:
    """Fourteen days of a +20% conversion lift: each day's cumulative sums are a look; the
    test at day 14 has seen all fourteen and the lift is found; the same data with no lift
    in the treatment is not flagged."""
    rng = np.random.default_rng(8)

    def days(rate_t: float) -> list[dict[str, VariantSums]]:
        looks, totals = [], {"control": [0, 0], "treatment": [0, 0]}
        for _ in range(14):
            for name, rate in (("control", 0.05), ("treatment", rate_t)):
                totals[name][0] += 2_000
                totals[name][1] += int(rng.binomial(2_000, rate))
            looks.append({name: VariantSums.proportion(name, *totals[name])
                          for name in totals})
        return looks

    found = days(0.06)
    analysis = analyze_metric(found[-1], "control", "proportion", history=found[:-1],
                              planned_looks=14)
    sequential = analysis.variants[1].sequential
    assert sequential.look == 14 and sequential.significant
    assert sequential.lower <= analysis.variants[1].lift.absolute <= sequential.upper
    null = days(0.05)
    quiet = analyze_metric(null[-1], "control", "proportion", history=null[:-1],
                           planned_looks=14).variants[1].sequential
    assert not quiet.significant and quiet.lower < 0 < quiet.upper
