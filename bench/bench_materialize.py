"""Benchmark: Tailor's bulk Redis writer against Feast's own Redis materialization.

Both load the same synthetic offline files (one row per customer with every catalogue
column, as bench_online_features.py writes them) into Redis, in the same run, each
under its own Feast project, over the batch views' whole TTL window; a sample of the
hashes is then compared byte for byte (the writer must write what Feast writes). Then an
incremental `materialize` with nothing new (the steady state of `tailor features`) is
timed. The writer stays only while it is substantially faster (docs/features.md).

    .venv/bin/python bench/bench_materialize.py --customers 100000

Prints the seconds of each and both scaled linearly to 1M customers (target: at most
3 minutes for 1M). Deletes its keys and its temporary homes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import redis

from bench_online_features import write_offline
from tailor.config import Settings, load_settings
from tailor.features.repo import apply_definitions, materialize, open_feature_store
from tailor.features.redis_writer import entity_keys

TARGET_CUSTOMERS = 1_000_000
TARGET_SECONDS = 180.0
SAMPLE = 200


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--redis-url", default=os.environ.get("TAILOR_TEST_REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    return parser.parse_args()


def prepared_home(root: Path, name: str, args: argparse.Namespace) -> Settings:
    """A home with the synthetic offline files and the definitions applied."""
    settings = load_settings(home=root / name, env={}).replace(
        redis_url=args.redis_url, features_project=f"bench_{name}_{uuid.uuid4().hex[:6]}")
    write_offline(settings, args.customers, args.products)
    apply_definitions(settings)
    return settings


def batch_views(store) -> list:
    """The online views `tailor features` fills from the offline files (not the session)."""
    return [view for view in store.list_feature_views()
            if view.online and view.ttl and view.name != "session_context"]


def feast_materialize(settings: Settings, end: datetime) -> float:
    """Seconds for Feast's own `materialize` of the batch views' TTL windows into Redis."""
    store = open_feature_store(settings)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        for view in batch_views(store):
            store.materialize(start_date=end - view.ttl, end_date=end, feature_views=[view.name])
    return time.perf_counter() - started


def timed_materialize(settings: Settings, end: datetime, incremental: bool) -> float:
    """Seconds for Tailor's `materialize` (the writer for batch views on Redis)."""
    started = time.perf_counter()
    materialize(settings, end=end, incremental=incremental)
    return time.perf_counter() - started


def differing_hashes(client: redis.Redis, ours: Settings, feasts: Settings, count: int) -> int:
    """How many of `count` customers' hashes differ between the two projects."""
    ids = [f"c{index}" for index in range(0, count * 37, 37)]
    different = 0
    for mine, theirs in zip(entity_keys(ids, "customer_id", ours.features_project, 3),
                            entity_keys(ids, "customer_id", feasts.features_project, 3)):
        if client.hgetall(mine) != client.hgetall(theirs):
            different += 1
    return different


def delete_project(client: redis.Redis, project: str) -> None:
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=10_000))
    for first in range(0, len(keys), 10_000):
        client.delete(*keys[first:first + 10_000])


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="tailor-bench-materialize-"))
    client = redis.Redis.from_url(args.redis_url)
    homes: list[Settings] = []
    try:
        print(f"setup: {args.customers:,} customers, {args.products:,} products", file=sys.stderr)
        ours, feasts = prepared_home(root, "writer", args), prepared_home(root, "feast", args)
        homes = [ours, feasts]
        end = datetime.now(timezone.utc)
        writer_seconds = timed_materialize(ours, end, incremental=False)
        feast_seconds = feast_materialize(feasts, end)
        incremental_seconds = timed_materialize(ours, datetime.now(timezone.utc),
                                                incremental=True)
        sample = min(SAMPLE, args.customers // 37)
        different = differing_hashes(client, ours, feasts, sample)
        scale = TARGET_CUSTOMERS / args.customers
        print(f"materialize {args.customers:,} customers into Redis, same data, same run:")
        print(f"  Tailor writer: {writer_seconds:.1f} s (1M: {writer_seconds * scale:.0f} s, "
              f"target <= {TARGET_SECONDS:.0f} s "
              f"{'PASS' if writer_seconds * scale <= TARGET_SECONDS else 'FAIL'})")
        print(f"  Feast materialize: {feast_seconds:.1f} s (1M: {feast_seconds * scale:.0f} s); "
              f"writer {feast_seconds / writer_seconds:.1f}x faster")
        print(f"  incremental run with nothing new: {incremental_seconds:.2f} s")
        print(f"  hashes differing between the two (of {sample} sampled): {different}")
    finally:
        for settings in homes:
            delete_project(client, settings.features_project)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
