"""The analysis's metrics: each one's unit-level values from the attribution, and their
per-variant sums, cumulative by the day of the units' first exposure (the daily looks).

Reads an attribution's unit frame (`tailor.experiments.attribution.UNIT_COLUMNS`); writes
nothing. A metric is a kind of `tailor.experiments.statistics` (proportion, mean, ratio) and
the columns that give its value y per unit, its denominator d (ratio metrics) and its
pre-period covariate x (CUPED, mean and proportion metrics):

| metric | kind | y | d | x |
|---|---|---|---|---|
| conversion | proportion | 1 if the unit bought within the window | | 1 if it bought before |
| revenue_per_visitor | mean | revenue within the window | | pre-period revenue |
| aov | ratio | revenue | orders | |
| click_through | proportion | 1 if it clicked (or viewed) a product of a slate it was shown | | |
| bounce_rate | ratio | bounced exposed sessions | exposed sessions | |
| email_ctr | ratio | mails clicked | mails sent | |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tailor.experiments.statistics import (
    MEAN, PROPORTION, RATIO, Lift, MetricAnalysis, VariantResult,
)
from tailor.experiments.sums import VariantSums

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is computed from the units."""

    name: str
    kind: str
    higher_is_better: bool = True
    campaign: bool = True       # defined for a campaign experiment
    surface: bool = True        # defined for a serving surface (homepage, ...)


SPECS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("conversion", PROPORTION),
    MetricSpec("revenue_per_visitor", MEAN),
    MetricSpec("aov", RATIO),
    MetricSpec("click_through", PROPORTION, campaign=False),
    MetricSpec("bounce_rate", RATIO, higher_is_better=False, campaign=False),
    MetricSpec("email_ctr", RATIO, surface=False),
)}
# Analysed for every experiment besides its own metrics: the brief's headline figures.
ALWAYS = ("conversion", "aov", "revenue_per_visitor")


@dataclass(frozen=True)
class UnitValues:
    """One metric's per-unit arrays (numpy float64)."""

    values: np.ndarray
    denominators: np.ndarray | None = None
    covariates: np.ndarray | None = None


def unit_values(units: pd.DataFrame, metric: str, with_covariate: bool) -> UnitValues:
    """y, d and x of `metric` for each unit (see the module's table)."""
    def column(name: str) -> np.ndarray:
        return units[name].to_numpy(dtype=np.float64)

    if metric == "conversion":
        return UnitValues(column("converted"),
                          covariates=column("pre_converted") if with_covariate else None)
    if metric == "revenue_per_visitor":
        return UnitValues(column("revenue"),
                          covariates=column("pre_revenue") if with_covariate else None)
    if metric == "aov":
        return UnitValues(column("revenue"), denominators=column("orders"))
    if metric == "click_through":
        return UnitValues((column("clicks") > 0).astype(np.float64))
    if metric == "bounce_rate":
        return UnitValues(column("bounced_sessions"), denominators=column("sessions"))
    if metric == "email_ctr":
        mails = column("exposures")
        return UnitValues(np.minimum(column("clicked_mails"), mails), denominators=mails)
    raise KeyError(metric)


def daily_sums(codes: np.ndarray, days: np.ndarray, variants: list[str], day_count: int,
               metric: UnitValues) -> list[dict[str, VariantSums]]:
    """Per look (day), each variant's sums over the units first exposed by the end of that
    day: one bincount per sum over (day, variant) codes, then a cumulative sum over days.

    Args:
        codes: each unit's variant index into `variants`.
        days: each unit's day index (0 = the first day).
        variants: the variants' names, in the definition's order.
        day_count: the number of looks.
        metric: the metric's unit values.
    """
    count = len(variants)
    cells = days * count + codes
    size = day_count * count

    def cumulative(weights: np.ndarray | None) -> np.ndarray:
        summed = np.bincount(cells, weights=weights, minlength=size).reshape(day_count, count)
        return np.cumsum(summed, axis=0)

    y = metric.values
    sums: dict[str, np.ndarray | None] = {"total": cumulative(y), "squares": cumulative(y * y)}
    d, x = metric.denominators, metric.covariates
    sums.update(denominator=None, denominator_squares=None, cross=None, covariate=None,
                covariate_squares=None, covariate_cross=None)
    if d is not None:
        sums.update(denominator=cumulative(d), denominator_squares=cumulative(d * d),
                    cross=cumulative(y * d))
    if x is not None:
        sums.update(covariate=cumulative(x), covariate_squares=cumulative(x * x),
                    covariate_cross=cumulative(x * y))
    units = cumulative(None).astype(np.int64)
    def fields(day: int, index: int) -> dict[str, Any]:
        return {key: None if array is None else float(array[day, index])
                for key, array in sums.items()}

    return [{name: VariantSums(name, int(units[day, index]), **fields(day, index))
             for index, name in enumerate(variants)}
            for day in range(day_count)]


def treatment_rows(analysis: MetricAnalysis) -> list[tuple[VariantResult, Lift]]:
    """Each treatment's row of a metric's analysis with its lift (the control's has none)."""
    return [(row, row.lift) for row in analysis.variants if row.lift is not None]


def look_is_valid(sums: dict[str, VariantSums], kind: str) -> bool:
    """Whether a look can be tested: every arm has the units the kind needs and, for a
    ratio, a denominator above 0."""
    least = 1 if kind == PROPORTION else 2
    return all(arm.units >= least and (kind != RATIO or (arm.denominator or 0) > 0)
               for arm in sums.values())


def problem_of(sums: dict[str, VariantSums], kind: str, metric: str) -> str | None:
    """Why the current look cannot be tested, in words (None when it can)."""
    least = 1 if kind == PROPORTION else 2
    few = [name for name, arm in sums.items() if arm.units < least]
    if few:
        return f"{metric}: fewer than {least} units in {', '.join(few)}"
    if kind == RATIO:
        empty = [name for name, arm in sums.items() if not (arm.denominator or 0) > 0]
        if empty:
            denominator = {"aov": "no orders", "bounce_rate": "no exposed sessions observed",
                           "email_ctr": "no mails"}.get(metric, "a zero denominator")
            return f"{metric}: {denominator} in {', '.join(empty)}, so the ratio is undefined"
    return None


def arm_values(sums: dict[str, VariantSums], kind: str) -> dict[str, float | None]:
    """Each variant's rate, mean or ratio (None where undefined)."""
    values: dict[str, Any] = {}
    for name, arm in sums.items():
        if kind == RATIO:
            values[name] = arm.total / arm.denominator if arm.denominator else None
        else:
            values[name] = arm.total / arm.units if arm.units else None
    return values
