"""Degenerate and bad input: a well-defined, flagged answer where one exists, else an
`InputError` that names the field."""

from __future__ import annotations

import numpy as np
import pytest

from tailor.errors import InputError
from tailor.experiments.bayes import proportion_probability
from tailor.experiments.corrections import adjust_p_values
from tailor.experiments.sequential import sequential_test
from tailor.experiments.srm import sample_ratio_mismatch
from tailor.experiments.statistics import analyze_metric, compare, compare_cuped
from tailor.experiments.sums import VariantSums, unit_sums


def test_no_conversions_in_either_arm_is_lift_zero_p_one_flagged() -> None:
    lift, flags = compare(VariantSums.proportion("a", 500, 0), VariantSums.proportion("b", 480, 0),
                          "proportion")
    assert (lift.absolute, lift.p_value, lift.relative) == (0.0, 1.0, None)
    assert set(flags) == {"no_conversions", "control_zero", "zero_variance"}
    # Beta(1, b_t) against Beta(1, b_c): P(X_t > X_c) = b_c / (b_c + b_t) exactly.
    assert proportion_probability(500, 0, 480, 0) == pytest.approx(501 / (501 + 481), rel=1e-9)


def test_a_control_at_zero_gives_no_relative_lift_but_an_absolute_one() -> None:
    lift, flags = compare(VariantSums.proportion("a", 500, 0), VariantSums.proportion("b", 500, 9),
                          "proportion")
    assert lift.absolute == pytest.approx(9 / 500)
    assert lift.relative is None and lift.relative_lower is None
    assert "control_zero" in flags and lift.p_value < 0.01


def test_constant_values_are_exact_differences() -> None:
    same = unit_sums(np.repeat(["a", "b"], 5), np.full(10, 3.0))
    lift, flags = compare(same["a"], same["b"], "mean")
    assert lift.p_value == 1.0 and "zero_variance" in flags
    apart = unit_sums(np.repeat(["a", "b"], 5), np.r_[np.full(5, 3.0), np.full(5, 4.0)])
    lift, _ = compare(apart["a"], apart["b"], "mean")
    assert lift.p_value == 0.0 and (lift.absolute_lower, lift.absolute_upper) == (1.0, 1.0)


@pytest.mark.parametrize("units, kind, message", [
    (0, "proportion", "variant 'b': units is 0"),
    (1, "mean", "variant 'b': units is 1"),
])
def test_a_variant_without_enough_units_is_refused(units, kind, message) -> None:
    control = VariantSums("a", 10, 4.0, 4.0)
    with pytest.raises(InputError, match=message):
        compare(control, VariantSums("b", units, 0.0, 0.0), kind)


def test_the_unit_arrays_are_checked_by_name() -> None:
    variants = np.repeat(["a", "b"], 3)
    with pytest.raises(InputError, match="covariates: 5 values for 6 units"):
        unit_sums(variants, np.ones(6), covariates=np.ones(5))
    with pytest.raises(InputError, match="values: 1 values are missing"):
        unit_sums(variants, np.r_[np.ones(5), np.nan])
    with pytest.raises(InputError, match="denominators: a unit's denominator is negative"):
        unit_sums(variants, np.ones(6), denominators=-np.ones(6))
    with pytest.raises(InputError, match="variants: units in variants not in the definition"):
        unit_sums(variants, np.ones(6), variant_names=["a"])


def test_a_definition_variant_without_units_is_reported_with_zero_units() -> None:
    sums = unit_sums(np.repeat(["a", "b"], 3), np.ones(6), variant_names=["a", "b", "c"])
    assert [s.units for s in sums.values()] == [3, 3, 0]


