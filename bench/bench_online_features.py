"""Benchmark: materialize N customers into Redis, then read homepage feature vectors online.

Targets (2 cores): materialize 1,000,000 customers in at most 3 minutes; one customer's
homepage vector (all its features) p99 <= 5 ms on Redis; a batch of 100 customers
p99 <= 15 ms; the first read after start as fast as the hundredth. Baselines, same run:
for materialization, the same number of hashes with the same field count written with a
plain redis-py pipeline (no Feast); for reads, a raw HMGET of exactly the keys and fields
the reader asks for (one, and 100 pipelined), so the ratio is the cost above Redis
itself. Both the reader's fast path (direct HMGET of Feast's hashes) and Feast's SDK
(`get_online_features`) are timed.

    .venv/bin/python bench/bench_online_features.py --customers 1000000

Setup (not timed): synthetic offline feature files with every catalogue column (one row
per customer, stamped at the last midnight) and `feast apply`. Uses its own Feast project
on --redis-url and deletes its keys at the end; the Tailor home is temporary unless
--workdir/--keep.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import redis

from tailor.config import Settings, load_settings
from tailor.features import specs as catalogue
from tailor.features.compute import OUTPUTS, FeatureBuild, feature_dir, write_manifest
from tailor.features.online import OnlineFeatureReader
from tailor.features.repo import apply_definitions, materialize, open_feature_store

TARGET_MATERIALIZE_SECONDS = 180.0
TARGET_CUSTOMERS = 1_000_000
TARGET_ONE_P99_MS = 5.0
TARGET_BATCH_P99_MS = 15.0
CATEGORIES = [f"category{i}" for i in range(12)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=TARGET_CUSTOMERS)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--reads", type=int, default=2_000, help="single-customer reads timed")
    parser.add_argument("--batches", type=int, default=200, help="100-customer reads timed")
    parser.add_argument("--redis-url", default=os.environ.get("TAILOR_TEST_REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the home and the Redis keys")
    return parser.parse_args()


def synthetic_column(spec: catalogue.FeatureSpec, size: int, rng: np.random.Generator,
                     stamp: pd.Timestamp) -> Any:
    """Plausible values of one catalogue column."""
    if spec.dtype == "int64":
        return rng.poisson(3, size).astype("int64")
    if spec.dtype == "float64":
        return np.round(rng.exponential(20, size), 4)
    if spec.dtype == "bool":
        return rng.random(size) < 0.5
    if spec.dtype == "timestamp":  # microseconds, as DuckDB writes the real files
        times = stamp - pd.to_timedelta(rng.integers(1, 400 * 86_400, size), unit="s")
        return times.astype("datetime64[us, UTC]")
    if spec.dtype == "string_list":
        return [[CATEGORIES[i % len(CATEGORIES)]] for i in range(size)]
    options = np.array(["mobile", "desktop", "north", "south", "low", "high"] + CATEGORIES)
    return options[rng.integers(0, len(options), size)]


def synthetic_table(table: str, ids: list[str], stamp: pd.Timestamp,
                    rng: np.random.Generator) -> pd.DataFrame:
    """One offline feature file's rows: every column of its views, one row per entity."""
    key, views = OUTPUTS[table]
    frame = pd.DataFrame({key: ids, "event_timestamp": stamp})
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    for view in views:
        for spec in catalogue.specs_for_view(view, CATEGORIES):
            frame[spec.name] = synthetic_column(spec, len(ids), rng, stamp)
    return frame


def write_offline(settings: Settings, customers: int, products: int) -> pd.Timestamp:
    """Write the four offline files and the manifest; returns the rows' stamp."""
    rng = np.random.default_rng(3)
    stamp = pd.Timestamp.now(tz="UTC").floor("D")
    directory = feature_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    customer_ids = [f"c{i}" for i in range(customers)]
    product_ids = [f"p{i}" for i in range(products)]
    tables = {"customer_features": customer_ids, "product_features": product_ids,
              "product_catalogue": product_ids, "session_features": customer_ids[:1000]}
    files = {}
    for table, ids in tables.items():
        path = directory / f"{table}.parquet"
        session_stamp = stamp - timedelta(days=1)  # sessions long over: stale, as usual
        synthetic_table(table, ids, session_stamp if table == "session_features" else stamp,
                        rng).to_parquet(path, index=False)
        files[table] = str(path)
    build = FeatureBuild(str(directory), CATEGORIES, 24, stamp.isoformat(), stamp.isoformat(),
                         {table: len(ids) for table, ids in tables.items()}, files)
    write_manifest(directory, build, settings)
    return stamp


def percentiles(timings: list[float]) -> dict[str, float]:
    """p50/p99/first in milliseconds."""
    ordered = sorted(timings)
    return {"first": timings[0] * 1000, "p50": statistics.median(ordered) * 1000,
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000}


def timed(call: Callable[[int], Any], count: int) -> list[float]:
    timings = []
    for index in range(count):
        started = time.perf_counter()
        call(index)
        timings.append(time.perf_counter() - started)
    return timings


def raw_baseline_write(client: redis.Redis, customers: int, fields: int) -> float:
    """Seconds to HSET `customers` hashes of `fields` 12-byte values with a plain pipeline."""
    prefix = f"bench-raw-{uuid.uuid4().hex[:8]}:"
    value = b"x" * 12
    mapping = {f"f{i}".encode(): value for i in range(fields)}
    started = time.perf_counter()
    for first in range(0, customers, 10_000):
        with client.pipeline(transaction=False) as pipe:
            for index in range(first, min(first + 10_000, customers)):
                pipe.hset(f"{prefix}{index}", mapping=mapping)
            pipe.execute()
    seconds = time.perf_counter() - started
    for keys in _batched(client.scan_iter(match=f"{prefix}*", count=10_000), 10_000):
        client.delete(*keys)
    return seconds


