"""The statistics of an experiment over 10M units: target <= 30 s on a 2-core machine.

The whole analysis of one experiment once the units are attributed (the attribution join is
timed by its own bench): the variant labels (strings) made categorical once, the per-variant
sums of three metrics (conversion; revenue per visitor with its pre-period for CUPED; AOV as
revenue / orders), each metric analysed (lifts, intervals, p-values, CUPED, the sequential
test over 14 daily looks, the probability to beat control), the sample-ratio check and the
Holm correction across metrics. The baseline measured in the same run is a plain numpy mean
of each of the same arrays: the ratio is what the statistics cost over one read of the data.

Run: .venv/bin/python bench/bench_experiment_stats.py [--units 10000000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

TARGET_SECONDS = 30.0
DAYS = 14


def units(count: int, seed: int) -> dict[str, np.ndarray]:
    """Two variants 50/50; the treatment converts 3% more often and spends as much."""
    rng = np.random.default_rng(seed)
    variant = np.where(rng.random(count) < 0.5, "control", "treatment").astype(object)
    treated = variant == "treatment"
    converted = (rng.random(count) < np.where(treated, 0.0515, 0.05)).astype(np.int8)
    orders = converted * (1 + rng.poisson(0.2, count))
    revenue = orders * rng.gamma(2.0, 25.0, count)
    pre_revenue = 0.6 * revenue + rng.gamma(1.0, 5.0, count)
    return {"variant": variant, "conversion": converted, "orders": orders.astype(float),
            "revenue": revenue, "pre_revenue": pre_revenue}


def analyse(data: dict[str, np.ndarray]) -> dict:
    import pandas as pd

    from tailor.experiments.corrections import adjust_p_values
    from tailor.experiments.srm import sample_ratio_mismatch
    from tailor.experiments.statistics import analyze_metric
    from tailor.experiments.sums import unit_sums

    variants = pd.Categorical(data["variant"])
    metrics = {
        "conversion": ("proportion", unit_sums(variants, data["conversion"])),
        "revenue_per_visitor": ("mean", unit_sums(variants, data["revenue"],
                                                  covariates=data["pre_revenue"])),
        "aov": ("ratio", unit_sums(variants, data["revenue"], denominators=data["orders"])),
    }
    analyses = {}
    for name, (kind, sums) in metrics.items():
        # Earlier looks: the days before, approximated by shares of today's sums (the bench
        # times the test over 14 looks, not a second pass over the units per day).
        history = [{variant: _share(s, day / DAYS) for variant, s in sums.items()}
                   for day in range(1, DAYS)]
        analyses[name] = analyze_metric(sums, "control", kind, metric=name, history=history,
                                        planned_looks=DAYS)
    counts = {v.variant: v.units for v in analyses["conversion"].variants}
    srm = sample_ratio_mismatch(counts, {"control": 0.5, "treatment": 0.5})
    p_values = {name: a.variants[1].lift.p_value for name, a in analyses.items()}
    return {"analyses": analyses, "srm": srm, "holm": adjust_p_values(p_values)}


def _share(sums, share: float):
    from dataclasses import replace

    fields = ("total", "squares", "denominator", "denominator_squares", "cross", "covariate",
              "covariate_squares", "covariate_cross")
    return replace(sums, units=max(2, int(sums.units * share)),
                   **{f: (None if getattr(sums, f) is None else getattr(sums, f) * share)
                      for f in fields})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=10_000_000)
    args = parser.parse_args()
    data = units(args.units, seed=1)
    analyse(units(10_000, seed=2))  # warm-up: imports, the sequential threshold's first solve
    started = time.perf_counter()
    for name, column in data.items():
        if name != "variant":
            float(np.mean(column))
    baseline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = analyse(data)
    seconds = time.perf_counter() - started
    conversion = result["analyses"]["conversion"].variants[1]
    print(f"experiment statistics, {args.units:,} units x 2 variants, 3 metrics: "
          f"{seconds:.1f} s (target <= {TARGET_SECONDS:.0f} s)")
    print(f"baseline, numpy mean of the same {len(data) - 1} numeric arrays: "
          f"{baseline_seconds:.2f} s; ratio {seconds / baseline_seconds:.1f}x")
    print(f"conversion lift {conversion.lift.relative:+.2%} "
          f"[{conversion.lift.relative_lower:+.2%}, {conversion.lift.relative_upper:+.2%}] "
          f"(true +3.00%), p = {conversion.lift.p_value:.2g}; SRM p = {result['srm'].p_value:.3f}")
    ok = seconds <= TARGET_SECONDS and conversion.lift.relative_lower <= 0.03 \
        <= conversion.lift.relative_upper
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
