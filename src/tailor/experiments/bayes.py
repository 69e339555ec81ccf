"""The Bayesian probability that a variant beats the control on one metric.

Reads per-variant sums; writes nothing. Proportions: each arm's rate has a Beta(1 + x,
1 + n - x) posterior (uniform prior), and P(rate_t > rate_c) is the exact finite sum for two
Beta variables (a sum of as many terms as the smaller arm has conversions, plus one; above
`EXACT_TERMS_LIMIT` terms the normal approximation of the two posteriors takes over: at
100,000 conversions the two differ by under 1e-6).
Means and ratios: the normal approximation with a flat prior, P = Phi(lift / standard error).
"Beats" means a higher value; for a metric where lower is better (bounce rate) read
1 - probability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tailor.errors import InputError

if TYPE_CHECKING:
    from tailor.experiments.statistics import Lift
    from tailor.experiments.sums import VariantSums

EXACT_TERMS_LIMIT = 100_000


def beta_probability_greater(a_t: float, b_t: float, a_c: float, b_c: float) -> float:
    """P(X_t > X_c) for independent X_t ~ Beta(a_t, b_t), X_c ~ Beta(a_c, b_c), a_t integer:
    sum over i < a_t of B(a_c + i, b_c + b_t) / ((b_t + i) B(1 + i, b_t) B(a_c, b_c))."""
    from scipy.special import betaln, logsumexp

    terms = np.arange(int(a_t), dtype=float)
    log_terms = (betaln(a_c + terms, b_c + b_t) - np.log(b_t + terms)
                 - betaln(1 + terms, b_t) - betaln(a_c, b_c))
    return float(min(max(np.exp(logsumexp(log_terms)), 0.0), 1.0))


def proportion_probability(units_c: int, conversions_c: int, units_t: int,
                           conversions_t: int) -> float:
    """P(rate_t > rate_c) under uniform priors, exact (or normal beyond the term limit)."""
    for field, units, conversions in (("control", units_c, conversions_c),
                                      ("treatment", units_t, conversions_t)):
        if units < 1 or not 0 <= conversions <= units:
            raise InputError(f"{field}: need units >= 1 and 0 <= conversions <= units, got "
                             f"{conversions} of {units}")
    a_c, b_c = 1 + conversions_c, 1 + units_c - conversions_c
    a_t, b_t = 1 + conversions_t, 1 + units_t - conversions_t
    if min(a_t, a_c) > EXACT_TERMS_LIMIT:
        mean_c, mean_t = a_c / (a_c + b_c), a_t / (a_t + b_t)
        var_c = mean_c * (1 - mean_c) / (a_c + b_c + 1)
        var_t = mean_t * (1 - mean_t) / (a_t + b_t + 1)
        return normal_probability(mean_t - mean_c, float(np.sqrt(var_c + var_t)))
    if a_t <= a_c:
        return beta_probability_greater(a_t, b_t, a_c, b_c)
    return 1.0 - beta_probability_greater(a_c, b_c, a_t, b_t)


def normal_probability(lift: float, standard_error: float) -> float:
    """Phi(lift / standard error); 1, 0 or 1/2 when the standard error is 0."""
    if standard_error > 0:
        from scipy import stats

        return float(stats.norm.cdf(lift / standard_error))
    return 1.0 if lift > 0 else 0.0 if lift < 0 else 0.5


def probability_to_beat_control(control: VariantSums, treatment: VariantSums, kind: str,
                                lift: Lift) -> float:
    """P(treatment's value > control's) for a metric of `kind`, given the frequentist lift."""
    if kind == "proportion":
        return proportion_probability(control.units, int(control.total), treatment.units,
                                      int(treatment.total))
    return normal_probability(lift.absolute, lift.standard_error)
