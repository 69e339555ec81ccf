"""What experiment assignment costs a request: `Assigner.assign` and the pipeline's per-request
assignment beside same-run baselines.

Target (issue 13): assignment adds <= 0.1 ms to a request, in process.

Running: the three ready homepage experiments (`experiments/homepage-layout.yaml`,
`recommendation-diversity.yaml`, `personalization-threshold.yaml`, which share the
`homepage` layer) and a 5% global holdout, on an event store of the bench's own.

Measured, each over `--calls` distinct visitors (half with a `context.anonymous_id`):
  * `Assigner.assign("homepage", unit)` (up to three sha256 digests and a bisection), beside
    a dict lookup of the same ids (the floor of any per-visitor answer);
  * the pipeline's whole per-request share (`ServingPipeline._arm`: the opt-out check, the
    unit chosen from the request, `assign`);
  * `/homepage` in process with the experiments running and without (two pipelines over the
    same home, taking turns for `--rounds` rounds; the verdict reads the median of the paired
    per-round differences of the median request). Without `--home` the pipelines serve an
    empty home (the fallback path: the cheapest request, so the share of assignment is at
    its largest); `--home DIR` serves a prepared home, e.g. one `bench_serving.py --keep DIR`
    left in DIR/home (its event store is not touched: the bench's experiments live in its own).

Run: .venv/bin/python bench/bench_assignment.py [--calls 20000] [--rounds 15] [--home DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_MS = 0.1
HOMEPAGE_EXPERIMENTS = ("homepage-layout", "recommendation-diversity",
                        "personalization-threshold")


def per_call_us(call, arguments: list, repeats: int = 5) -> float:
    """Median over `repeats` passes of the mean microseconds of `call(*argument)`."""
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for argument in arguments:
            call(*argument)
        passes.append((time.perf_counter() - started) / len(arguments) * 1e6)
    return float(np.median(passes))


def start_experiments(settings) -> None:
    from tailor.experiments.definition import load_definition, shipped_definitions_dir
    from tailor.experiments.state import ExperimentStore

    with ExperimentStore(settings.event_store_url) as store:
        for name in HOMEPAGE_EXPERIMENTS:
            store.start(load_definition(shipped_definitions_dir() / f"{name}.yaml"), "bench",
                        "bench_assignment")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2_000, help="requests per turn")
    parser.add_argument("--home", type=Path, help="a prepared Tailor home (default: empty)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # an empty home's pipelines warn of what it lacks

    from prometheus_client import CollectorRegistry

    from tailor.config import load_settings
    from tailor.experiments.state import current_assigner
    from tailor.serving.metrics import ServingMetrics
    from tailor.serving.pipeline import HOMEPAGE, ServingPipeline
    from tailor.serving.schemas import HomepageRequest

    scratch = Path(tempfile.mkdtemp(prefix="tailor-bench-assignment-"))
    base = load_settings(home=args.home or scratch / "home", env={}).replace(
        monitoring_prediction_log=False, experiments_holdout_share=0.05,
        **({} if args.home else {"mlflow_tracking_uri": f"sqlite:///{scratch / 'none.db'}"}))
    with_experiments = base.replace(database_url=f"sqlite:///{scratch / 'experiments.db'}")
    without = base.replace(database_url=f"sqlite:///{scratch / 'none-running.db'}")
    start_experiments(with_experiments)

    assigner = current_assigner(with_experiments)
    units = [f"anon-{index:032x}" if index % 2 else f"c{index:07d}" for index in range(args.calls)]
    table = {unit: None for unit in units}
    assign_us = per_call_us(assigner.assign, [("homepage", unit) for unit in units])
    lookup_us = per_call_us(table.get, [(unit,) for unit in units])

    pipelines = {label: ServingPipeline(settings, start_watcher=False, freeze_heap=True,
                                        metrics=ServingMetrics(CollectorRegistry()))
                 for label, settings in (("without", without), ("with", with_experiments))}
    requests = [HomepageRequest(customer_id=f"c{index:07d}",
                                context={"anonymous_id": f"anon-{index:032x}"} if index % 2
                                else {}) for index in range(args.requests)]
    arm_us = per_call_us(pipelines["with"]._arm, [(HOMEPAGE, request) for request in requests])
    served = sum(pipelines["with"].homepage(r).experiment is not None for r in requests[:500])
    paired, pooled = [], {label: [] for label in pipelines}
    try:
        for number in range(1, args.rounds + 1):
            order = list(pipelines.items()) if number % 2 else list(pipelines.items())[::-1]
            medians = {}
            for label, pipeline in order:
                times = []
                for request in requests:
                    started = time.perf_counter()
                    pipeline.homepage(request)
                    times.append((time.perf_counter() - started) * 1000)
                pooled[label] += times
                medians[label] = float(np.median(times))
            paired.append(medians["with"] - medians["without"])
            print(f"round {number}: p50 without {medians['without']:.4f} ms, with "
                  f"{medians['with']:.4f} ms ({paired[-1]:+.4f})")
    finally:
        for pipeline in pipelines.values():
            pipeline.close()

    added = float(np.median(paired))
    print(f"running: {', '.join(assigner.running)}; holdout 5%; {served} of 500 requests "
          "served in an experiment")
    print(f"      Assigner.assign: {assign_us:.2f} us per call (baseline: dict lookup of the "
          f"same ids {lookup_us:.2f} us)")
    verdicts = [arm_us / 1000 <= TARGET_MS, added <= TARGET_MS]
    print(f"{'PASS' if verdicts[0] else 'FAIL'}  the pipeline's assignment per request "
          f"(opt-out check, unit, assign): {arm_us:.2f} us = {arm_us / 1000:.4f} ms "
          f"(target <= {TARGET_MS} ms)")
    print(f"{'PASS' if verdicts[1] else 'FAIL'}  /homepage p50 with experiments minus without: "
          f"{added:+.4f} ms, the median of {len(paired)} paired rounds (pooled p50: with "
          f"{np.median(pooled['with']):.4f} ms, baseline without "
          f"{np.median(pooled['without']):.4f} ms; target <= {TARGET_MS} ms; "
          f"{'home ' + str(args.home) if args.home else 'empty home: the fallback path'})")
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
