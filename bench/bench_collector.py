"""Collector speed over loopback HTTP, into SQLite and PostgreSQL, beside a no-HTTP baseline.

Targets (docs/benchmarks.md): >= 10,000 events/s sustained in batches of 100, and p99
acknowledgement <= 50 ms at 2,000 events/s. Each figure is printed beside the same run's
baseline, which feeds the same batches to the collector's own writer (validation + commit) in-process,
so the ratio is what the HTTP layer costs; the bare `insert_events` rate of the store
(events validated beforehand) is printed too, as the ceiling, and so is the latency of a
plain fdatasync on the same disk, the floor under any durable acknowledgement. The
collector's CPU per batch (throughput and 2,000/s runs) is the least load-sensitive figure.

Writes throw-away stores only: SQLite files in a temporary folder and a temporary
PostgreSQL schema (dropped at the end). Progress goes to stderr; results to stdout.

Run: .venv/bin/python bench/bench_collector.py [--seconds 20] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterator
from urllib.parse import quote

import httpx
import pandas as pd
from rich.console import Console

from tailor.config import load_settings
from tailor.events.collector.batches import Submission
from tailor.events.collector.metrics import CollectorMetrics
from tailor.events.collector.writer import BatchWriter
from tailor.events.keys import create_key
from tailor.events.schema import validate_events
from tailor.events.store import open_event_store
from tailor.features.collector_hook import session_feature_hook

TARGET_EVENTS_PER_SECOND = 10_000
LATENCY_RATE_EVENTS = 2_000
TARGET_P99_MS = 50.0
BATCH_EVENTS = 100
CONCURRENCY = 16  # requests in flight in the throughput test (many shoppers' browsers)
EVENT_TYPES = ("product_view", "page_view", "product_view", "add_to_cart", "search", "click")
console = Console(stderr=True)


# -- the events --------------------------------------------------------------------------------


class BatchMaker:
    """Batches of distinct, valid events as JSON text (fast enough to keep up with the server)."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.counter = 0

    def events(self) -> list[dict]:
        stamp = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=2)).isoformat()
        batch = []
        for _ in range(BATCH_EVENTS):
            self.counter += 1
            number = self.counter
            event_type = EVENT_TYPES[number % len(EVENT_TYPES)]
            event = {"event_id": f"{self.run}-{number}", "customer_id": f"c-{number % 5000}",
                     "event_type": event_type, "timestamp": stamp,
                     "session_id": f"s-{number % 900}", "properties": {"page": "/p"}}
            if event_type in ("product_view", "add_to_cart"):
                event["product_id"] = f"p-{number % 300}"
            if event_type == "search":
                event["query"] = "linen shirt"
            batch.append(event)
        return batch

    def body(self) -> bytes:
        import json

        return json.dumps({"sent_at": pd.Timestamp.now(tz="UTC").isoformat(),
                           "events": self.events()}).encode()


# -- load shapes (shared by HTTP and the baseline) ------------------------------------------


@dataclass
class LoadResult:
    events: int
    seconds: float
    latencies: list[float]
    per_window: list[float]  # events/s in each 5 s window
    server_cpu: float = 0.0  # CPU seconds the collector process used (HTTP runs)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def closed_loop(send: Callable[[], Awaitable[int]], seconds: float,
                      concurrency: int) -> LoadResult:
    """`concurrency` senders back to back for `seconds`; counts acknowledged events."""
    started = time.perf_counter()
    deadline = started + seconds
    done: list[tuple[float, int, float]] = []

    async def sender() -> None:
        while time.perf_counter() < deadline:
            begin = time.perf_counter()
            events = await send()
            done.append((time.perf_counter(), events, time.perf_counter() - begin))

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return _summarise(done, started, time.perf_counter() - started)


async def fixed_rate(send: Callable[[], Awaitable[int]], seconds: float,
                     events_per_second: int) -> LoadResult:
    """Batches on a fixed schedule; latency counts from the scheduled time (no coordinated
    omission: a slow answer delays no later request)."""
    interval = BATCH_EVENTS / events_per_second
    started = time.perf_counter()
    done: list[tuple[float, int, float]] = []

    async def one(scheduled: float) -> None:
        events = await send()
        done.append((time.perf_counter(), events, time.perf_counter() - scheduled))

    tasks = []
    for number in range(int(seconds / interval)):
        scheduled = started + number * interval
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return _summarise(done, started, time.perf_counter() - started)


