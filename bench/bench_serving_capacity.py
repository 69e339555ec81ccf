"""Serving capacity: `/homepage` (and also-bought, checkout offer) beside BentoML's own floor.

Targets (issue 16, docs/benchmarks.md "Serving capacity"), both servers in the same run:
  * server CPU per request (the server's process tree, `psutil`) <= 1.2x the floor's, per
    endpoint (the floor answers each endpoint's path with a constant body: bench/trivial_service.py);
  * the highest constant rate (`--steps`) with p99 <= 50 ms and no errors >= 0.85x the floor's;
  * with `--redis-home`, the embedded default (the home's SQLite online store) holds >= 0.8x
    the rate of the same home on Redis.

Load: `hey` (Debian package), one process per 10 requests/s, each one connection pacing a
request every 100 ms, started evenly across that period (bench_serving.py's `hey_load`); the
bodies are the shop's ten biggest buyers in turn. The servers take turns (`--rounds`) at each
rate: Tailor, the floor, (Tailor on Redis), so the machine's other load hits them alike.

Reads a prepared home (`tailor demo --home DIR`; a Redis copy: copy the folder and run
`TAILOR_REDIS_URL=redis://.../7 TAILOR_FEATURES_PROJECT=x tailor features --home COPY`).
Writes the servers' logs under `--logs` and an API key in each home.

Run: .venv/bin/python bench/bench_serving_capacity.py --home /tmp/serving-demo
     [--redis-home /tmp/serving-demo-redis --redis-url redis://127.0.0.1:6379/7
      --redis-project P] [--steps 100,200,300,400] [--seconds 20] [--rounds 2] [--workers 2]
     [--with-batching] [--compare-env TAILOR_SERVING_TRACING=true] [--paths /homepage]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The shared load generator and server helpers.
from bench_serving import (
    LoadResult,
    Server,
    hey_load,
    secret_key,
    start_tailor,
    start_trivial,
)

CPU_RATIO = 1.2
DEMO_HOME = Path(__file__).resolve().parents[1] / ".tailor" / "demo"  # make demo's home
RATE_RATIO = 0.85
SQLITE_RATIO = 0.8
SUSTAINED_P99_MS = 50.0
CPU_RATE = 100  # requests/s of the CPU-per-request runs: well below saturation


def biggest_buyers(home: Path, count: int = 10) -> list[str]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return [str(row[0]) for row in con.execute(
            "SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC "
            f"LIMIT {count}").fetchall()]


def popular_products(home: Path, count: int = 10) -> list[str]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return [str(row[0]) for row in con.execute(
            "SELECT product_id FROM events WHERE event_type = 'purchase' GROUP BY product_id "
            "ORDER BY count(*) DESC "
            f"LIMIT {count}").fetchall()]


def bodies(home: Path) -> dict[str, list[dict]]:
    """Request bodies per endpoint path."""
    buyers, products = biggest_buyers(home), popular_products(home)
    return {
        "/homepage": [{"customer_id": customer, "k": 10} for customer in buyers],
        "/also_bought": [{"product_id": product, "k": 10} for product in products],
        "/checkout_offer": [{"customer_id": customer, "session_id": f"s-{number}",
                             "cart": [{"product_id": products[number % len(products)],
                                       "quantity": 1}]}
                            for number, customer in enumerate(buyers)],
    }


def load(server: Server, path: str, requests: list[dict], key: str, rate: int, seconds: int,
         label: str) -> LoadResult:
    before = server.cpu_seconds()
    result = hey_load(f"{server.url}{path}", requests, key, rate, seconds, label)
    result.server_cpu_seconds = server.cpu_seconds() - before
    return result


def candidates_pending(server: Server, key: str) -> float:
    """The server's `tailor_homepage_candidates_pending` (summed over its workers)."""
    text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {key}"},
                     timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tailor_homepage_candidates_pending"))


def wait_for_candidates(servers: dict[str, Server], keys: dict[str, str]) -> None:
    """Measure once every Tailor server has found its customers' homepage candidates (a
    version's load work, in the background: minutes for a million customers)."""
    started = time.monotonic()
    for name, server in servers.items():
        if not name.startswith("tailor"):
            continue
        while (pending := candidates_pending(server, keys[name])) > 0 or \
                time.monotonic() - started < 5:  # every worker has loaded by then
            time.sleep(2)
        print(f"{name}: homepage candidates ready after {time.monotonic() - started:.0f} s "
              f"(pending {pending:.0f})")


