"""Sequential testing: p-values and confidence sequences that stay valid when the
experiment is looked at every day.

Reads a difference's estimate and its variance at each look so far (cumulative data,
oldest first); writes nothing.

The statistic is the normal-mixture sequential probability ratio (mSPRT, Robbins 1970;
Johari et al. 2017): with the estimate D_j, its variance V_j and a N(0, tau^2) mixing
distribution on the true difference,

    Lambda_j = sqrt(V_j / (V_j + tau^2)) * exp(D_j^2 tau^2 / (2 V_j (V_j + tau^2))).

Mixing variance: tau^2 = rho * V_K, the variance the difference will have at the planned
last look K (extrapolated from the current look k as V_k * k / K: each day brings as many
units as the one before), rho = `DEFAULT_RHO` = 1. That is a prior whose spread equals the
standard error at the end: effects of the size the experiment can resolve.

Two p-values come from it:
- `always_valid_p_value` = min(1, 1 / max_j Lambda_j) (Ville's inequality): valid under any
  number of looks at any times, beyond the plan too; conservative when the looks are few
  (daily looks for 14 days keep its false-positive rate below 0.1% at alpha 0.05).
- `p_value` = P_null(max over the K planned looks of Lambda >= the largest Lambda seen so
  far), computed exactly for K equally spaced looks by recursive numerical integration of
  the Brownian path between looks (Armitage, McPherson & Rowe, 1969; Simpson's rule). It
  spends all of alpha over the plan: looking every day up to K and stopping at the first
  p_value <= alpha has a false-positive rate of alpha, not more. The boundary it implies is
  O'Brien-Fleming-like (z = 5.37 at the first of 14 looks, 2.26 at the last). Looks beyond
  K fall back on the always-valid p-value (flag `beyond_plan`).
The confidence sequence at look k is D_k +- sqrt(V_k) * b_k, b_k the z-boundary of the
threshold; it covers the true difference at all looks at once with probability 1 - alpha.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from tailor.errors import InputError

DEFAULT_RHO = 1.0
_POINTS_PER_SD = 6  # Simpson points per standard deviation of a step: errors < 1e-6
_EXACT_LOG_LAMBDA_LIMIT = 25.0


def z_boundaries(log_threshold: float, information: np.ndarray) -> np.ndarray:
    """|z| at or above which Lambda >= exp(log_threshold), for u = tau^2 / V at each look."""
    u = np.asarray(information, dtype=float)
    squared = (1 + u) / u * (2 * log_threshold + np.log1p(u))
    return np.sqrt(np.maximum(squared, 0.0))


def crossing_probability(boundaries: Any, fractions: Any) -> float:
    """P(|Z_k| >= boundaries[k] at some look k) under the null, two-sided; Z_k the z-score
    at information fraction fractions[k] (increasing, > 0) of a Brownian path.

    Recursive integration on the score scale S_k = Z_k sqrt(t_k): the density of the paths
    not yet stopped, carried from look to look by the normal kernel of the increment,
    Simpson's rule on an odd grid spanning each look's continuation region exactly.
    """
    bounds, times = np.asarray(boundaries, float), np.asarray(fractions, float)
    if bounds.shape != times.shape or bounds.ndim != 1 or len(bounds) == 0:
        raise InputError("boundaries and fractions: need two 1-D arrays of one length")
    if times[0] <= 0 or np.any(np.diff(times) <= 0):
        raise InputError("fractions: must be positive and increasing")
    edges = bounds * np.sqrt(times)
    steps = np.diff(np.concatenate([[0.0], times]))
    points = values = weights = None
    for look, (edge, step) in enumerate(zip(edges, steps)):
        if edge <= 0:
            return 1.0
        scale = np.sqrt(np.append(steps[look + 1:look + 2], step).min())
        count = 2 * int(np.ceil(edge / (scale / _POINTS_PER_SD))) + 1
        grid = np.linspace(-edge, edge, count)
        if look == 0:
            density = np.exp(-grid**2 / (2 * step)) / np.sqrt(2 * np.pi * step)
        else:
            kernel = np.exp(-(grid[:, None] - points[None, :])**2 / (2 * step))
            density = kernel @ (weights * values) / np.sqrt(2 * np.pi * step)
        points, values = grid, density
        weights = np.ones(count)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        weights *= (grid[1] - grid[0]) / 3
    survival = float(weights @ values)
    return min(max(1.0 - survival, 0.0), 1.0)


def _planned_information(planned_looks: int, rho: float) -> np.ndarray:
    return rho * np.arange(1, planned_looks + 1) / planned_looks


def _null_tail(log_threshold: float, planned_looks: int, rho: float) -> float:
    """P_null(max Lambda over the planned looks >= exp(log_threshold))."""
    information = _planned_information(planned_looks, rho)
    return crossing_probability(z_boundaries(log_threshold, information),
                                information / rho)


@lru_cache(maxsize=64)
def threshold(planned_looks: int, alpha: float, rho: float = DEFAULT_RHO) -> float:
    """log lambda_alpha: crossing it at any of the planned looks has null probability alpha."""
    from scipy.optimize import brentq

    low = -0.5 * np.log1p(rho)   # there the last look's boundary is 0: probability 1
    return float(brentq(lambda log_t: _null_tail(log_t, planned_looks, rho) - alpha,
                        low, np.log(1 / alpha), xtol=1e-7))


def calibrated_p_value(log_lambda_max: float, planned_looks: int,
                       rho: float = DEFAULT_RHO) -> float:
    """The plan-calibrated p-value of the largest log Lambda seen so far."""
    if log_lambda_max > _EXACT_LOG_LAMBDA_LIMIT:
        return float(np.exp(-log_lambda_max))  # below 1e-11: Ville's bound is enough
    return min(_null_tail(float(log_lambda_max), planned_looks, rho),
               float(np.exp(-log_lambda_max)))


class SequentialArrays(NamedTuple):
    """The sequential test at the last look, elementwise over experiments."""

    log_lambda_max: np.ndarray
    significant: np.ndarray         # calibrated to the plan (its p_value <= alpha)
    always_valid_p_value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    always_valid_lower: np.ndarray
    always_valid_upper: np.ndarray
    mixing_variance: np.ndarray


def sequential_arrays(differences: Any, variances: Any, planned_looks: int,
                      alpha: float = 0.05, rho: float = DEFAULT_RHO) -> SequentialArrays:
    """The test at the last of the looks on the last axis (shape (..., looks))."""
    difference = np.asarray(differences, dtype=float)
    variance = np.asarray(variances, dtype=float)
    look = difference.shape[-1]
    mixing = rho * variance[..., -1] * look / planned_looks
    with np.errstate(divide="ignore", invalid="ignore"):
        u = mixing[..., None] / variance
        z_squared = difference**2 / variance
        log_lambda = -0.5 * np.log1p(u) + z_squared * u / (2 * (1 + u))
    # A look without spread carries no evidence (log Lambda = -inf: never the maximum),
    # unless its difference is not 0 (then it is exact).
    log_lambda = np.where(variance > 0, log_lambda, np.where(difference == 0, -np.inf, np.inf))
    log_max = log_lambda.max(axis=-1)
    always_valid = np.minimum(1.0, np.exp(-log_max))
    within_plan = look <= planned_looks
    log_threshold = threshold(planned_looks, alpha, rho) if within_plan else np.log(1 / alpha)
    current_u = np.where(variance[..., -1] > 0, u[..., -1], 1.0)
    se = np.sqrt(variance[..., -1])
    half = se * z_boundaries(log_threshold, current_u)
    half_always = se * z_boundaries(np.log(1 / alpha), current_u)
    last = difference[..., -1]
    return SequentialArrays(log_max, log_max >= log_threshold, always_valid, last - half,
                            last + half, last - half_always, last + half_always, mixing)


@dataclass(frozen=True)
class SequentialResult:
    """The sequential test of one variant against the control at the current look."""

    look: int
    planned_looks: int
    p_value: float                  # calibrated to the plan; the decision
    always_valid_p_value: float     # valid under any looking, beyond the plan too
    lower: float                    # confidence sequence on the absolute lift
    upper: float
    always_valid_lower: float
    always_valid_upper: float
    significant: bool
    mixing_variance: float
    flags: tuple[str, ...] = ()


def sequential_test(differences: Any, variances: Any, *, planned_looks: int,
                    alpha: float = 0.05, rho: float = DEFAULT_RHO) -> SequentialResult:
    """The sequential test after the looks so far.

    Args:
        differences: the absolute lift estimated at each look (cumulative data), oldest first.
        variances: its variance at each look (the standard error squared).
        planned_looks: how many looks the plan has (the experiment's days when looking daily).
        alpha: the false-positive rate spent over the plan.
        rho: the mixing variance in units of the variance at the last planned look.
    """
    difference = np.asarray(differences, dtype=float)
    variance = np.asarray(variances, dtype=float)
    if difference.ndim != 1 or difference.shape != variance.shape or len(difference) == 0:
        raise InputError("differences and variances: need one value of each per look "
                         f"(got {difference.shape} and {variance.shape})")
    if not (np.all(np.isfinite(difference)) and np.all(np.isfinite(variance))):
        raise InputError("differences and variances: must be finite numbers")
    if np.any(variance < 0):
        raise InputError("variances: must be >= 0")
    if not isinstance(planned_looks, (int, np.integer)) or planned_looks < 1:
        raise InputError(f"planned_looks: must be a whole number >= 1, got {planned_looks!r}")
    if not 0 < alpha < 1 or not rho > 0:
        raise InputError(f"alpha must be in (0, 1) and rho > 0, got {alpha!r} and {rho!r}")
    flags = []
    if len(difference) > planned_looks:
        flags.append("beyond_plan")
    if variance[-1] == 0:
        flags.append("zero_variance")
    result = sequential_arrays(difference, variance, planned_looks, alpha, rho)
    always_valid = float(result.always_valid_p_value)
    p_value = (always_valid if "beyond_plan" in flags
               else calibrated_p_value(float(result.log_lambda_max), planned_looks, rho))
    return SequentialResult(len(difference), planned_looks, p_value, always_valid,
                            float(result.lower), float(result.upper),
                            float(result.always_valid_lower), float(result.always_valid_upper),
                            bool(result.significant), float(result.mixing_variance),
                            tuple(flags))
