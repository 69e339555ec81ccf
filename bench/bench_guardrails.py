"""What the hourly guardrail check costs on a large prediction log, beside a same-run baseline.

Target (issue 13, guardrails): reading one running experiment's per-variant figures (answers,
customers, fallbacks, errors and the p99 latency histogram: `served_variants`) takes at most
TARGET_RATIO times one plain pass over the same experiment's rows (a count and a sum of their
latencies), so the hourly job scales with the experiment, not the log; and on the default
home (SQLite) a 1M-answer experiment is checked in under TARGET_SECONDS.

Builds a prediction log of its own (SQLite in a temporary folder): `--rows` answers of which
half belong to the running experiment (two variants, ~5% fallbacks, a latency per answer),
the rest to no experiment. Times, each the median of `--repeats` runs:
  * baseline: `SELECT COUNT(*), SUM(latency_ms) FROM predictions WHERE experiment = ? AND
    served_at >= ?`;
  * `served_variants(settings, record)`: the two queries of the guardrail check.

Run: .venv/bin/python bench/bench_guardrails.py [--rows 2000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

TARGET_RATIO = 8.0  # three aggregations (counts, distinct customers, a histogram) vs one pass
TARGET_SECONDS = 10.0
BATCH = 50_000


def fill(url: str, rows: int, started: datetime) -> None:
    """`rows` answers after `started`: even rows in the experiment, odd ones in none."""
    from tailor.events.prediction_store import (
        PREDICTION_COLUMNS, datetime_to_micros, open_prediction_store,
    )

    rng = np.random.default_rng(13)
    store = open_prediction_store(url)
    base = datetime_to_micros(started) + 1_000_000
    index = {name: position for position, name in enumerate(PREDICTION_COLUMNS)}
    for first in range(0, rows, BATCH):
        count = min(BATCH, rows - first)
        latency = rng.gamma(2.0, 12.0, count)
        fallback = rng.random(count) < 0.05
        batch = []
        for offset in range(count):
            number = first + offset
            row: list = [None] * len(PREDICTION_COLUMNS)
            in_experiment = number % 2 == 0
            values = {"served_at": base + number * 1_000, "request_id": f"r{number}",
                      "customer_id": f"c{number % 200_000}", "endpoint": "homepage",
                      "model": "homepage", "variant": "champion", "items": "[]",
                      "fallback": bool(fallback[offset]), "stale": False,
                      "latency_ms": float(latency[offset]),
                      "fallback_kind": "timeout" if fallback[offset] else None,
                      "experiment": "bench-guardrails" if in_experiment else None,
                      "experiment_variant": ("control", "treatment")[number // 2 % 2]
                      if in_experiment else None}
            for name, value in values.items():
                row[index[name]] = value
            batch.append(tuple(row))
        store.insert_predictions(batch)
    store.close()


def plain_count(url: str, since: int):
    """The baseline: one pass over the experiment's rows (a count and a sum of their
    latencies), on a connection of its own."""
    import sqlite3

    from tailor.events.store import sqlite_path

    connection = sqlite3.connect(sqlite_path(url))
    sql = ("SELECT COUNT(*), SUM(latency_ms) FROM predictions "
           "WHERE experiment = ? AND served_at >= ?")
    return lambda: connection.execute(sql, ("bench-guardrails", since)).fetchone()


def median_seconds(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args(argv)

    from experiment_definitions import make_definition
    from tailor.config import load_settings
    from tailor.events.prediction_store import datetime_to_micros
    from tailor.experiments.guardrails import served_variants
    from tailor.experiments.state import open_store

    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(home=Path(folder) / "home", env={})
        definition = make_definition(name="bench-guardrails", variants=[
            {"name": "control", "weight": 0.5, "changes": {}},
            {"name": "treatment", "weight": 0.5, "changes": {"layout": "carousel"}}])
        with open_store(settings) as store:
            record = store.start(definition, "bench", "bench_guardrails")
        started = datetime.fromisoformat(record.started_at or "") - timedelta(seconds=1)
        began = time.perf_counter()
        fill(settings.event_store_url, arguments.rows, started)
        print(f"filled {arguments.rows:,} answers in {time.perf_counter() - began:.1f} s",
              file=sys.stderr)
        since = datetime_to_micros(datetime.fromisoformat(record.started_at or ""))
        count = plain_count(settings.event_store_url, since)

        plain = median_seconds(count, arguments.repeats)
        checked = median_seconds(lambda: served_variants(settings, record), arguments.repeats)
        figures = served_variants(settings, record)
    ratio = checked / plain if plain else float("inf")
    passed = ratio <= TARGET_RATIO and checked <= TARGET_SECONDS
    print(f"{arguments.rows:,} answers, {arguments.rows // 2:,} in the experiment "
          "(SQLite): "
          f"COUNT(*) {plain:.3f} s, guardrail figures {checked:.3f} s ({ratio:.2f}x; target "
          f"<= {TARGET_RATIO:g}x and <= {TARGET_SECONDS:g} s): {'met' if passed else 'NOT met'}")
    for variant, stats in sorted(figures.items()):
        print(f"  {variant}: {stats.answers:,} answers, {stats.units:,} customers, fallback "
              f"rate {stats.fallbacks / stats.answers:.4f}, p99 {stats.latency_p99_ms} ms")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    sys.exit(main())
