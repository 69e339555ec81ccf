"""The Segment API's throughput beside the native endpoint's, on one collector in one run.

Target (docs/benchmarks.md): events/s over `POST /v1/batch` (Segment's calls as
`segment-analytics-python` sends them: gzip bodies, write key as the HTTP Basic user)
>= 0.8x events/s over `POST /v1/events` (tailor.js's batches) for the same behaviour, 100
events per request, 16 requests in flight. Rounds alternate between the two endpoints (and
which goes first, an even number of rounds by default) on the same `tailor collect` process,
after an unmeasured warm-up through both (a round on an empty store is faster than any later
one), so both see the same machine and store; bodies are made before
each round, so the load generator spends its time sending, not encoding, but each gets its
`sentAt` when it is sent, as the libraries stamp it (a stale one would have the collector
correct every event's clock). The collector's CPU per batch is printed too, in all and per
thread (the event loop, which reads and maps the requests, and the others: the writer,
which checks and commits them, and the session-feature pusher): the figure least moved by
other work on the machine.

Writes a throw-away SQLite store in a temporary folder. Progress goes to stderr; results
to stdout.

Run: .venv/bin/python bench/bench_segment.py [--batches 600] [--rounds 4] [--warmup 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collector import (  # noqa: E402 (the sibling benchmark's process helpers)
    BATCH_EVENTS,
    CONCURRENCY,
    EVENT_TYPES,
    collector_process,
    console,
    cpu_seconds,
)
from tailor.events.keys import create_key  # noqa: E402

TARGET_RATIO = 0.8
STAMP = "@SENT-AT@"  # where a body's sentAt goes when it is sent
SPEC_NAMES = {"product_view": "Product Viewed", "add_to_cart": "Product Added",
              "search": "Products Searched", "click": "Product Clicked"}


def behaviour(run: str, batch: int) -> list[dict]:
    """One batch's worth of shopper behaviour: the same mix as bench_collector's batches."""
    stamp = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=2)).isoformat()
    rows = []
    for offset in range(BATCH_EVENTS):
        number = batch * BATCH_EVENTS + offset
        event_type = EVENT_TYPES[number % len(EVENT_TYPES)]
        row = {"id": f"{run}-{number}", "customer": f"c-{number % 5000}", "type": event_type,
               "stamp": stamp, "session": f"s-{number % 900}", "product": None, "query": None}
        if event_type in ("product_view", "add_to_cart"):
            row["product"] = f"p-{number % 300}"
        if event_type == "search":
            row["query"] = "linen shirt"
        rows.append(row)
    return rows


class Body:
    """A request body made before the round but for its `sentAt`, which is stamped when it
    is sent, as the libraries do: a stale `sentAt` would make the collector correct every
    event's clock (a pandas pass in the writer), which real senders never cause."""

    def __init__(self, head: bytes, tail: bytes) -> None:
        self.head, self.tail = head, tail

    def send_now(self) -> bytes:
        return self.head + pd.Timestamp.now(tz="UTC").isoformat().encode() + self.tail


class GzipBody(Body):
    """A gzip body whose stream is compressed up to the `sentAt` in advance: sending copies
    the compressor's state and adds the stamp and the end (valid gzip, checksum included)."""

    def __init__(self, head: bytes, tail: bytes) -> None:
        super().__init__(head, tail)
        self.packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip header and trailer
        self.packed_head = self.packer.compress(head)

    def send_now(self) -> bytes:
        packer = self.packer.copy()
        stamp = pd.Timestamp.now(tz="UTC").isoformat().encode()
        return self.packed_head + packer.compress(stamp + self.tail) + packer.flush()


def native_body(rows: list[dict]) -> Body:
    """The batch as tailor.js posts it to `/v1/events` (every event with the browser's
    anonymous id, as tailor.js sends it, as the Segment calls carry theirs)."""
    events = []
    for row in rows:
        event = {"event_id": row["id"], "customer_id": row["customer"], "event_type": row["type"],
                 "timestamp": row["stamp"], "session_id": row["session"],
                 "properties": {"anonymous_id": "anon-v-" + row["customer"], "page": "/p"}}
        if row["product"]:
            event["product_id"] = row["product"]
        if row["query"]:
            event["query"] = row["query"]
        events.append(event)
    text = json.dumps({"events": events, "sent_at": STAMP})
    head, tail = text.split(STAMP)
    return Body(head.encode(), tail.encode())


def segment_body(rows: list[dict]) -> Body:
    """The same batch as Segment's Python library posts it to `/v1/batch` (gzip)."""
    messages = []
    for row in rows:
        message = {"messageId": row["id"], "userId": row["customer"],
                   "anonymousId": "v-" + row["customer"], "timestamp": row["stamp"],
                   "context": {"library": {"name": "analytics-python", "version": "2.4.0"},
                               "sessionId": row["session"]},
                   "integrations": {}}
        if row["type"] == "page_view":
            message.update(type="page", properties={"path": "/p"})
        else:
            properties = {"path": "/p"}
            if row["product"]:
                properties["product_id"] = row["product"]
            if row["query"]:
                properties["query"] = row["query"]
            message.update(type="track", event=SPEC_NAMES[row["type"]], properties=properties)
        messages.append(message)
    text = json.dumps({"batch": messages, "writeKey": "(in the header)", "sentAt": STAMP})
    head, tail = text.split(STAMP)
    return GzipBody(head.encode(), tail.encode())


