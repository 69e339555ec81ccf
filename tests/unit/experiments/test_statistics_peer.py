"""The same experiment data analysed by Tailor and by Spotify's Confidence
(`spotify-confidence`, a test-only dependency): where the methods are the same the answers
are equal to rounding; where they differ, the difference is exactly the documented one.

GrowthBook's `gbstats` was the first choice; its only release line (0.8.0) requires
numpy < 2 and pandas < 2 and cannot be installed beside Tailor. docs/experiments.md gives a
one-off comparison with it run in a separate environment.

The documented differences (docs/experiments.md, "Comparison with a peer engine"):
- proportions, p-value: Tailor's z-test uses the pooled rate under the null, Confidence the
  unpooled variance. Same z numerator; z_tailor / z_confidence = se_unpooled / se_pooled.
  With equal arms the pooled variance is larger by (p_t - p_c)^2 / 2 per unit: for a 5% rate
  and a 10% lift the p-values differ by under 1% of their value.
- relative interval: Confidence divides the absolute interval by the control's value (the
  control's mean taken as known); Tailor uses the delta method for the ratio of two means,
  whose variance adds the control's uncertainty scaled by (1 + lift)^2: Tailor's half-width
  = Confidence's * sqrt((v_t + (1 + L)^2 v_c) / (v_t + v_c)); about 1 + L/2 wider when
  the arms' variances are alike (2.5% wider at a 5% lift), equal at L = 0.
- means: Welch's t against a z-test; at 20,000 units per arm the critical values differ by
  4e-5 of their value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tailor.experiments.statistics import compare, compare_cuped
from tailor.experiments.sums import unit_sums

confidence = pytest.importorskip("spotify_confidence")
pytestmark = pytest.mark.filterwarnings("ignore")  # Confidence's pandas deprecation notices

UNITS = 20_000


def _frame(sums: dict) -> pd.DataFrame:
    rows = [{"variant": name, "total": s.total, "squares": s.squares, "units": s.units,
             "covariate": s.covariate, "covariate_squares": s.covariate_squares,
             "covariate_cross": s.covariate_cross} for name, s in sums.items()]
    return pd.DataFrame(rows)


def _peer(sums: dict, absolute: bool, cuped: bool = False) -> pd.Series:
    common = dict(numerator_column="total", numerator_sum_squares_column="squares",
                  denominator_column="units", categorical_group_columns="variant",
                  interval_size=0.95)
    if cuped:
        test = confidence.ZTestLinreg(_frame(sums), feature_column="covariate",
                                      feature_sum_squares_column="covariate_squares",
                                      feature_cross_sum_column="covariate_cross", **common)
    else:
        test = confidence.ZTest(_frame(sums).drop(columns=["covariate", "covariate_squares",
                                                           "covariate_cross"]), **common)
    return test.difference(level_1="control", level_2="treatment", absolute=absolute).iloc[0]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    treated = np.r_[np.zeros(UNITS, bool), np.ones(UNITS, bool)]
    pre = rng.gamma(2.0, 10.0, 2 * UNITS)
    return {"variant": np.where(treated, "treatment", "control"),
            "conversion": (rng.random(2 * UNITS) < np.where(treated, 0.0525, 0.05)).astype(int),
            "revenue": 0.6 * pre + rng.gamma(2.0, 5.0, 2 * UNITS) + 0.3 * treated,
            "pre_revenue": pre}


def test_conversion_agrees_with_confidence(data) -> None:
    sums = unit_sums(data["variant"], data["conversion"])
    lift, _ = compare(sums["control"], sums["treatment"], "proportion")
    absolute, relative = _peer(sums, absolute=True), _peer(sums, absolute=False)
    # The same estimator and the same (Wald, unpooled) absolute interval.
    assert lift.relative == pytest.approx(relative["difference"], rel=1e-12)
    assert (lift.absolute_lower, lift.absolute_upper) == pytest.approx(
        (absolute["ci_lower"], absolute["ci_upper"]), rel=1e-9)
    # The p-values: pooled against unpooled standard error, and nothing else.
    rate_c, rate_t = (sums[v].total / sums[v].units for v in ("control", "treatment"))
    pooled = (sums["control"].total + sums["treatment"].total) / (2 * UNITS)
    se_pooled = np.sqrt(pooled * (1 - pooled) * 2 / UNITS)
    se_unpooled = np.sqrt((rate_c * (1 - rate_c) + rate_t * (1 - rate_t)) / UNITS)
    z_tailor, z_peer = stats.norm.isf(lift.p_value / 2), stats.norm.isf(absolute["p-value"] / 2)
    assert z_tailor / z_peer == pytest.approx(se_unpooled / se_pooled, rel=1e-6)
    assert lift.p_value == pytest.approx(absolute["p-value"], rel=0.01)
    # The relative interval: the delta method's control term, and nothing else.
    var_c, var_t = rate_c * (1 - rate_c) / UNITS, rate_t * (1 - rate_t) / UNITS
    ratio = rate_t / rate_c
    widening = np.sqrt((var_t + ratio**2 * var_c) / (var_t + var_c))
    peer_half = (relative["ci_upper"] - relative["ci_lower"]) / 2
    assert (lift.relative_upper - lift.relative_lower) / 2 == pytest.approx(peer_half * widening,
                                                                            rel=1e-9)
    assert lift.relative_lower < relative["ci_lower"] and relative["ci_upper"] < lift.relative_upper


def test_revenue_per_visitor_agrees_with_confidence(data) -> None:
    sums = unit_sums(data["variant"], data["revenue"])
    lift, _ = compare(sums["control"], sums["treatment"], "mean")
    absolute = _peer(sums, absolute=True)
    assert lift.absolute == pytest.approx(absolute["difference"], rel=1e-12)
    # Welch's t against z at 40,000 units: critical values 4e-5 apart.
    assert (lift.absolute_lower, lift.absolute_upper) == pytest.approx(
        (absolute["ci_lower"], absolute["ci_upper"]), rel=1e-4)
    assert lift.p_value == pytest.approx(absolute["p-value"], rel=1e-3)


def test_cuped_agrees_with_confidences_regression_adjustment(data) -> None:
    sums = unit_sums(data["variant"], data["revenue"], covariates=data["pre_revenue"])
    cuped = compare_cuped(sums["control"], sums["treatment"])
    peer = _peer(sums, absolute=True, cuped=True)
    assert cuped.lift.absolute == pytest.approx(peer["difference"], rel=1e-9)
    # Confidence takes the covariate's moments over n, Tailor over n - 1.
    assert (cuped.lift.absolute_lower, cuped.lift.absolute_upper) == pytest.approx(
        (peer["ci_lower"], peer["ci_upper"]), rel=1e-4)
    assert cuped.lift.p_value == pytest.approx(peer["p-value"], rel=0.01)
    assert cuped.interval_width_ratio < 0.9


GBSTATS_SCRIPT = '''
import json, sys
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import (ProportionStatistic, RatioStatistic,
    RegressionAdjustedStatistic, SampleMeanStatistic, compute_theta)

sums = json.load(open(sys.argv[1]))

def mean(s, prefix=""):
    total, squares = ((s["total"], s["squares"]) if not prefix
                      else (s[prefix], s[prefix + "_squares"]))
    return SampleMeanStatistic(n=s["units"], sum=total, sum_squares=squares)

def adjusted(s):
    return RegressionAdjustedStatistic(n=s["units"], post_statistic=mean(s),
        pre_statistic=mean(s, "covariate"), post_pre_sum_of_products=s["covariate_cross"],
        theta=0)

def ratio(s):
    return RatioStatistic(n=s["units"], m_statistic=mean(s),
        d_statistic=mean(s, "denominator"), m_d_sum_of_products=s["cross"])

arms = {
    "conversion": [ProportionStatistic(n=s["units"], sum=s["total"])
                   for s in sums["conversion"]],
    "revenue_per_visitor": [mean(s) for s in sums["revenue_per_visitor"]],
    "aov": [ratio(s) for s in sums["aov"]],
    "cuped": [adjusted(s) for s in sums["revenue_per_visitor"]],
}
theta = compute_theta(*arms["cuped"])
for arm in arms["cuped"]:
    arm.theta = theta
out = {}
for name, (control, treatment) in arms.items():
    for kind in ("relative", "absolute"):
        result = TwoSidedTTest(control, treatment, FrequentistConfig(
            difference_type=kind, alpha=0.05)).compute_result()
        out[name + "_" + kind] = [result.expected, *result.ci, result.p_value]
print(json.dumps(out))
'''


def test_agrees_with_gbstats_run_in_its_own_environment(data, tmp_path) -> None:
    """GrowthBook's gbstats 0.8.0 (numpy < 2, pandas < 2) in a separate interpreter named by
    TAILOR_GBSTATS_PYTHON (`python3.11 -m venv /tmp/gb && /tmp/gb/bin/pip install
    gbstats==0.8.0`); skipped without it.

    gbstats uses the same delta method for the relative lift, Welch's t throughout (Tailor:
    z for proportions and ratios; the critical values differ by 4e-5 at these sizes), the
    unpooled variance for proportions, and for CUPED's relative lift divides by the raw
    control mean where Tailor divides by the CUPED-adjusted one.
    """
    import json
    import os
    import subprocess

    python = os.environ.get("TAILOR_GBSTATS_PYTHON")
    if not python:
        pytest.skip("TAILOR_GBSTATS_PYTHON is not set (gbstats needs numpy < 2: own venv)")
    variants = data["variant"]
    orders = (data["conversion"] * 2).astype(float)
    metrics = {"conversion": unit_sums(variants, data["conversion"]),
               "revenue_per_visitor": unit_sums(variants, data["revenue"],
                                                covariates=data["pre_revenue"]),
               "aov": unit_sums(variants, data["revenue"] * data["conversion"],
                                denominators=orders)}
    path = tmp_path / "sums.json"
    path.write_text(json.dumps({name: [vars(s) for s in sums.values()]
                                for name, sums in metrics.items()}))
    done = subprocess.run([python, "-c", GBSTATS_SCRIPT, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    peer = json.loads(done.stdout)
    for name, kind in (("conversion", "proportion"), ("revenue_per_visitor", "mean"),
                       ("aov", "ratio")):
        sums = metrics[name]
        lift, _ = compare(sums["control"], sums["treatment"], kind)
        relative, rel_low, rel_high, _ = peer[name + "_relative"]
        absolute, abs_low, abs_high, p_value = peer[name + "_absolute"]
        assert lift.relative == pytest.approx(relative, rel=1e-9)
        assert lift.absolute == pytest.approx(absolute, rel=1e-9)
        # Same standard errors; critical values z against Welch's t (4e-5 apart).
        assert lift.relative_upper - lift.relative_lower == pytest.approx(rel_high - rel_low,
                                                                          rel=1e-4)
        assert lift.absolute_upper - lift.absolute_lower == pytest.approx(abs_high - abs_low,
                                                                          rel=1e-4)
        # Pooled against unpooled variance for the proportion; t against z elsewhere.
        assert lift.p_value == pytest.approx(p_value, rel=0.01 if kind == "proportion" else 1e-3)
    sums = metrics["revenue_per_visitor"]
    cuped = compare_cuped(sums["control"], sums["treatment"])
    absolute, abs_low, abs_high, p_value = peer["cuped_absolute"]
    assert cuped.lift.absolute == pytest.approx(absolute, rel=1e-9)
    assert (cuped.lift.absolute_lower, cuped.lift.absolute_upper) == pytest.approx(
        (abs_low, abs_high), rel=1e-4)
    assert cuped.lift.p_value == pytest.approx(p_value, rel=1e-3)
    raw_control = sums["control"].total / sums["control"].units
    adjusted_control = cuped.lift.absolute / cuped.lift.relative
    assert cuped.lift.relative * adjusted_control == pytest.approx(
        peer["cuped_relative"][0] * raw_control, rel=1e-9)