def test_sums_of_two_days_are_the_sums_of_both() -> None:
    rng = np.random.default_rng(0)
    values, orders = rng.gamma(2, 3, 100), rng.poisson(1, 100).astype(float)
    whole = VariantSums.from_values("a", values, denominators=orders)
    halves = (VariantSums.from_values("a", values[:40], denominators=orders[:40])
              + VariantSums.from_values("a", values[40:], denominators=orders[40:]))
    assert halves.units == whole.units
    assert halves.cross == pytest.approx(whole.cross) and halves.squares == pytest.approx(
        whole.squares)


@pytest.mark.parametrize("arms, kind, message", [
    ((VariantSums("a", 10, 4.0, 4.0), VariantSums("b", 10, 5.0, 9.0)), "proportion",
     "a proportion metric takes 0/1 values"),
    ((VariantSums("a", 10, 4.0, 8.0), VariantSums("b", 10, 5.0, 9.0)), "ratio",
     "a ratio metric needs the denominator sums"),
    ((VariantSums("a", 10, 4.0, 8.0, 0.0, 0.0, 0.0), VariantSums("b", 10, 5.0, 9.0, 3.0, 3.0,
                                                                 5.0)),
     "ratio", "variant 'a': the denominator sums to 0"),
    ((VariantSums("a", 10, 4.0, 8.0), VariantSums("b", 10, 5.0, 9.0)), "median",
     "kind must be one of"),
])
def test_the_metric_shape_is_checked(arms, kind, message) -> None:
    with pytest.raises(InputError, match=message):
        compare(*arms, kind)


def test_cuped_needs_the_pre_period_and_a_mean_metric() -> None:
    with pytest.raises(InputError, match="CUPED needs the pre-period"):
        compare_cuped(VariantSums("a", 10, 4.0, 8.0), VariantSums("b", 10, 5.0, 9.0))


def test_bad_sums_and_settings_are_refused() -> None:
    with pytest.raises(InputError, match="total must be a finite number"):
        VariantSums("a", 10, float("nan"), 1.0)
    with pytest.raises(InputError, match="conversions must be between 0 and units"):
        VariantSums.proportion("a", 10, 11)
    with pytest.raises(InputError, match="alpha must be between 0 and 1"):
        compare(VariantSums.proportion("a", 10, 1), VariantSums.proportion("b", 10, 2),
                "proportion", alpha=1.5)
    sums = {"a": VariantSums.proportion("a", 10, 1), "b": VariantSums.proportion("b", 10, 2)}
    with pytest.raises(InputError, match="control: 'z' is not among the variants"):
        analyze_metric(sums, "z", "proportion")


def test_the_sequential_test_checks_its_looks() -> None:
    with pytest.raises(InputError, match="one value of each per look"):
        sequential_test([0.1, 0.2], [0.01], planned_looks=14)
    with pytest.raises(InputError, match="variances: must be >= 0"):
        sequential_test([0.1], [-0.01], planned_looks=14)
    with pytest.raises(InputError, match="planned_looks: must be a whole number >= 1"):
        sequential_test([0.1], [0.01], planned_looks=0)
    nothing_yet = sequential_test([0.0, 0.0], [0.0, 0.0], planned_looks=14)
    assert nothing_yet.p_value == 1.0 and "zero_variance" in nothing_yet.flags


def test_the_sample_ratio_check_and_the_correction_check_their_input() -> None:
    with pytest.raises(InputError, match="weights: must be > 0 and sum to 1"):
        sample_ratio_mismatch({"a": 10, "b": 10}, {"a": 0.5, "b": 0.6})
    with pytest.raises(InputError, match="variants differ"):
        sample_ratio_mismatch({"a": 10, "c": 10}, {"a": 0.5, "b": 0.5})
    assert sample_ratio_mismatch({"a": 0, "b": 0}, {"a": 0.5, "b": 0.5}).p_value == 1.0
    with pytest.raises(InputError, match=r"p_values\['aov'\]: must be a number in \[0, 1\]"):
        adjust_p_values({"conversion": 0.01, "aov": 1.2})
    with pytest.raises(InputError, match="method must be one of"):
        adjust_p_values({"conversion": 0.01}, "bonferroni-ish")