def settle(servers: dict[str, Server], idle_share: float = 0.05, longest: float = 90.0) -> None:
    """Wait until no server spends more than `idle_share` of a core while idle (start-up work
    such as model loading, the first sweep of the tombstones or a worker's candidates would
    otherwise be billed to the first requests measured); prints each one's idle CPU."""
    deadline = time.monotonic() + longest
    for name, server in servers.items():
        while True:
            before = server.cpu_seconds()
            time.sleep(2.0)
            share = (server.cpu_seconds() - before) / 2.0
            if share <= idle_share or time.monotonic() > deadline:
                break
        print(f"{name}: idle CPU {share * 1000:.0f} ms/s")


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} on {os.cpu_count()} cores"


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows while the runs go on
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEMO_HOME,
                        help="a prepared home (default: make demo's)")
    parser.add_argument("--redis-home", type=Path)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--redis-project", default="servinghelper")
    parser.add_argument("--steps", default="100,200,300,400")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare-env", action="append", default=[],
                        help="KEY=VALUE: one more Tailor server with this setting (e.g. "
                             "TAILOR_SERVING_TRACING=true), measured beside the others")
    parser.add_argument("--with-batching", action="store_true",
                        help="one more Tailor server with adaptive batching on")
    parser.add_argument("--paths", default="/homepage,/also_bought,/checkout_offer",
                        help="endpoints of the CPU-per-request runs")
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "capacity")
    args = parser.parse_args()
    if not (args.home / "warehouse.duckdb").exists():
        print(f"skipped: no prepared home at {args.home} (run `make demo`, or pass --home)")
        return
    args.logs.mkdir(parents=True, exist_ok=True)
    steps = [int(step) for step in args.steps.split(",") if step]

    base = {key: value for key, value in os.environ.items() if not key.startswith("TAILOR_")}
    env = {**base, "TAILOR_SERVING_WORKERS": str(args.workers),
           "TAILOR_MONITORING_PREDICTION_LOG": "true"}
    key = secret_key(args.home, {**env, "TAILOR_HOME": str(args.home)})
    requests = bodies(args.home)
    servers = {"tailor": start_tailor(args.home, {**env, "TAILOR_HOME": str(args.home)}, False,
                                      args.logs / "tailor.log"),
               "floor": start_trivial(args.home, env, args.logs / "floor.log")}
    # The floor on Tailor's default of no OpenTelemetry span per request (BentoML's default
    # keeps one): the stricter comparison for Tailor's own work.
    servers["floor, no tracing"] = start_trivial(
        args.home, {**env, "TAILOR_SERVING_TRACING": "false"}, args.logs / "floor-nt.log")
    if args.redis_home:
        redis_env = {**env, "TAILOR_HOME": str(args.redis_home),
                     "TAILOR_REDIS_URL": args.redis_url,
                     "TAILOR_FEATURES_PROJECT": args.redis_project}
        redis_key = secret_key(args.redis_home, redis_env)
        servers["tailor on redis"] = start_tailor(args.redis_home, redis_env, False,
                                                  args.logs / "tailor-redis.log")
    if args.with_batching:
        servers["tailor, batching"] = start_tailor(args.home, {**env, "TAILOR_HOME":
                                                               str(args.home)}, True,
                                                   args.logs / "tailor-batching.log")
    for number, assignment in enumerate(args.compare_env):
        name, _, value = assignment.partition("=")
        servers[f"tailor {name}={value}"] = start_tailor(
            args.home, {**env, "TAILOR_HOME": str(args.home), name: value}, False,
            args.logs / f"tailor-compare-{number}.log")
    keys = {name: (redis_key if name == "tailor on redis" else key) for name in servers}
    print(f"servers up ({args.workers} workers each); {machine_load()}")
    try:
        wait_for_candidates(servers, keys)
        for server in servers.values():  # warm up every path
            for path, sample in requests.items():
                hey_load(f"{server.url}{path}", sample, keys[next(
                    name for name, s in servers.items() if s is server)], 50, 2, "warm-up")
        settle(servers)
        cpu = {}
        for path in args.paths.split(","):
            sample = requests[path]
            runs: dict[str, list[LoadResult]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, server in servers.items():
                    runs[name].append(load(server, path, sample, keys[name], CPU_RATE,
                                           args.seconds, name))
            cpu[path] = {name: sum(run.server_cpu_seconds for run in results) * 1000
                         / max(sum(run.requests for run in results), 1)
                         for name, results in runs.items()}
            errors = {name: sum(run.errors for run in results) for name, results in runs.items()}
            print(f"{path} at {CPU_RATE}/s: server CPU ms/request " + ", ".join(
                f"{name} {value:.2f}" for name, value in cpu[path].items())
                + f"; errors {errors}; {machine_load()}")
        sustained = {name: 0 for name in servers}
        table = []
        for rate in steps:
            runs = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, server in servers.items():
                    runs[name].append(load(server, "/homepage", requests["/homepage"],
                                           keys[name], rate, args.seconds, name))
            for name, results in runs.items():
                latencies = np.concatenate([run.latencies_ms for run in results])
                statuses = np.concatenate([run.statuses for run in results])
                ok = latencies[statuses == 200]
                p50, p99 = (np.percentile(ok, 50), np.percentile(ok, 99)) if len(ok) \
                    else (np.inf, np.inf)
                achieved = len(statuses) / (args.seconds * len(results))
                errors = int(np.sum(statuses != 200))
                cpu_ms = sum(run.server_cpu_seconds for run in results) * 1000 / max(
                    len(statuses), 1)
                table.append((rate, name, achieved, p50, p99, errors, cpu_ms))
                if p99 <= SUSTAINED_P99_MS and errors == 0 and achieved >= 0.95 * rate:
                    sustained[name] = max(sustained[name], rate)
                print(f"{rate}/s {name}: achieved {achieved:.0f}/s, p50 {p50:.1f} ms, "
                      f"p99 {p99:.1f} ms, errors {errors}, CPU {cpu_ms:.2f} ms/request")
            print(f"  {machine_load()}")
    finally:
        for server in servers.values():
            server.stop()

    print("\nverdicts (ratios of the same run):")
    for path, values in cpu.items():
        ratio = values["tailor"] / values["floor"]
        print(f"{'PASS' if ratio <= CPU_RATIO else 'FAIL'}  {path} CPU/request "
              f"{values['tailor']:.2f} ms vs floor {values['floor']:.2f} ms: ratio {ratio:.2f} "
              f"(target <= {CPU_RATIO})")
        strict = values["tailor"] / values["floor, no tracing"]
        print(f"{'PASS' if strict <= CPU_RATIO else 'FAIL'}  {path} against the floor without "
              f"tracing ({values['floor, no tracing']:.2f} ms): ratio {strict:.2f}")
        for name, value in values.items():
            if name not in ("tailor", "floor", "floor, no tracing"):
                print(f"      {name}: {value:.2f} ms (ratio {value / values['floor']:.2f})")
    if not steps:
        return
    floor_rate = max(sustained["floor"], sustained["floor, no tracing"]) or 1
    print(f"{'PASS' if sustained['tailor'] >= RATE_RATIO * floor_rate else 'FAIL'}  highest "
          f"rate with p99 <= {SUSTAINED_P99_MS:.0f} ms: Tailor {sustained['tailor']}/s, floor "
          f"{sustained['floor']}/s, without tracing {sustained['floor, no tracing']}/s (ratio {sustained['tailor'] / floor_rate:.2f}, target >= "
          f"{RATE_RATIO}; steps {steps})")
    if "tailor on redis" in sustained:
        redis_rate = sustained["tailor on redis"] or 1
        print(f"{'PASS' if sustained['tailor'] >= SQLITE_RATIO * redis_rate else 'FAIL'}  "
              f"SQLite default {sustained['tailor']}/s vs Redis {sustained['tailor on redis']}/s "
              f"(ratio {sustained['tailor'] / redis_rate:.2f}, target >= {SQLITE_RATIO})")
    print(machine_load())


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"bench took {time.perf_counter() - started:.0f} s")
