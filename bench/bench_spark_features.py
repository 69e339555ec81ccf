"""Benchmark: every batch feature on Spark (local[2]) beside DuckDB, same lake, same run; then
the same Spark job with a driver memory smaller than the lake.

Target (issue 17): 10,000,000 events on `local[2]` with time and peak memory reported beside
DuckDB's, and a lake larger than the Spark driver's memory processed without running out of
it. Baseline, same run and lake: DuckDB (`features.engine = duckdb`) computing the same
features (the parity test checks the rows are equal).

    .venv/bin/python bench/bench_spark_features.py                      # 1M events (shared box)
    .venv/bin/python bench/bench_spark_features.py --events 10000000    # the issue's size

Each engine runs in a child process of its own, so its peak memory is its own: DuckDB's is
the child's peak RSS; Spark's is the driver's Python peak plus the JVM's peak RSS (local
mode: the JVM is the whole cluster). The lake is bench_features.py's synthetic shop
(hive-partitioned Parquet, written straight into the lake); its size in memory is its rows
as Arrow columns (bytes per row of a sample of files, times the rows). The small-memory
run gives Spark a driver of --small-driver-memory (default 512m; Spark refuses less than
450 MB): with a lake larger than that, its cached tables spill to disk instead of failing.
--only-small-memory skips the side-by-side runs (for a big lake). Writes a throw-away home
under --workdir (a temporary folder unless given), removed unless --keep.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from bench_features import build_lake
from tailor.config import Settings, load_settings
from tailor.warehouse import refresh_warehouse

TARGET_EVENTS = 10_000_000
DEFAULT_EVENTS = 1_000_000  # what a shared 2-core machine runs in minutes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events in the lake")
    parser.add_argument("--days", type=int, default=60, help="days the events span")
    parser.add_argument("--customers", type=int, default=100_000, help="customers")
    parser.add_argument("--products", type=int, default=5_000, help="catalogue size")
    parser.add_argument("--categories", type=int, default=20, help="catalogue categories")
    parser.add_argument("--master", default="local[2]", help="Spark master")
    parser.add_argument("--driver-memory", default="2g", help="driver memory of the first run")
    parser.add_argument("--small-driver-memory", default="512m",
                        help="driver memory of the small-memory run")
    parser.add_argument("--small-shuffle-partitions", type=int, default=64,
                        help="shuffle partitions of the small-memory run: each cached "
                             "partition must fit the driver's heap (8 at 10M events and "
                             "512m ran out of memory)")
    parser.add_argument("--only-small-memory", action="store_true",
                        help="run only the small-memory Spark run")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the Tailor home")
    parser.add_argument("--keep", action="store_true", help="keep the home afterwards")
    return parser.parse_args()


def parse_size(text: str) -> int:
    """A JVM size such as 512m in bytes."""
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def jvm_peak_bytes(session) -> int:
    """Peak resident memory of the Spark JVM (local mode: driver and executors)."""
    process = session.sparkContext._gateway.proc  # the JVM pyspark started
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_engine(settings_json: str, engine: str, answer: multiprocessing.Queue) -> None:
    """Child process: compute the features on one engine; put (seconds, peak bytes, rows)."""
    from tailor.config import Settings
    from tailor.features.compute import compute_features

    settings = Settings.model_validate_json(settings_json).replace(features_engine=engine)
    jvm = 0
    if engine == "spark":
        from tailor.batch.spark_session import spark_session

        session = spark_session(settings)  # started before the clock, like a warm cluster
    started = time.perf_counter()
    build = compute_features(settings, progress=lambda message: None)
    seconds = time.perf_counter() - started
    if engine == "spark":
        jvm = jvm_peak_bytes(session)
        session.stop()
    python_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    answer.put((seconds, python_peak + jvm, build.rows))


def measure(settings: Settings, engine: str) -> tuple[float, int, dict[str, int]]:
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    child = context.Process(target=run_engine, args=(settings.model_dump_json(), engine, answer))
    child.start()
    while True:
        try:
            result = answer.get(timeout=5)
            break
        except queue.Empty:
            if not child.is_alive():
                raise SystemExit(f"{engine} run failed (exit {child.exitcode})") from None
    child.join()
    return result


def lake_bytes(settings: Settings, sample: int = 24) -> tuple[int, int]:
    """(bytes on disk, bytes in memory as Arrow columns) of the lake's events."""
    dataset = ds.dataset(Path(settings.lake_root) / "events", format="parquet",
                         partitioning="hive")
    fragments = list(dataset.get_fragments())
    on_disk = sum(Path(fragment.path).stat().st_size for fragment in fragments)
    rows = sum(fragment.metadata.num_rows for fragment in fragments)
    sampled = [fragment.to_table() for fragment in fragments[:: max(1, len(fragments) // sample)]]
    per_row = sum(table.nbytes for table in sampled) / max(1, sum(len(t) for t in sampled))
    return on_disk, int(per_row * rows)


def main() -> None:
    args = parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tailor-bench-spark-"))
    settings = load_settings(home=workdir / "home", env={}).replace(
        features_spark_master=args.master, features_spark_driver_memory=args.driver_memory,
        features_spark_shuffle_partitions=8)
    try:
        events = build_lake(settings, args)
        refresh_warehouse(settings)
        on_disk, in_memory = lake_bytes(settings)
        mb = 1024 * 1024
        print(f"lake: {events:,} events, {on_disk / mb:.0f} MB on disk, "
              f"{in_memory / mb:.0f} MB in memory")
        results = {}
        for engine in () if args.only_small_memory else ("duckdb", "spark"):
            results[engine] = measure(settings, engine)
            seconds, peak, rows = results[engine]
            print(f"{engine:>6} ({args.master if engine == 'spark' else 'in process'}, "
                  f"driver {args.driver_memory if engine == 'spark' else '-'}): "
                  f"{seconds:.1f} s, peak memory {peak / mb:.0f} MB")
        if results:
            assert results["spark"][2] == results["duckdb"][2], "feature row counts differ"
        small = args.small_driver_memory
        partitions = args.small_shuffle_partitions
        seconds, peak, rows = measure(settings.replace(
            features_spark_driver_memory=small, features_spark_shuffle_partitions=partitions),
            "spark")
        larger = in_memory > parse_size(small)
        print(f" spark with driver memory {small}, {partitions} shuffle partitions "
              f"({'smaller' if larger else 'NOT smaller'} than "
              f"the lake's {in_memory / mb:.0f} MB in memory): {seconds:.1f} s, peak memory "
              f"{peak / mb:.0f} MB; feature rows {rows}")
        print(json.dumps({"events": events, "lake_mb_on_disk": round(on_disk / mb),
                          "lake_mb_in_memory": round(in_memory / mb), "rows": rows}))
        if events < TARGET_EVENTS:
            print(f"(the issue's size: --events {TARGET_EVENTS})")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    pd.options.mode.copy_on_write = True
    sys.exit(main())