def _summarise(done: list[tuple[float, int, float]], started: float, seconds: float) -> LoadResult:
    windows: dict[int, int] = {}
    for finished, events, _ in done:
        window = int((finished - started) // 5)
        windows[window] = windows.get(window, 0) + events
    full = [count / 5 for window, count in sorted(windows.items()) if (window + 1) * 5 <= seconds]
    return LoadResult(events=sum(events for _, events, _ in done), seconds=seconds,
                      latencies=[latency for _, _, latency in done], per_window=full)


# -- HTTP: a real `tailor collect` process ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def collector_process(home: Path, database_url: str) -> Iterator[tuple[str, int]]:
    """A `tailor collect` on a free loopback port; yields its base URL and process id."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    env.update(TAILOR_HOME=str(home), TAILOR_DATABASE_URL=database_url)
    tailor = str(Path(sys.executable).with_name("tailor"))
    with open(home / "collector.log", "ab") as log:
        process = subprocess.Popen([tailor, "collect", "--port", str(port)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"collector did not start; see {home / 'collector.log'}")
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


async def http_load(url: str, key: str, seconds: float, rate: int | None) -> LoadResult:
    """Throughput (rate None) or fixed-rate load against a collector over HTTP."""
    maker = BatchMaker()
    limits = httpx.Limits(max_connections=CONCURRENCY * 4,
                          max_keepalive_connections=CONCURRENCY * 4)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def send() -> int:
            response = await client.post("/v1/events", content=maker.body(), headers={
                "X-Tailor-Key": key, "Content-Type": "application/json"})
            response.raise_for_status()
            return int(response.json()["accepted"])

        if rate is None:
            return await closed_loop(send, seconds, CONCURRENCY)
        return await fixed_rate(send, seconds, rate)


# -- baseline: the same writer, no HTTP ------------------------------------------------------


async def direct_load(database_url: str, home: Path, seconds: float,
                      rate: int | None) -> LoadResult:
    """The same batches handed straight to the collector's writer (validation + commit)."""
    settings = load_settings(home=home, env={}).replace(database_url=database_url)
    writer = BatchWriter(settings, CollectorMetrics(), session_feature_hook(settings))
    writer.start()
    maker = BatchMaker()

    async def send() -> int:
        submission = Submission(events=maker.events(), received_at=pd.Timestamp.now(tz="UTC"))
        result = await asyncio.wrap_future(writer.submit(submission))
        return result.accepted

    try:
        if rate is None:
            return await closed_loop(send, seconds, CONCURRENCY)
        return await fixed_rate(send, seconds, rate)
    finally:
        writer.stop()


def bare_insert_rate(database_url: str, seconds: float) -> float:
    """Events/s of `insert_events` alone, 100 validated events per call."""
    store = open_event_store(database_url)
    maker = BatchMaker()
    now = pd.Timestamp.now(tz="UTC")
    frames = [validate_events(pd.DataFrame(maker.events()), now=now).valid for _ in range(50)]
    inserted, started = 0, time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            for frame in frames:
                frame = frame.assign(
                    event_id=[f"{maker.run}-b{inserted + n}" for n in range(len(frame))])
                inserted += store.insert_events(frame, "bench")
    finally:
        store.close()
    return inserted / (time.perf_counter() - started)


def fsync_latency(folder: Path, samples: int = 200) -> LoadResult:
    """Latency of a durable 4 KiB append (write + fdatasync) on the store's disk, 50 a second:
    the floor under any acknowledgement that waits for a commit."""
    latencies = []
    path = folder / "fsync-probe"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for _ in range(samples):
            started = time.perf_counter()
            os.write(descriptor, b"x" * 4096)
            os.fdatasync(descriptor)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    finally:
        os.close(descriptor)
        path.unlink()
    return LoadResult(events=samples, seconds=sum(latencies), latencies=latencies, per_window=[])


# -- stores ----------------------------------------------------------------------------------


@contextmanager
def store_urls(kind: str, folder: Path, postgres_url: str) -> Iterator[Callable[[str], str]]:
    """A function naming a fresh store (SQLite file or PostgreSQL schema) per purpose."""
    if kind == "sqlite":
        yield lambda purpose: f"sqlite:///{folder / purpose / 'events.db'}"
        return
    import psycopg

    schemas: list[str] = []

    def fresh(purpose: str) -> str:
        schema = f"bench_{purpose}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        return f"{postgres_url}?options={quote(f'-csearch_path={schema}')}"

    try:
        yield fresh
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            for schema in schemas:
                connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def bench_store(kind: str, seconds: float, postgres_url: str) -> bool:
    """Run every measurement on one store kind; prints the results, returns pass/fail."""
    with tempfile.TemporaryDirectory(prefix="tailor-bench-") as temporary, \
            store_urls(kind, Path(temporary), postgres_url) as fresh_url:
        folder = Path(temporary)
        home = folder / "home"
        key = create_key("secret", home / "collector_keys.json")
        latency_seconds = min(seconds, 30.0)
        with console.status(f"{kind}: HTTP throughput for {seconds:.0f} s"):
            with collector_process(home, fresh_url("http")) as (url, pid):
                cpu_before = cpu_seconds(pid)
                throughput = asyncio.run(http_load(url, key, seconds, None))
                throughput.server_cpu = cpu_seconds(pid) - cpu_before
            with collector_process(home, fresh_url("http_latency")) as (url, pid):
                cpu_before = cpu_seconds(pid)
                latency = asyncio.run(http_load(url, key, latency_seconds, LATENCY_RATE_EVENTS))
                latency.server_cpu = cpu_seconds(pid) - cpu_before
        with console.status(f"{kind}: baseline without HTTP"):
            direct = asyncio.run(direct_load(fresh_url("direct"), home, min(seconds, 20.0), None))
            direct_latency = asyncio.run(direct_load(fresh_url("direct_latency"), home,
                                                     latency_seconds, LATENCY_RATE_EVENTS))
            bare = bare_insert_rate(fresh_url("bare"), min(seconds, 10.0))
            disk = fsync_latency(folder)
    return report(kind, throughput, latency, direct, direct_latency, bare, disk)


def report(kind: str, throughput: LoadResult, latency: LoadResult, direct: LoadResult,
           direct_latency: LoadResult, bare: float, disk: LoadResult) -> bool:
    """Print one store's figures beside their targets and baselines."""
    worst_window = min(throughput.per_window) if throughput.per_window else throughput.rate
    p99 = latency.percentile_ms(0.99)
    print(f"[{kind}] throughput over HTTP: {throughput.rate:,.0f} events/s for "
          f"{throughput.seconds:.0f} s (slowest 5 s window {worst_window:,.0f}; "
          f"{CONCURRENCY} requests in flight, {BATCH_EVENTS} events each) "
          f"target >= {TARGET_EVENTS_PER_SECOND:,}")
    cpu_ms = 1000 * throughput.server_cpu / (throughput.events / BATCH_EVENTS)
    print(f"[{kind}]   collector CPU: {cpu_ms:.1f} ms per batch of {BATCH_EVENTS} -> "
          f"{1000 / cpu_ms * BATCH_EVENTS:,.0f} events/s per fully used core")
    print(f"[{kind}]   baseline, same writer without HTTP: {direct.rate:,.0f} events/s "
          f"-> HTTP keeps {throughput.rate / direct.rate:.0%}; bare insert_events: "
          f"{bare:,.0f} events/s")
    print(f"[{kind}] ack latency at {LATENCY_RATE_EVENTS:,} events/s over HTTP: p99 {p99:.1f} ms "
          f"(p50 {latency.percentile_ms(0.5):.1f}, max {max(latency.latencies) * 1000:.1f}; "
          f"{latency.rate:,.0f} events/s achieved) target <= {TARGET_P99_MS:.0f} ms")
    print(f"[{kind}]   collector CPU at {LATENCY_RATE_EVENTS:,} events/s: "
          f"{1000 * latency.server_cpu / (latency.events / BATCH_EVENTS):.1f} ms per batch "
          f"({latency.server_cpu / latency.seconds:.0%} of one core)")
    direct_p99 = direct_latency.percentile_ms(0.99)
    print(f"[{kind}]   baseline, same writer without HTTP: p99 {direct_p99:.1f} ms "
          f"(p50 {direct_latency.percentile_ms(0.5):.1f}) -> HTTP costs {p99 / direct_p99:.2f}x")
    print(f"[{kind}]   the disk's own sync (4 KiB write + fdatasync): p99 "
          f"{disk.percentile_ms(0.99):.1f} ms (p50 {disk.percentile_ms(0.5):.1f})")
    return worst_window >= TARGET_EVENTS_PER_SECOND and p99 <= TARGET_P99_MS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="length of the throughput test (60 for the issue's figure)")
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "TAILOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    passed = [bench_store(kind.strip(), args.seconds, args.postgres_url)
              for kind in args.stores.split(",") if kind.strip()]
    print(f"machine: {os.cpu_count()} cores; 1-minute load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (other work on the machine slows every figure)")
    print("PASS" if all(passed) else "FAIL")
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
