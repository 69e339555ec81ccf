"""Event import throughput: target >= 100,000 rows/s end to end, beside a raw-INSERT baseline.

Generates N contract rows (a CSV in a temporary folder), then per backend measures:
  * end to end: `ingest_files` on the CSV (read, validate, write, dead letter, run record);
  * store write alone: `EventStore.insert_events` on the already validated chunks;
  * baseline: the same rows through a plain per-row `executemany` INSERT into an equivalent
    table (same columns, unique key and indexes, one transaction per chunk, same durability).

Each figure is wall-clock rows/s; beside it, the CPU seconds of this process (all threads) and
of the reader process `ingest_files` starts, which tell a slow machine from a busy one (a
PostgreSQL server's own CPU is not included).

Run: .venv/bin/python bench/bench_ingest.py [--rows 1000000] [--backend sqlite|postgres|both]
     [--format csv|parquet|jsonl|all]
(`all`: the same rows end to end from CSV, Parquet and JSON Lines, one after the other.)
PostgreSQL: TAILOR_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a fresh schema is created and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from tailor.config import load_settings
from tailor.events.frames import complete_events, event_matrix
from tailor.events.ingest.job import ingest_files
from tailor.events.schema import EVENT_COLUMNS, validate_events
from tailor.events.store import open_event_store

TARGET_ROWS_PER_SECOND = 100_000
POSTGRES_URL = os.environ.get("TAILOR_BENCH_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
EVENT_MIX = {"page_view": 0.30, "product_view": 0.35, "search": 0.08, "add_to_cart": 0.12,
             "remove_from_cart": 0.03, "checkout_start": 0.05, "purchase": 0.04, "click": 0.03}


def generate_events(n_rows: int, seed: int = 7) -> pd.DataFrame:
    """N contract rows as text, shaped like a shop's event log (random ids, ISO times)."""
    rng = np.random.default_rng(seed)
    types = rng.choice(list(EVENT_MIX), size=n_rows, p=np.array(list(EVENT_MIX.values())))
    customers = rng.integers(0, max(n_rows // 20, 1), n_rows)
    products = rng.integers(0, 5_000, n_rows)
    start = pd.Timestamp("2026-01-05", tz="UTC").value // 10**9
    seconds = np.sort(rng.integers(start, start + 60 * 86_400, n_rows))
    is_product = np.isin(types, ["product_view", "add_to_cart", "remove_from_cart", "purchase"])
    priced = np.isin(types, ["add_to_cart", "purchase"])
    prices = np.round(rng.uniform(2, 300, n_rows), 2)
    frame = pd.DataFrame({
        "event_id": [uuid.UUID(int=int(v)).hex for v in rng.integers(0, 2**63, n_rows)],
        "customer_id": pd.Series(customers).map("c{:07d}".format),
        "event_type": types,
        "product_id": np.where(is_product, pd.Series(products).map("p{:05d}".format), None),
        "timestamp": pd.to_datetime(seconds, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "session_id": pd.Series(customers * 7 + seconds // 1800).map("s{:x}".format),
        "price": np.where(priced, prices.astype(str), None),
        "quantity": np.where(types == "purchase", "1", None),
        "device_type": rng.choice(["mobile", "desktop", "tablet"], n_rows),
        "query": np.where(types == "search", "running shoes", None),
    })
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """The frame as a CSV file (nulls as empty fields)."""
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), str(path))


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """The frame as Parquet with typed columns, as an exporting system would write it."""
    typed = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True),
                         price=pd.to_numeric(frame["price"]),
                         quantity=pd.to_numeric(frame["quantity"]))
    typed.to_parquet(path, index=False)


def write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    """The frame as JSON Lines, one flat object per event (absent values left out, numbers
    as JSON numbers), as an exporting system would write it."""
    typed = frame.assign(price=pd.to_numeric(frame["price"]),
                         quantity=pd.to_numeric(frame["quantity"]))
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, len(typed), 100_000):
            part = typed.iloc[start:start + 100_000]
            lines = (json.dumps({key: value for key, value in record.items()
                                 if value is not None and value == value})
                     for record in part.to_dict(orient="records"))
            handle.write("\n".join(lines) + "\n")


WRITERS = {"csv": write_csv, "parquet": write_parquet, "jsonl": write_jsonl}


def validated_chunks(frame: pd.DataFrame, chunk_rows: int) -> list[pd.DataFrame]:
    """The frame's valid rows per chunk, as ingest hands them to the store."""
    now = pd.Timestamp.now(tz="UTC")
    return [validate_events(frame.iloc[start:start + chunk_rows], now=now).valid
            for start in range(0, len(frame), chunk_rows)]


def fresh_url(backend: str, folder: Path, name: str) -> tuple[str, str | None]:
    """A new empty store URL (and the PostgreSQL schema to drop afterwards)."""
    if backend == "sqlite":
        return f"sqlite:///{folder / f'{name}.db'}", None
    import psycopg

    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    return f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}", schema