def _batched(iterable: Any, size: int) -> Any:
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def bench_reads(settings: Settings, customers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Time the fast path, the Feast SDK and raw HMGETs on the same customers."""
    rng = np.random.default_rng(11)
    picks = [f"c{i}" for i in rng.integers(0, customers, args.reads)]
    batches = [[f"c{i}" for i in rng.integers(0, customers, 100)] for _ in range(args.batches)]
    started = time.perf_counter()
    fast = OnlineFeatureReader(settings, "homepage")
    load_seconds = time.perf_counter() - started
    sdk = OnlineFeatureReader(settings, "homepage", fast_path=False)
    fetcher = fast._fetcher
    client = fetcher.client
    keys = [fetcher.redis_key(customer) for customer in picks]
    batch_keys = [[fetcher.redis_key(customer) for customer in batch] for batch in batches]

    def raw_batch(index: int) -> None:
        with client.pipeline(transaction=False) as pipe:
            for key in batch_keys[index]:
                pipe.hmget(key, fetcher.hash_fields)
            pipe.execute()

    results = {
        "features": len(fast.feature_names), "hash_fields": len(fetcher.hash_fields),
        "reader_load_seconds": load_seconds,
        "one_fast": percentiles(timed(lambda i: fast.read(picks[i]), args.reads)),
        "one_sdk": percentiles(timed(lambda i: sdk.read(picks[i]), args.reads)),
        "one_raw": percentiles(timed(lambda i: client.hmget(keys[i], fetcher.hash_fields),
                                     args.reads)),
        "batch_fast": percentiles(timed(lambda i: fast.read_many(batches[i]), args.batches)),
        "batch_sdk": percentiles(timed(lambda i: sdk.read_many(batches[i]), args.batches)),
        "batch_raw": percentiles(timed(raw_batch, args.batches)),
    }
    fresh = OnlineFeatureReader(settings, "homepage")  # a new process's reader, warmed up
    first_hundred = timed(lambda i: fresh.read(picks[i]), 100)
    results["fresh_first_ms"] = first_hundred[0] * 1000
    results["fresh_hundredth_ms"] = first_hundred[99] * 1000
    vector = fast.read(picks[0])
    assert not vector.error and "customer_activity" not in vector.missing_views, vector
    return results


def report(materialize_seconds: float, baseline_seconds: float, customers: int,
           reads: dict[str, Any]) -> None:
    scaled = materialize_seconds * TARGET_CUSTOMERS / customers
    print(f"materialize {customers:,} customers (Feast, Redis): {materialize_seconds:.1f} s; "
          f"scaled to 1M: {scaled:.1f} s (target <= {TARGET_MATERIALIZE_SECONDS:.0f} s) "
          f"{'PASS' if scaled <= TARGET_MATERIALIZE_SECONDS else 'FAIL'}")
    print(f"baseline raw pipelined HSET of the same hashes: {baseline_seconds:.1f} s; "
          f"ratio {materialize_seconds / baseline_seconds:.1f}x")
    print(f"homepage vector: {reads['features']} features, {reads['hash_fields']} hash fields")
    for label, fast, sdk, raw, target in (
            ("one customer", "one_fast", "one_sdk", "one_raw", TARGET_ONE_P99_MS),
            ("100 customers", "batch_fast", "batch_sdk", "batch_raw", TARGET_BATCH_P99_MS)):
        f, s, r = reads[fast], reads[sdk], reads[raw]
        print(f"{label}: fast path p50 {f['p50']:.2f} / p99 {f['p99']:.2f} ms "
              f"(target p99 <= {target:.0f} ms {'PASS' if f['p99'] <= target else 'FAIL'}); "
              f"Feast SDK p50 {s['p50']:.2f} / p99 {s['p99']:.2f} ms; raw HMGET p50 "
              f"{r['p50']:.2f} / p99 {r['p99']:.2f} ms; fast/raw p50 {f['p50'] / r['p50']:.1f}x, "
              f"SDK/raw p50 {s['p50'] / r['p50']:.1f}x")
    print(f"cold start: reader load (incl. warm-up) {reads['reader_load_seconds']:.2f} s; "
          f"first read {reads['fresh_first_ms']:.2f} ms, hundredth "
          f"{reads['fresh_hundredth_ms']:.2f} ms")


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("feast").setLevel(logging.WARNING)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tailor-bench-online-"))
    project = f"bench_{uuid.uuid4().hex[:8]}"
    settings = load_settings(home=workdir / "home", env={}).replace(
        redis_url=args.redis_url, features_project=project)
    client = redis.Redis.from_url(args.redis_url)
    try:
        print(f"setup: {args.customers:,} customers of synthetic features", file=sys.stderr)
        write_offline(settings, args.customers, args.products)
        apply_definitions(settings)
        started = time.perf_counter()
        materialize(settings, store=open_feature_store(settings))
        materialize_seconds = time.perf_counter() - started
        fields = len(catalogue.specs_for_view(catalogue.CUSTOMER_ACTIVITY)) + 1 + len(CATEGORIES)
        baseline = raw_baseline_write(client, args.customers, fields + 2)
        reads = bench_reads(settings, args.customers, args)
        report(materialize_seconds, baseline, args.customers, reads)
        print(json.dumps({"materialize_seconds": materialize_seconds,
                          "baseline_seconds": baseline, **reads}, default=str), file=sys.stderr)
    finally:
        if not args.keep:
            for keys in _batched(client.scan_iter(match=b"*" + project.encode(), count=10_000),
                                 10_000):
                client.delete(*keys)
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
