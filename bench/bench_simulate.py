"""Benchmark: how fast the shop simulator writes events, and how much memory it needs.

Usage: python bench/bench_simulate.py [--events 10000000] [--customers 300000]
       [--products 20000] [--out DIR]

Target (issue: the brief's daily volume): 10M events in <= 3 minutes and <= 4 GB peak
RSS on a 2-core machine. Baseline, measured in the same run: writing the same number of
rows of random data with the same schema to Parquet, so the simulator's own cost shows
as a ratio. Each measurement runs in a child process so that peak RSS is its own.
Writes the shop (and the baseline file) under --out (a temporary folder by default).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 180.0
TARGET_RSS_GB = 4.0
EVENTS_PER_CUSTOMER_DAY = 2.6  # measured: 0.75 sessions x ~3.4 events, plus e-mails


def peak_rss_gb() -> float:
    """Peak resident set size of this process in GB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def run_simulator(customers: int, products: int, days: int, out: Path) -> dict:
    """Simulate the shop; returns wall seconds, peak RSS and the run's summary."""
    from tailor.simulate import ShopConfig, simulate_shop

    began = time.perf_counter()
    summary = simulate_shop(ShopConfig(n_customers=customers, n_products=products, n_days=days,
                                       seed=11, show_progress=True), out)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "peak_rss_gb": peak_rss_gb(), "events": summary.n_events,
            "sessions": summary.n_sessions, "orders": summary.n_orders,
            "conversion_rate": summary.conversion_rate,
            "abandonment_rate": summary.abandonment_rate}


def run_baseline(rows: int, customers: int, products: int, out: Path) -> dict:
    """Write `rows` rows of random data in the events schema to Parquet, 1M rows per group."""
    import numpy as np
    import pyarrow.parquet as pq

    from tailor.simulate.events import EVENT_SCHEMA, EventColumns, Vocabulary, to_arrow
    from tailor.simulate.world import _format_ids

    rng = np.random.default_rng(0)
    vocabulary = Vocabulary.for_shop(_format_ids("c", customers, 6), _format_ids("p", products, 5))
    began = time.perf_counter()
    with pq.ParquetWriter(out, EVENT_SCHEMA, compression="zstd") as writer:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            events = EventColumns.build(
                np.sort(rng.integers(1.7e15, 1.8e15, n)), rng.integers(0, 10, n),
                rng.integers(0, customers, n), product=rng.integers(0, products, n),
                session=rng.integers(0, rows // 3, n), price=rng.uniform(1, 500, n),
                quantity=rng.integers(1, 4, n), device=rng.integers(0, 3, n),
                event_number=np.arange(start, start + n))
            writer.write_table(to_arrow(events, vocabulary))
    return {"seconds": time.perf_counter() - began, "peak_rss_gb": peak_rss_gb(), "events": rows}


def in_child(kind: str, arguments: dict) -> dict:
    """Run one measurement in a fresh Python process and return its JSON result."""
    code = ("import json, sys; sys.path.insert(0, 'bench'); import bench_simulate as b; "
            f"print(json.dumps(b.run_{kind}(**b.decode({json.dumps(arguments)!r}))))")
    completed = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE,
                               cwd=Path(__file__).resolve().parent.parent, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def decode(text: str) -> dict:
    values = json.loads(text)
    return {key: Path(value) if key == "out" else value for key, value in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=300_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    days = max(1, math.ceil(args.events / (args.customers * EVENTS_PER_CUSTOMER_DAY)))
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        simulator = in_child("simulator", {"customers": args.customers, "products": args.products,
                                           "days": days, "out": str(out / "shop")})
        baseline = in_child("baseline", {"rows": simulator["events"], "customers": args.customers,
                                         "products": args.products,
                                         "out": str(out / "baseline.parquet")})
    rate = simulator["events"] / simulator["seconds"]
    print(f"simulator: {simulator['events']:,} events ({args.customers:,} customers, "
          f"{args.products:,} products, {days} days) in {simulator['seconds']:.1f} s "
          f"= {rate:,.0f} events/s; peak RSS {simulator['peak_rss_gb']:.2f} GB")
    print(f"           sessions {simulator['sessions']:,}, orders {simulator['orders']:,}, "
          f"conversion {simulator['conversion_rate']:.2%}, "
          f"abandonment {simulator['abandonment_rate']:.1%}")
    scaled = simulator["seconds"] * 10_000_000 / simulator["events"]
    passed = scaled <= TARGET_SECONDS and simulator["peak_rss_gb"] <= TARGET_RSS_GB
    print(f"target:    10,000,000 events in <= {TARGET_SECONDS:.0f} s and <= {TARGET_RSS_GB:.0f} "
          f"GB (this run scaled to 10M: {scaled:.0f} s) -> {'PASS' if passed else 'FAIL'}")
    print(f"baseline:  writing {baseline['events']:,} random rows of the same schema to Parquet: "
          f"{baseline['seconds']:.1f} s, peak RSS {baseline['peak_rss_gb']:.2f} GB; "
          f"simulator / baseline = {simulator['seconds'] / baseline['seconds']:.1f}x")


if __name__ == "__main__":
    main()