def drop_schema(schema: str | None) -> None:
    """Drop a benchmark schema (PostgreSQL only)."""
    if schema:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (ingest's reader process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Timer:
    """Wall-clock and CPU seconds (this process and its reader processes) of a `with` block."""

    def __enter__(self) -> "Timer":
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = cpu_seconds() - self._cpu


def time_end_to_end(backend: str, path: Path, folder: Path, chunk_rows: int) -> Timer:
    """Time of `ingest_files` on the file into a fresh store."""
    url, schema = fresh_url(backend, folder, "e2e")
    settings = load_settings(home=folder / f"home-{backend}-{path.suffix[1:]}", env={}).replace(
        database_url=url, ingest_chunk_rows=chunk_rows)
    try:
        with Timer() as timer:
            report = ingest_files(settings, path, progress=False)
        handled = report.accepted + report.duplicates + sum(report.rejected.values())
        assert handled == report.received
        return timer
    finally:
        drop_schema(schema)


def time_store_write(backend: str, chunks: list[pd.DataFrame], folder: Path) -> Timer:
    """Time of `insert_events` of the validated chunks into a fresh store."""
    url, schema = fresh_url(backend, folder, "store")
    store = open_event_store(url)
    try:
        with Timer() as timer:
            for chunk in chunks:
                store.insert_events(chunk, "bench")
        assert store.count_events() == sum(len(chunk) for chunk in chunks)
        return timer
    finally:
        store.close()
        drop_schema(schema)


def time_baseline(backend: str, chunks: list[pd.DataFrame], folder: Path) -> Timer:
    """Time of a plain per-row executemany INSERT of the same rows, a transaction per chunk."""
    url, schema = fresh_url(backend, folder, "baseline")
    store = open_event_store(url)  # creates the same `events` table, unique key and indexes
    store.close()
    columns = ", ".join('"timestamp"' if name == "timestamp" else name for name in EVENT_COLUMNS)
    try:
        if backend == "sqlite":
            return _sqlite_baseline(url, chunks, columns)
        return _postgres_baseline(url, chunks, columns)
    finally:
        drop_schema(schema)


def _rows(chunk: pd.DataFrame) -> list[tuple]:
    return [tuple(row) for row in event_matrix(complete_events(chunk)).tolist()]


def _sqlite_baseline(url: str, chunks: list[pd.DataFrame], columns: str) -> Timer:
    connection = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "cache_size=-65536"):  # as the store
        connection.execute(f"PRAGMA {pragma}")
    sql = (f"INSERT INTO events ({columns}, received_at, batch_id) "
           f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))}, 0, 'baseline')")
    with Timer() as timer:
        for chunk in chunks:
            connection.execute("BEGIN")
            connection.executemany(sql, _rows(chunk))
            connection.execute("COMMIT")
    connection.close()
    return timer


def _postgres_baseline(url: str, chunks: list[pd.DataFrame], columns: str) -> Timer:
    import psycopg

    placeholders = ", ".join(["%s"] * len(EVENT_COLUMNS))
    sql = (f"INSERT INTO events ({columns}, received_at, batch_id) "
           f"VALUES ({placeholders}, now(), 'baseline')")
    with psycopg.connect(url) as connection, Timer() as timer:
        for chunk in chunks:
            rows = [row[:4] + (pd.Timestamp(row[4], unit="us", tz="UTC").to_pydatetime(),) + row[5:]
                    for row in _rows(chunk)]
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(sql, rows)
    return timer


def report_line(label: str, rows: int, timer: Timer, baseline: Timer | None = None) -> str:
    """One result line: rows/s, seconds, CPU seconds and the ratio to the baseline."""
    rate = rows / timer.wall
    line = (f"  {label:<36} {rate:>10,.0f} rows/s  ({timer.wall:6.2f} s, cpu {timer.cpu:6.2f} s"
            f" = {1e6 * timer.cpu / rows:4.1f} us/row)")
    if baseline is not None:
        line += f"  {baseline.wall / timer.wall:5.2f}x baseline"
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--format", choices=["csv", "parquet", "jsonl", "all"], default="csv",
                        help="File format ingested end to end (the same rows either way); "
                             "all: each of them.")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} at start")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    ok = True
    with tempfile.TemporaryDirectory(prefix="tailor-bench-") as tmp:
        folder = Path(tmp)
        frame = generate_events(args.rows)
        formats = list(WRITERS) if args.format == "all" else [args.format]
        paths = {}
        for name in formats:
            paths[name] = folder / f"events.{name}"
            WRITERS[name](frame, paths[name])
        chunks = validated_chunks(frame, args.chunk_rows)
        sizes = ", ".join(f"{name} {path.stat().st_size / 1e6:.0f} MB"
                          for name, path in paths.items())
        print(f"{args.rows:,} events ({sizes}), chunks of {args.chunk_rows:,}; "
              f"target >= {TARGET_ROWS_PER_SECOND:,} rows/s end to end")
        for backend in backends:
            baseline = time_baseline(backend, chunks, folder)
            store_write = time_store_write(backend, chunks, folder)
            print(f"{backend}:")
            for name, path in paths.items():
                end_to_end = time_end_to_end(backend, path, folder, args.chunk_rows)
                print(report_line(f"ingest_files {name} (end to end)", args.rows, end_to_end,
                                  baseline))
                passed = args.rows / end_to_end.wall >= TARGET_ROWS_PER_SECOND
                print(f"  {name} end to end vs target {TARGET_ROWS_PER_SECOND:,} rows/s: "
                      f"{'PASS' if passed else 'FAIL'}")
                ok = ok and passed
            print(report_line("store write alone", args.rows, store_write, baseline))
            print(report_line("baseline executemany INSERT", args.rows, baseline))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