async def send_all(url: str, path: str, headers: dict[str, str], bodies: list[Body]
                   ) -> tuple[int, float]:
    """Post every body with `CONCURRENCY` requests in flight; (events stored, seconds)."""
    limits = httpx.Limits(max_connections=CONCURRENCY * 2,
                          max_keepalive_connections=CONCURRENCY * 2)
    pending = list(reversed(bodies))
    accepted = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def sender() -> None:
            nonlocal accepted
            while pending:
                response = await client.post(path, content=pending.pop().send_now(),
                                             headers=headers)
                response.raise_for_status()
                accepted += int(response.json()["accepted"])

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
        return accepted, time.perf_counter() - started


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process so far (Linux /proc; the event loop is the
    main thread, the writer `tailor-collecto…`); threads of one name are summed."""
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        name = "event loop" if task.name == str(pid) else (
            "writer" if name.startswith("tailor-collect") else "other threads")
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) \
            / os.sysconf("SC_CLK_TCK")
    return seconds


def run(batches: int, rounds: int, warmup: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="tailor-bench-segment-") as temporary:
        home = Path(temporary) / "home"
        home.mkdir()
        key = create_key("secret", home / "collector_keys.json")
        endpoints = {
            "native /v1/events": ("/v1/events", {"X-Tailor-Key": key,
                                                 "Content-Type": "application/json"},
                                  native_body),
            "segment /v1/batch": ("/v1/batch", {
                "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
                "Content-Type": "application/json", "Content-Encoding": "gzip"},
                segment_body),
        }
        # events, seconds, collector CPU, load generator CPU (this process)
        totals = {name: [0, 0.0, 0.0, 0.0] for name in endpoints}
        print(f"1-minute load average at the start: {os.getloadavg()[0]:.1f}")
        threads: dict[str, dict[str, float]] = {name: {} for name in endpoints}
        per_round: list[dict[str, float]] = []
        database = f"sqlite:///{Path(temporary) / 'events.db'}"
        with collector_process(home, database) as (url, pid):
            # Unmeasured: a round on an empty store runs faster than any later one, and it
            # would always be the first endpoint's.
            for name, (path, headers, make) in endpoints.items():
                prefix = uuid.uuid4().hex[:8]
                with console.status(f"warm-up: {name}"):
                    asyncio.run(send_all(url, path, headers, [
                        make(behaviour(prefix, batch)) for batch in range(warmup)]))
            for number in range(rounds):
                per_round.append({})
                order = list(endpoints.items())
                for name, (path, headers, make) in order[::-1] if number % 2 else order:
                    prefix = uuid.uuid4().hex[:8]
                    bodies = [make(behaviour(prefix, batch)) for batch in range(batches)]
                    with console.status(f"round {number + 1}/{rounds}: {name}"):
                        before, threads_before = cpu_seconds(pid), thread_cpu(pid)
                        own_before = time.process_time()
                        events, seconds = asyncio.run(send_all(url, path, headers, bodies))
                        totals[name][3] += time.process_time() - own_before
                        totals[name][0] += events
                        totals[name][1] += seconds
                        totals[name][2] += cpu_seconds(pid) - before
                        for thread, used in thread_cpu(pid).items():
                            threads[name][thread] = threads[name].get(thread, 0.0) + used \
                                - threads_before.get(thread, 0.0)
                    per_round[-1][name] = events / seconds
                    print(f"round {number + 1} {name}: {events / seconds:,.0f} events/s")
                    if events != batches * BATCH_EVENTS:
                        raise RuntimeError(f"{name}: {events} of {batches * BATCH_EVENTS} "
                                           "events stored")
    return report(totals, threads, per_round)


def report(totals: dict[str, list[float]], threads: dict[str, dict[str, float]],
           per_round: list[dict[str, float]]) -> bool:
    rates = {}
    for name, (events, seconds, cpu, own) in totals.items():
        rates[name] = events / seconds
        per_batch = 1000 * cpu / (events / BATCH_EVENTS)
        print(f"[{name}] {rates[name]:,.0f} events/s ({events:,.0f} events in {seconds:.1f} s, "
              f"{CONCURRENCY} requests in flight, {BATCH_EVENTS} events each); collector CPU "
              f"{per_batch:.1f} ms per batch (" + ", ".join(
                  f"{thread} {1000 * used / (events / BATCH_EVENTS):.2f}"
                  for thread, used in sorted(threads[name].items())) + f"); load generator "
              f"CPU {1000 * own / (events / BATCH_EVENTS):.1f} ms per batch")
    native, segment = rates["native /v1/events"], rates["segment /v1/batch"]
    cpu = {name: values[2] / values[0] for name, values in totals.items()}
    ratio = segment / native
    print(f"segment / native throughput: {ratio:.2f}x (target >= {TARGET_RATIO}x); CPU per "
          f"event {cpu['segment /v1/batch'] / cpu['native /v1/events']:.2f}x the native path's")
    ratios = sorted(rates_["segment /v1/batch"] / rates_["native /v1/events"]
                    for rates_ in per_round)
    print("each round's ratio (its two halves back to back): "
          + ", ".join(f"{value:.2f}x" for value in ratios)
          + f"; median {statistics.median(ratios):.2f}x")
    print(f"machine: {os.cpu_count()} cores; 1-minute load average {os.getloadavg()[0]:.1f}")
    passed = ratio >= TARGET_RATIO
    print("PASS" if passed else "FAIL")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=600,
                        help="batches of 100 events per endpoint and round")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating rounds (even: each endpoint goes first as often)")
    parser.add_argument("--warmup", type=int, default=300,
                        help="unmeasured batches per endpoint first, so no round meets an "
                             "empty store")
    args = parser.parse_args()
    return 0 if run(args.batches, args.rounds, args.warmup) else 1


if __name__ == "__main__":
    sys.exit(main())
