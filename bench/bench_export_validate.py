"""Benchmark: the hourly lake export plus the data-quality gate over N stored events.

Target: `export_lake` + `run_quality_gate` over 10,000,000 events in at most 2 minutes
(on the project's reference machine: 2 cores). Setup (filling a SQLite store) is not
timed. Baseline, same run: every stored event read with a plain `SELECT` and streamed to
one Parquet file with pyarrow (no partitioning, no watermark, no rules), so the
printed ratio is what partitioning, crash-safety and the rules cost on top of reading.

    .venv/bin/python bench/bench_export_validate.py --events 10000000

Reads nothing; writes a throw-away Tailor home under --workdir (a temporary folder
unless given), removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tailor.config import Settings, load_settings
from tailor.events.lake import PARQUET_COMPRESSION, export_lake
from tailor.events.schema import EVENT_COLUMNS, EVENT_TYPES, PRODUCT_EVENT_TYPES
from tailor.events.sqlite_store import sqlite_path
from tailor.events.store import IngestRun, open_event_store
from tailor.quality import run_quality_gate

TARGET_SECONDS = 120.0
TARGET_EVENTS = 10_000_000
INSERT_BATCH = 500_000
START = pd.Timestamp("2026-01-05T00:00:00Z")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=TARGET_EVENTS, help="events in the store")
    parser.add_argument("--days", type=int, default=30, help="days the events span")
    parser.add_argument("--customers", type=int, default=500_000, help="distinct customers")
    parser.add_argument("--products", type=int, default=5_000, help="catalogue size")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the Tailor home")
    parser.add_argument("--keep", action="store_true", help="keep the store and lake afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the store a --keep run left in --workdir (skips the setup)")
    return parser.parse_args()


def event_batch(first: int, count: int, total: int, args: argparse.Namespace,
                rng: np.random.Generator) -> list[tuple]:
    """`count` contract events as store rows, timestamps increasing with seq (as live ingest)."""
    index = np.arange(first, first + count)
    span_us = args.days * 86_400_000_000
    jitter = rng.integers(0, 60_000_000, count)  # up to a minute out of order
    timestamps = START.value // 1000 + (index / total * span_us).astype("int64") + jitter
    types = np.array(EVENT_TYPES)[rng.choice(len(EVENT_TYPES), count,
                                             p=[.3, .3, .1, .08, .02, .05, .05, .06, .02, .02])]
    is_product = np.isin(types, list(PRODUCT_EVENT_TYPES))
    products = np.where(is_product, np.char.add("p", rng.integers(0, args.products, count)
                                                .astype(str)), None)
    customers = np.char.add("c", rng.integers(0, args.customers, count).astype(str))
    is_purchase = types == "purchase"
    prices = np.where(is_purchase, np.round(rng.uniform(2, 200, count), 2), None)
    quantities = np.where(is_purchase, rng.integers(1, 4, count).astype(float), None)
    orders = np.where(is_purchase, np.char.add("o", (index // 3).astype(str)), None)
    sessions = np.char.add("s", (index // 12).astype(str))
    devices = np.array(["mobile", "desktop", "tablet"])[rng.integers(0, 3, count)]
    received = (START.value // 1000 + span_us + 3_600_000_000)
    return list(zip(np.char.add("e", index.astype(str)).tolist(), customers.tolist(),
                    types.tolist(), products.tolist(), timestamps.tolist(), sessions.tolist(),
                    prices.tolist(), quantities.tolist(), orders.tolist(), devices.tolist(),
                    [None] * count, [None] * count, [received] * count, ["bench"] * count))


def fill_store(settings: Settings, args: argparse.Namespace) -> None:
    """Bulk-insert N events straight into the SQLite store's tables (indexes built after)."""
    store = open_event_store(settings.event_store_url)
    store.upsert_products(pd.DataFrame({"product_id": [f"p{i}" for i in range(args.products)],
                                        "category": "bench", "price": 10.0}))
    store.upsert_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(args.customers)],
                                         "location": "bench"}))
    store.close()
    connection = sqlite3.connect(sqlite_path(settings.event_store_url), isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("DROP INDEX IF EXISTS events_customer_time")
    connection.execute("DROP INDEX IF EXISTS events_time")
    columns = EVENT_COLUMNS + ("received_at", "batch_id")
    insert = (f"INSERT INTO events ({', '.join(columns)}) "
              f"VALUES ({', '.join('?' * len(columns))})")
    rng = np.random.default_rng(7)
    for first in range(0, args.events, INSERT_BATCH):
        count = min(INSERT_BATCH, args.events - first)
        connection.execute("BEGIN")
        connection.executemany(insert, event_batch(first, count, args.events, args, rng))
        connection.execute("COMMIT")
        print(f"  setup: {first + count:,} / {args.events:,} events", file=sys.stderr)
    connection.close()
    store = open_event_store(settings.event_store_url)  # initialize() recreates the indexes
    store.record_ingest(IngestRun("bench", "bench", START, START, received=args.events,
                                  accepted=args.events))
    store.close()


def baseline_dump(settings: Settings, target: Path) -> int:
    """Stream every event with a plain SELECT into one Parquet file; returns rows written."""
    connection = sqlite3.connect(sqlite_path(settings.event_store_url))
    columns = ("seq",) + EVENT_COLUMNS + ("received_at",)
    cursor = connection.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY seq")
    writer, rows = None, 0
    while batch := cursor.fetchmany(settings.lake_export_chunk_rows):
        table = pa.Table.from_pydict({name: list(values)
                                      for name, values in zip(columns, zip(*batch))})
        writer = writer or pq.ParquetWriter(target, table.schema, compression=PARQUET_COMPRESSION)
        writer.write_table(table)
        rows += len(batch)
    if writer is not None:
        writer.close()
    connection.close()
    return rows


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tailor-bench-"))
    settings = load_settings(home=workdir / "home", env={})
    try:
        started = time.perf_counter()
        if args.reuse and Path(sqlite_path(settings.event_store_url)).is_file():
            shutil.rmtree(Path(settings.lake_root), ignore_errors=True)
        else:
            fill_store(settings, args)
        setup_seconds = time.perf_counter() - started

        started, cpu_started = time.perf_counter(), time.process_time()
        summary = export_lake(settings, progress=False)
        export_seconds = time.perf_counter() - started
        started = time.perf_counter()
        report = run_quality_gate(settings, now=START + pd.Timedelta(days=args.days, hours=2),
                                  alert=False)
        gate_seconds = time.perf_counter() - started
        measured_cpu = time.process_time() - cpu_started

        started, cpu_started = time.perf_counter(), time.process_time()
        baseline_rows = baseline_dump(settings, workdir / "baseline.parquet")
        baseline_seconds = time.perf_counter() - started
        baseline_cpu = time.process_time() - cpu_started
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    measured = export_seconds + gate_seconds
    target = TARGET_SECONDS * args.events / TARGET_EVENTS
    print(f"events: {args.events:,} over {args.days} days "
          f"(setup, not timed: {setup_seconds:.1f} s)")
    print(f"export_lake: {export_seconds:.1f} s ({summary.events:,} events, {summary.files:,} "
          f"files, {summary.events / export_seconds:,.0f} events/s)")
    print(f"run_quality_gate: {gate_seconds:.1f} s (passed={report.passed})")
    print(f"measured export + gate: {measured:.1f} s; target <= {target:.1f} s "
          f"({TARGET_SECONDS:.0f} s per {TARGET_EVENTS:,}) -> "
          f"{'MET' if measured <= target else 'MISSED'}")
    print(f"baseline (plain SELECT streamed to one Parquet file): {baseline_seconds:.1f} s "
          f"for {baseline_rows:,} rows; export + gate / baseline = "
          f"{measured / baseline_seconds:.2f}x")
    # CPU seconds are less sensitive than wall time to other work on a shared machine.
    print(f"CPU time: export + gate {measured_cpu:.1f} s, baseline {baseline_cpu:.1f} s "
          f"(load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
