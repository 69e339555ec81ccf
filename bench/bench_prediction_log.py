"""What the prediction log costs a request: `/homepage` in process with the log off and on.

Target (docs/benchmarks.md, from issue 12): the prediction log adds <= 0.2 ms to /homepage's
in-process p50, with no errors (no answer dropped or failed to write, every answer in the
table) at the serving benchmark's rate (300 requests/s).

Two pipelines over the same trained home in one process, one with `monitoring.prediction_log`
off (the baseline) and one with it on, take turns (`--rounds` turns each, `--seconds` long)
at `--rate` requests/s, evenly spaced, the three kinds of shopper of bench_serving.py (a
regular buyer, a stranger, a customer mid-session) in turn. Each request is timed around the
pipeline call, as the server's worker makes it; the logging pipeline's background writer
runs meanwhile, as in a server (its queue is flushed between turns, untimed, so it never
runs during the baseline's turn). Both pipelines run with the server's thread switch
interval and frozen heap. Short turns, many of them: on a shared machine the p50 of one
turn moves by a millisecond with the neighbours' load, so the verdict reads the median of
the paired differences (each round's on-turn p50 minus the off-turn p50 beside it), and the
pooled p50s are printed beside it. The request path's own share, `record()` of one answer,
is also timed alone (over 20,000 calls).

Setup (not timed): bench_serving.py's steps (simulate -> ingest -> export -> warehouse ->
features on TAILOR_REDIS_URL, default redis://127.0.0.1:6379/0 -> train) on a smaller shop.
`--keep DIR` reuses a prepared home.

Run: .venv/bin/python bench/bench_prediction_log.py [--customers 20000] [--products 5000]
     [--days 7] [--rate 300] [--seconds 3] [--rounds 15] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench_serving import ensure_champions, homepage_bodies, prepare_home, sample_customers

TARGET_OVERHEAD_MS = 0.2
console = Console(stderr=True)


def paced(pipeline, requests: list, rate: int, seconds: float) -> list[float]:
    """Call `pipeline.homepage` `rate` times a second for `seconds`, the requests in turn;
    returns each call's milliseconds."""
    count = int(rate * seconds)
    times = []
    started = time.perf_counter()
    for index in range(count):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        before = time.perf_counter()
        pipeline.homepage(requests[index % len(requests)])
        times.append((time.perf_counter() - before) * 1000)
    return times


def record_cost_us(request, answer, calls: int = 20_000) -> float:
    """Microseconds of `PredictionRecorder.record` for one answer (the request's share),
    into a recorder whose store only counts."""
    from prometheus_client import CollectorRegistry

    from tailor.serving.metrics import ServingMetrics
    from tailor.serving.prediction_recorder import PredictionRecorder

    class CountingStore:
        def insert_predictions(self, rows) -> int:
            return len(rows)

        def close(self) -> None:
            pass

    recorder = PredictionRecorder(CountingStore, ServingMetrics(CollectorRegistry()),
                                  queue_size=calls + 1, batch_rows=calls + 1,
                                  flush_seconds=60.0).start()
    try:
        started = time.perf_counter()
        for _ in range(calls):
            recorder.record("homepage", (request,), (answer,))
        return (time.perf_counter() - started) / calls * 1e6
    finally:
        recorder.close()


