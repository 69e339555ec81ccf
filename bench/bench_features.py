"""Benchmark: compute every batch feature (tailor.features.compute) over N events.

Target: all feature SQL over 10,000,000 events in at most 5 minutes (2 cores). Baseline,
same run and warehouse: one `SELECT customer_id, COUNT(*) FROM events GROUP BY
customer_id` pass, so the ratio is what the feature set costs over reading the events
once.

    .venv/bin/python bench/bench_features.py --events 10000000

Setup (not timed): a synthetic shop is written straight into a lake (hive partitions, the
lake's schema), skipping the event store: sessions of a few events each, one customer and
device per session, popular products more viewed, about 2% of sessions buying, weekly
e-mail opens; then the warehouse is refreshed (orders and sessions tables, timed apart).
Writes a throw-away Tailor home under --workdir (a temporary folder unless given), removed
at the end unless --keep; --reuse skips the setup when a kept home exists.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tailor.config import Settings, load_settings
from tailor.events.lake import CUSTOMER_TYPES, LAKE_EVENT_SCHEMA, PRODUCT_TYPES
from tailor.features.compute import compute_features
from tailor.warehouse import open_warehouse, refresh_warehouse

TARGET_SECONDS = 300.0
TARGET_EVENTS = 10_000_000
START = pd.Timestamp("2026-01-05T00:00:00Z")
SITE_TYPES = np.array(["page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
                       "checkout_start", "click"])
SITE_SHARES = np.array([0.44, 0.44, 0.05, 0.035, 0.003, 0.014, 0.018])
EVENTS_PER_SESSION = 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=TARGET_EVENTS, help="events in the lake")
    parser.add_argument("--days", type=int, default=60, help="days the events span")
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers")
    parser.add_argument("--products", type=int, default=20_000, help="catalogue size")
    parser.add_argument("--categories", type=int, default=20, help="catalogue categories")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the Tailor home")
    parser.add_argument("--keep", action="store_true", help="keep the home afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept home (skip setup)")
    return parser.parse_args()


def write_catalogue(lake: Path, args: argparse.Namespace, rng: np.random.Generator) -> np.ndarray:
    """Products and customers files of the lake; returns product prices."""
    prices = np.round(np.exp(rng.normal(3.0, 1.0, args.products)), 2)
    products = pd.DataFrame({
        "product_id": [f"p{i}" for i in range(args.products)],
        "name": [f"product {i}" for i in range(args.products)],
        "category": [f"category{i % args.categories}" for i in range(args.products)],
        "price": prices, "rating": np.round(rng.uniform(1, 5, args.products), 1),
        "inventory": rng.integers(0, 100, args.products),
        "seasonal": rng.random(args.products) < .1,
    })
    (lake / "products").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(products, preserve_index=False,
                                        schema=pa.schema(PRODUCT_TYPES)),
                   lake / "products" / "products.parquet")
    signup = START - pd.to_timedelta(rng.integers(0, 700, args.customers), unit="D")
    customers = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(args.customers)], "signup_date": signup,
        "location": np.array(["north", "south", "east", "west"])[
            rng.integers(0, 4, args.customers)],
        "device_type": np.array(["mobile", "desktop"])[rng.integers(0, 2, args.customers)],
    })
    (lake / "customers").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(customers, preserve_index=False,
                                        schema=pa.schema(CUSTOMER_TYPES)),
                   lake / "customers" / "customers.parquet")
    return prices


def day_of_events(day: int, count: int, first_seq: int, args: argparse.Namespace,
                  prices: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """About `count` events of one day: site sessions plus e-mail opens and clicks."""
    sessions = max(1, count // EVENTS_PER_SESSION)
    weights = rng.lognormal(0, 1.0, args.customers)  # some customers visit far more often
    owner = rng.choice(args.customers, sessions, p=weights / weights.sum())
    lengths = rng.geometric(1 / EVENTS_PER_SESSION, sessions)
    session_of = np.repeat(np.arange(sessions), lengths)
    n = len(session_of)
    start_us = (START.value // 1000 + day * 86_400_000_000
                + rng.integers(0, 86_400_000_000, sessions))
    gaps = rng.exponential(40e6, n).astype("int64")
    offsets = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[np.cumsum(lengths) - lengths], lengths)
    times = start_us[session_of] + offsets
    kinds = SITE_TYPES[rng.choice(len(SITE_TYPES), n, p=SITE_SHARES)]
    buyers = rng.random(sessions) < 0.02
    last = np.cumsum(lengths) - 1
    kinds[last[buyers]] = "purchase"
    popularity = rng.zipf(1.3, n) % args.products
    product = np.where(np.isin(kinds, ["page_view", "search", "checkout_start", "click"]), -1,
                       popularity)
    frame = pd.DataFrame({
        "customer_id": np.char.add("c", owner[session_of].astype(str)),
        "event_type": kinds, "timestamp_us": times,
        "product_id": np.where(product >= 0, np.char.add("p", product.astype(str)), None),
        "session_id": np.char.add(f"s{day}-", session_of.astype(str)),
        "price": np.where(product >= 0, prices[np.maximum(product, 0)], np.nan),
        "quantity": np.where(np.isin(kinds, ["add_to_cart", "remove_from_cart", "purchase"]),
                             rng.integers(1, 3, n), np.nan),
        "order_id": np.where(kinds == "purchase", np.char.add(f"o{day}-", session_of.astype(str)),
                             None),
        "device_type": np.array(["mobile", "desktop", "tablet"])[session_of % 3],
    })
    emails = max(1, int(n * 0.015))
    mail = pd.DataFrame({
        "customer_id": np.char.add("c", rng.integers(0, args.customers, emails).astype(str)),
        "event_type": np.where(rng.random(emails) < 0.15, "email_click", "email_open"),
        "timestamp_us": START.value // 1000 + day * 86_400_000_000
        + rng.integers(0, 86_400_000_000, emails),
        "product_id": None, "session_id": None, "price": np.nan, "quantity": np.nan,
        "order_id": None, "device_type": "mobile"})
    frame = pd.concat([frame, mail], ignore_index=True).sort_values("timestamp_us")
    frame = frame[frame["timestamp_us"] < START.value // 1000 + (day + 1) * 86_400_000_000]
    frame["seq"] = np.arange(first_seq, first_seq + len(frame))
    return frame


def write_day(lake: Path, frame: pd.DataFrame) -> None:
    """Append one day's events to the lake's hive partitions (date=/hour=)."""
    stamps = pd.to_datetime(frame["timestamp_us"], unit="us", utc=True)
    table = pa.table({
        "seq": frame["seq"].to_numpy(),
        "event_id": np.char.add("e", frame["seq"].to_numpy().astype(str)),
        "customer_id": frame["customer_id"].to_numpy(),
        "event_type": frame["event_type"].to_numpy(),
        "product_id": frame["product_id"].to_numpy(), "timestamp": stamps,
        "session_id": frame["session_id"].to_numpy(), "price": frame["price"].to_numpy(),
        "quantity": frame["quantity"].to_numpy(), "order_id": frame["order_id"].to_numpy(),
        "device_type": frame["device_type"].to_numpy(), "query": pa.nulls(len(frame), pa.string()),
        "properties": pa.nulls(len(frame), pa.string()), "received_at": stamps,
    }).cast(LAKE_EVENT_SCHEMA)
    table = table.append_column("date", pa.array(stamps.dt.strftime("%Y-%m-%d")))
    table = table.append_column("hour", pa.array(stamps.dt.strftime("%H")))
    ds.write_dataset(table, lake / "events", format="parquet", partitioning=["date", "hour"],
                     partitioning_flavor="hive", existing_data_behavior="overwrite_or_ignore",
                     basename_template=f"part-{int(frame['seq'].iloc[0])}-{{i}}.parquet")


def build_lake(settings: Settings, args: argparse.Namespace) -> int:
    """Write the synthetic shop into the lake; returns the events written."""
    rng = np.random.default_rng(7)
    lake = Path(settings.lake_root)
    prices = write_catalogue(lake, args, rng)
    written = 0
    for day in range(args.days):
        frame = day_of_events(day, args.events // args.days, written + 1, args, prices, rng)
        write_day(lake, frame)
        written += len(frame)
        print(f"  setup: day {day + 1}/{args.days}, {written:,} events", file=sys.stderr)
    return written


def baseline_seconds(settings: Settings) -> float:
    """One GROUP BY customer pass over the same events."""
    connection = open_warehouse(settings, read_only=True)
    try:
        started = time.perf_counter()
        connection.execute(
            "SELECT customer_id, COUNT(*) FROM events GROUP BY customer_id").fetchall()
        return time.perf_counter() - started
    finally:
        connection.close()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tailor-bench-features-"))
    settings = load_settings(home=workdir / "home", env={})
    try:
        if not (args.reuse and settings.warehouse_file.is_file()):
            shutil.rmtree(settings.home_path, ignore_errors=True)
            build_lake(settings, args)
            started = time.perf_counter()
            refresh_warehouse(settings)
            print(f"warehouse refresh (orders, sessions tables): "
                  f"{time.perf_counter() - started:.1f} s (not part of the target)")
        events = duckdb.connect(str(settings.warehouse_file), read_only=True).execute(
            "SELECT COUNT(*) FROM events").fetchone()[0]
        baseline = baseline_seconds(settings)
        started = time.perf_counter()
        build = compute_features(settings, now=pd.Timestamp.now(tz="UTC").to_pydatetime(),
                                 progress=lambda message: print(f"  {message}", file=sys.stderr))
        seconds = time.perf_counter() - started
        rows = ", ".join(f"{table} {count:,}" for table, count in build.rows.items())
        print(f"events: {events:,}; customers {args.customers:,}; products {args.products:,}; "
              f"days {args.days}")
        print(f"feature rows: {rows}")
        print(f"compute all features: {seconds:.1f} s (target <= {TARGET_SECONDS:.0f} s for "
              f"{TARGET_EVENTS:,} events; scaled to 10M: "
              f"{seconds * TARGET_EVENTS / events:.1f} s)")
        print(f"baseline GROUP BY customer pass: {baseline:.2f} s; ratio {seconds / baseline:.0f}x")
        verdict = "PASS" if seconds * TARGET_EVENTS / events <= TARGET_SECONDS else "FAIL"
        print(f"{verdict}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