def logged_rows(settings) -> int:
    """Answers in the prediction log now."""
    from tailor.monitoring.prediction_log import read_predictions

    now = datetime.now(timezone.utc)
    return len(read_predictions(settings, now - timedelta(days=1), now + timedelta(minutes=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="prepare (or reuse) the home in this folder")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="tailor-bench-predlog-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["TAILOR_REDIS_URL"] = os.environ.get("TAILOR_REDIS_URL", "redis://127.0.0.1:6379/0")
    timings = prepare_home(folder, args.customers, args.products, args.days, env)
    print("setup seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    home = folder / "home"
    ensure_champions(home)

    from prometheus_client import CollectorRegistry

    from tailor.config import load_settings
    from tailor.serving.metrics import ServingMetrics
    from tailor.serving.pipeline import ServingPipeline
    from tailor.serving.schemas import HomepageRequest

    settings = load_settings(home=home, env=env)
    sys.setswitchinterval(settings.serving_switch_interval_ms / 1000)  # as a server worker
    requests = [HomepageRequest(**body) for body in homepage_bodies(sample_customers(home))]
    pipelines = {
        "log off": ServingPipeline(settings.replace(monitoring_prediction_log=False),
                                   start_watcher=False, freeze_heap=True,
                                   metrics=ServingMetrics(CollectorRegistry())),
        "log on": ServingPipeline(settings, start_watcher=False, freeze_heap=True,
                                  metrics=ServingMetrics(CollectorRegistry())),
    }
    logging_pipeline = pipelines["log on"]
    rows_before = logged_rows(settings)
    times: dict[str, list[float]] = {label: [] for label in pipelines}
    paired: list[float] = []  # per round: on-turn p50 minus off-turn p50
    try:
        for pipeline in pipelines.values():
            answers = [pipeline.homepage(request) for request in requests]  # warm up
            if any(answer.fallback for answer in answers):
                raise SystemExit("a fallback answer would time the wrong path: "
                                 f"{[answer.fallback_reason for answer in answers]}")
            paced(pipeline, requests, args.rate, 1.0)
        logging_pipeline.predictions.flush(60)
        rows_before = logged_rows(settings)
        for number in range(1, args.rounds + 1):
            # Alternate which goes first, so neither always follows the other's writer flush.
            order = list(pipelines.items()) if number % 2 else list(pipelines.items())[::-1]
            medians = {}
            for label, pipeline in order:
                measured = paced(pipeline, requests, args.rate, args.seconds)
                times[label] += measured
                medians[label] = float(np.percentile(measured, 50))
                if pipeline is logging_pipeline:
                    logging_pipeline.predictions.flush(60)  # untimed: before the next turn
            paired.append(medians["log on"] - medians["log off"])
            print(f"round {number}: p50 log off {medians['log off']:.3f} ms, log on "
                  f"{medians['log on']:.3f} ms ({paired[-1]:+.3f})")
        status = logging_pipeline.predictions.status()
        rows = logged_rows(settings) - rows_before
        record_us = record_cost_us(requests[0], logging_pipeline.homepage(requests[0]))
    finally:
        for pipeline in pipelines.values():
            pipeline.close()

    table = Table(title=f"/homepage in process at {args.rate} requests/s, "
                        f"{args.rounds} x {args.seconds:.0f} s each")
    for column in ("prediction log", "requests", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column)
    for label, measured in times.items():
        table.add_row(label, str(len(measured)), f"{np.percentile(measured, 50):.3f}",
                      f"{np.percentile(measured, 90):.3f}", f"{np.percentile(measured, 99):.3f}")
    Console().print(table)

    off, on = (float(np.percentile(times[label], 50)) for label in ("log off", "log on"))
    overhead = float(np.median(paired))
    dropped = sum(status["dropped"].values())
    expected = len(times["log on"])
    passed = [
        overhead <= TARGET_OVERHEAD_MS,
        dropped == 0 and status["last_error"] is None and rows == expected,
    ]
    print(f"{'PASS' if passed[0] else 'FAIL'}  p50 overhead: {overhead:+.3f} ms, the median "
          f"of {len(paired)} paired rounds (pooled: log on {on:.3f} ms vs baseline log off "
          f"{off:.3f} ms, {on - off:+.3f} ms; target <= {TARGET_OVERHEAD_MS} ms)")
    print(f"      on the request path: record() of one answer {record_us:.2f} us")
    print(f"{'PASS' if passed[1] else 'FAIL'}  errors: {dropped} dropped "
          f"({status['dropped'] or 'none'}), last write error {status['last_error']}; "
          f"{rows} of {expected} timed answers in the table")
    print(f"home kept in {folder}" if args.keep else f"scratch home in {folder}")
    sys.exit(0 if all(passed) else 1)


if __name__ == "__main__":
    main()
