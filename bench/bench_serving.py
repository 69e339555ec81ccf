"""Serving latency under constant load: `/homepage` through a real `bentoml serve` beside its floor.

Targets (docs/benchmarks.md), on a catalogue of 100k products and 1M customers from the simulator:
  * `/homepage` p50 <= 15 ms and p99 <= 50 ms at 300 requests/s for 60 s, no errors, no 503s;
  * Tailor's p99 within 2x of a trivial endpoint's on the same server settings, same run
    (bench/trivial_service.py: same body, constant answer) -- the floor of the stack;
  * the same load with adaptive batching on and off: what batching buys, or costs;
  * the in-process pipeline beside a bare `implicit` recommend call for the same customers:
    Tailor's own overhead over the library;
  * the highest rate (stepped) that keeps p99 <= 100 ms with no errors.

Load comes from `hey` (Debian package `hey`), a constant-rate loopback generator: one hey
process per 10 requests/s, each a single connection pacing one request every 100 ms, started
evenly across that period so requests arrive evenly spaced (see `hey_load`), the three kinds
of shopper (a regular buyer, a stranger, a customer mid-session) in turn; every request's
time and status are read from hey's CSV output.

Setup (timed, not part of any target): simulate -> ingest -> export -> warehouse -> features
(Redis online store at TAILOR_REDIS_URL, default redis://127.0.0.1:6379/0) -> train homepage,
cross_sell and checkout with one trial each. `--keep DIR` reuses a prepared home.

The floor and Tailor take turns (`--rounds`, default 2, each `--seconds` long, both servers up
throughout) and the verdicts read each one's pooled requests: a single run's p99 moves with
whatever else the machine does meanwhile, the floor's as much as Tailor's.

Run: .venv/bin/python bench/bench_serving.py [--customers 1000000] [--products 100000]
     [--days 3] [--rate 300] [--seconds 60] [--rounds 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench_serving_inprocess import timed  # bench/ is the script's folder: on sys.path

REPO = Path(__file__).resolve().parents[1]
TAILOR = str(Path(sys.executable).with_name("tailor"))
BENTOML = str(Path(sys.executable).with_name("bentoml"))
TARGET_P50_MS = 15.0
TARGET_P99_MS = 50.0
FLOOR_RATIO = 2.0
SUSTAINABLE_P99_MS = 100.0
PER_SENDER_QPS = 10  # each hey process sends one request every 100 ms (-c 1 -q 10)
console = Console(stderr=True)


# -- setup -------------------------------------------------------------------------------------


def run(command: list[str], env: dict[str, str], what: str) -> float:
    """Run one setup step, failing loudly; returns its wall time."""
    started = time.perf_counter()
    console.print(f"[bold]{what}[/]: {' '.join(command[1:])}")
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"{what} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return time.perf_counter() - started


def prepare_home(folder: Path, customers: int, products: int, days: int,
                 env: dict[str, str]) -> dict[str, float]:
    """A trained home for the catalogue; each finished step is recorded in `prepared.json`,
    so a rerun with the same `--keep` folder picks up after the last step that succeeded."""
    marker = folder / "prepared.json"
    timings: dict[str, float] = json.loads(marker.read_text()) if marker.is_file() else {}
    shop, home = folder / "shop", folder / "home"
    steps = {
        "simulate": [TAILOR, "simulate", "--customers", str(customers), "--products",
                     str(products), "--days", str(days), "--out", str(shop)],
        "ingest": [TAILOR, "ingest", str(shop / "events.parquet"), "--products",
                   str(shop / "products.csv"), "--customers", str(shop / "customers.csv")],
        "export": [TAILOR, "export"],
        "warehouse": [TAILOR, "warehouse"],
        "features": [TAILOR, "features"],
        **{f"train {model}": [TAILOR, "train", model, "--trials", "1", "--force"]
           for model in ("homepage", "cross_sell", "checkout")},
    }
    for name, command in steps.items():
        if name in timings:
            console.print(f"{name}: done in an earlier run ({timings[name]:.0f} s)")
            continue
        timings[name] = run([*command, "--home", str(home)], env, name)
        marker.write_text(json.dumps(timings))
    return timings


def ensure_champions(home: Path) -> None:
    """Give each served model a champion, so the benchmark measures the personalised path.

    Training promotes only a version that beats the baselines; on a short simulated history
    ALS can lose to popularity, and the server would then answer every request with the
    popularity fallback. Latency, not quality, is measured here, so the newest version is
    made champion where there is none (printed, and only in this scratch home)."""
    from mlflow.tracking import MlflowClient

    from tailor.config import load_settings
    from tailor.training.registration import CHAMPION, alias_version, use_tracking

    use_tracking(load_settings(home=home, env={}))
    client = MlflowClient()
    for model in ("homepage", "cross_sell", "checkout"):
        name = f"tailor-{model}"
        if alias_version(client, name, CHAMPION) is not None:
            continue
        newest = max(int(version.version)
                     for version in client.search_model_versions(f"name = '{name}'"))
        client.set_registered_model_alias(name, CHAMPION, str(newest))
        print(f"note: {name} had no champion (it did not beat its baselines on this short "
              f"history); v{newest} made champion for the latency benchmark")


def secret_key(home: Path, env: dict[str, str]) -> str:
    completed = subprocess.run([TAILOR, "keys", "create", "secret", "--label", "bench",
                                "--json", "--home", str(home)], env=env, capture_output=True,
                               text=True, check=True)
    return json.loads(completed.stdout)["key"]


def sample_customers(home: Path) -> dict[str, str]:
    """One regular buyer, one stranger and one customer with a session, from the warehouse."""
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        buyer = con.execute("SELECT customer_id FROM orders GROUP BY customer_id "
                            "ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
        browser = con.execute("SELECT customer_id FROM events WHERE event_type = 'add_to_cart' "
                              "ORDER BY timestamp DESC LIMIT 1").fetchone()[0]
    return {"buyer": str(buyer), "stranger": "visitor-never-seen", "browser": str(browser)}


# -- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's processes so far (the arbiter and its workers)."""
        import psutil

        root = psutil.Process(self.process.pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def start(command: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    """Start a server in its own process group and wait for /readyz (up to 180 s)."""
    handle = log.open("w")
    process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited ({process.returncode}); log: {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return Server(process, url)
        except httpx.HTTPError:
            pass
        time.sleep(1)
    Server(process, url).stop()
    raise SystemExit(f"server not ready after 180 s; log: {log}")


def start_tailor(home: Path, env: dict[str, str], batching: bool, log: Path) -> Server:
    port = free_port()
    server_env = {**env, "TAILOR_SERVING_ADAPTIVE_BATCHING": "true" if batching else "false"}
    return start([TAILOR, "serve", "--home", str(home), "--port", str(port)], server_env, port,
                 log)


def start_trivial(home: Path, env: dict[str, str], log: Path) -> Server:
    """The floor on Tailor's server settings: its worker count (already in `env`) and its
    thread switch interval."""
    from tailor.config import load_settings

    interval = load_settings(home=home, env=env).serving_switch_interval_ms
    env = {**env, "TAILOR_SERVING_SWITCH_INTERVAL_MS": str(interval)}
    port = free_port()
    return start([BENTOML, "serve", "trivial_service:Trivial", "--working-dir",
                  str(REPO / "bench"), "--host", "127.0.0.1", "--port", str(port)], env, port,
                 log)


# -- load --------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    label: str
    rate: int
    seconds: float
    latencies_ms: np.ndarray
    statuses: np.ndarray
    server_cpu_seconds: float = math.nan

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_seconds / max(self.requests, 1) * 1000

    @property
    def requests(self) -> int:
        return len(self.statuses)

    @property
    def achieved_rate(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return int(np.sum(self.statuses != 200))

    @property
    def unavailable(self) -> int:
        return int(np.sum(self.statuses == 503))

    def percentile(self, q: float) -> float:
        ok = self.latencies_ms[self.statuses == 200]
        return float(np.percentile(ok, q)) if len(ok) else math.inf


def hey_load(url: str, bodies: list[dict], key: str, rate: int, seconds: int,
             label: str) -> LoadResult:
    """`rate` requests/s for `seconds`, evenly spaced: rate / 10 hey processes, each one
    connection sending a request every 100 ms, started 1/rate s apart, the bodies taken in
    turn.

    Evenly spaced, not in bursts: hey's -q paces each of its connections with its own
    ticker, and the connections of one process start together, so `-c 30 -q 10` sends 30
    requests at once every 100 ms. The server then sees a queue of 30 however fast it is,
    and its p50 measures the generator, not the server (the trivial endpoint answered at
    p50 28 ms that way, 2 ms one request at a time). A sender whose answer takes longer
    than 100 ms skips a tick, which shows as an achieved rate below the target.
    """
    if shutil.which("hey") is None:
        raise SystemExit("the load generator `hey` is not installed: apt-get install hey "
                         "(Debian's package; or `go install github.com/rakyll/hey@latest`)")
    senders = max(1, math.ceil(rate / PER_SENDER_QPS))
    qps = rate / senders
    processes = []
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for number, body in enumerate(bodies):
            paths.append(Path(folder) / f"body{number}.json")
            paths[-1].write_text(json.dumps(body))
        started = time.perf_counter()
        for sender in range(senders):
            time.sleep(max(0.0, started + sender / rate - time.perf_counter()))
            processes.append(subprocess.Popen(
                ["hey", "-z", f"{seconds}s", "-c", "1", "-q", f"{qps:.3f}", "-m", "POST",
                 "-T", "application/json", "-H", f"Authorization: Bearer {key}", "-D",
                 str(paths[sender % len(paths)]), "-o", "csv", url],
                stdout=subprocess.PIPE, text=True))
        outputs = [process.communicate()[0] for process in processes]
    latencies, statuses = [], []
    for output in outputs:
        for row in csv.DictReader(io.StringIO(output)):
            latencies.append(float(row["response-time"]) * 1000)
            statuses.append(int(row["status-code"]))
    return LoadResult(label, rate, float(seconds), np.asarray(latencies), np.asarray(statuses))


def measured_load(server: Server, bodies: list[dict], key: str, rate: int, seconds: int,
                  label: str) -> LoadResult:
    """`hey_load` against `server`'s /homepage, with the server's CPU time spent meanwhile."""
    before = server.cpu_seconds()
    result = hey_load(f"{server.url}/homepage", bodies, key, rate, seconds, label)
    result.server_cpu_seconds = server.cpu_seconds() - before
    return result


def pooled(runs: list[LoadResult], label: str) -> LoadResult:
    """The requests of several runs at one rate as one result (`label`, all rounds)."""
    return LoadResult(f"{label}, all rounds", runs[0].rate, sum(run.seconds for run in runs),
                      np.concatenate([run.latencies_ms for run in runs]),
                      np.concatenate([run.statuses for run in runs]),
                      sum(run.server_cpu_seconds for run in runs))


def fallback_share(url: str, key: str) -> str:
    """Fallback answers among all answers so far, from the server's own /metrics."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"},
                     timeout=10).text
    totals = {"tailor_fallbacks_total": 0.0, "tailor_requests_total": 0.0}
    reasons: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals and 'endpoint="homepage"' in line:
            value = float(line.rsplit(" ", 1)[1])
            totals[name] += value
            if name == "tailor_fallbacks_total" and 'reason="' in line:
                reason = line.split('reason="', 1)[1].split('"', 1)[0]
                reasons[reason] = reasons.get(reason, 0.0) + value
    share = totals["tailor_fallbacks_total"] / max(totals["tailor_requests_total"], 1.0)
    return f"{share:.1%} fallbacks ({', '.join(f'{k}: {v:.0f}' for k, v in reasons.items())})"


def homepage_bodies(customers: dict[str, str]) -> list[dict]:
    return [{"customer_id": customers["buyer"], "k": 10},
            {"customer_id": customers["stranger"], "k": 10, "context": {"device": "mobile"}},
            {"customer_id": customers["browser"], "k": 10,
             "context": {"categories": ["electronics"]}}]


# -- in process --------------------------------------------------------------------------------


def in_process(home: Path, env: dict[str, str], customers: dict[str, str], repeats: int
               ) -> dict[str, float]:
    """p50 of the pipeline's homepage answer vs a bare implicit recommend, same customers."""
    import implicit.cpu.als

    from tailor.config import load_settings
    from tailor.serving.pipeline import ServingPipeline
    from tailor.serving.schemas import HomepageRequest

    settings = load_settings(home=home, env=env)  # the servers' settings: Redis included
    pipeline = ServingPipeline(settings, start_watcher=False)
    try:
        model = pipeline.slots["homepage"].current.model
        requests = [HomepageRequest(**body) for body in homepage_bodies(customers)]
        answers = [pipeline.homepage(request) for request in requests]
        if any(answer.fallback for answer in answers):  # a fallback would time the wrong path
            raise SystemExit("in-process pipeline answered a fallback: "
                             f"{[answer.fallback_reason for answer in answers]}")
        pipeline_ms = timed(lambda request: pipeline.homepage(request), requests, repeats)
        bare = implicit.cpu.als.AlternatingLeastSquares(factors=model.user_factors.shape[1])
        bare.user_factors, bare.item_factors = model.user_factors, model.item_factors
        rows = [row for row in model.customers.lookup(list(customers.values())) if row >= 0]
        bare_ms = timed(lambda row: bare.recommend(row, model.seen[row], N=10,
                                                   filter_already_liked_items=False),
                        rows, repeats)
    finally:
        pipeline.close()
    return {"pipeline_p50_ms": pipeline_ms, "implicit_p50_ms": bare_ms}


# -- report ------------------------------------------------------------------------------------


def show(results: list[LoadResult]) -> None:
    table = Table(title="POST /homepage under constant load")
    for column in ("run", "target rps", "achieved rps", "p50 ms", "p99 ms", "errors", "503s",
                   "server CPU ms/request"):
        table.add_column(column)
    for result in results:
        table.add_row(result.label, str(result.rate), f"{result.achieved_rate:.0f}",
                      f"{result.percentile(50):.1f}", f"{result.percentile(99):.1f}",
                      str(result.errors), str(result.unavailable),
                      f"{result.cpu_ms_per_request:.2f}")
    Console().print(table)


def verdict(name: str, passed: bool, detail: str) -> bool:
    print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2,
                        help="turns of the floor and Tailor (batching off), interleaved")
    parser.add_argument("--steps", default="150,200,250,300,400,500",
                        help="rates tried for the highest sustainable rate")
    parser.add_argument("--workers", type=int, default=2,
                        help="server worker processes, Tailor's and the trivial floor's alike")
    parser.add_argument("--keep", type=Path, help="prepare (or reuse) the home in this folder")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed: apt-get install hey")

    folder = args.keep or Path(tempfile.mkdtemp(prefix="tailor-bench-serving-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TAILOR_REDIS_URL": os.environ.get("TAILOR_REDIS_URL",
                                                             "redis://127.0.0.1:6379/0")}
    env.pop("CI", None)
    env["TAILOR_SERVING_WORKERS"] = str(args.workers)
    timings = prepare_home(folder, args.customers, args.products, args.days, env)
    print("setup seconds: " + ", ".join(f"{k} {v:.0f}" if v > 0 else f"{k} (not timed)"
                                        for k, v in timings.items()))
    home = folder / "home"
    ensure_champions(home)
    key = secret_key(home, env)
    customers = sample_customers(home)
    bodies = homepage_bodies(customers)
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)

    # The floor and Tailor (batching off) take turns, `--rounds` times, each server up for all
    # of its rounds: one run's p99 moves with whatever else the machine did meanwhile (the
    # floor's own p99 ranged 10-29 ms over single runs), and interleaving exposes both
    # servers to the same disturbances. The verdicts read the pooled requests of all rounds.
    rounds: dict[str, list[LoadResult]] = {"trivial floor": [], "tailor, batching off": []}
    trivial = start_trivial(home, env, logs / "trivial.log")
    server = None
    try:
        server = start_tailor(home, env, False, logs / "tailor-batching-False.log")
        hey_load(f"{server.url}/homepage", bodies, key, 30, 5, "warm-up")
        for number in range(1, args.rounds + 1):
            for label, target in (("trivial floor", trivial), ("tailor, batching off", server)):
                rounds[label].append(measured_load(target, bodies, key, args.rate, args.seconds,
                                                   f"{label}, round {number}"))
        print(f"tailor, batching off: {fallback_share(server.url, key)}")
    finally:
        trivial.stop()
        if server is not None:
            server.stop()
    server = start_tailor(home, env, True, logs / "tailor-batching-True.log")
    try:
        hey_load(f"{server.url}/homepage", bodies, key, 30, 5, "warm-up")
        on = measured_load(server, bodies, key, args.rate, args.seconds, "tailor, batching on")
        print(f"tailor, batching on: {fallback_share(server.url, key)}")
    finally:
        server.stop()
    floor, off = (pooled(rounds[label], label) for label in rounds)
    show([*(run for pair in zip(*rounds.values()) for run in pair), floor, off, on])

    best = min((off, on), key=lambda result: result.percentile(99))
    ok = all([
        verdict("p50", best.percentile(50) <= TARGET_P50_MS,
                f"{best.label} {best.percentile(50):.1f} ms (target <= {TARGET_P50_MS})"),
        verdict("p99", best.percentile(99) <= TARGET_P99_MS,
                f"{best.label} {best.percentile(99):.1f} ms (target <= {TARGET_P99_MS})"),
        verdict("errors", best.errors == 0, f"{best.errors} errors, {best.unavailable} 503s"),
        verdict("floor", best.percentile(99) <= FLOOR_RATIO * floor.percentile(99),
                f"p99 {best.percentile(99):.1f} ms vs trivial {floor.percentile(99):.1f} ms "
                f"(ratio {best.percentile(99) / floor.percentile(99):.2f}, target <= "
                f"{FLOOR_RATIO})"),
    ])
    print(f"batching on/off: p99 ratio {on.percentile(99) / off.percentile(99):.2f}, "
          f"throughput ratio {on.achieved_rate / off.achieved_rate:.2f}")

    overhead = in_process(home, env, customers, repeats=500)
    print(f"in process: pipeline p50 {overhead['pipeline_p50_ms']:.2f} ms, bare implicit "
          f"recommend p50 {overhead['implicit_p50_ms']:.2f} ms (ratio "
          f"{overhead['pipeline_p50_ms'] / overhead['implicit_p50_ms']:.1f})")

    batching = best is on
    server = start_tailor(home, env, batching, logs / "tailor-steps.log")
    sustainable = 0
    try:
        for rate in [int(step) for step in args.steps.split(",")]:
            result = measured_load(server, bodies, key, rate, 30, f"step {rate}")
            print(f"rate {rate}: achieved {result.achieved_rate:.0f}, p50 "
                  f"{result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms, errors "
                  f"{result.errors}, server CPU {result.cpu_ms_per_request:.2f} ms/request")
            if (result.percentile(99) > SUSTAINABLE_P99_MS or result.errors
                    or result.achieved_rate < 0.95 * rate):
                break
            sustainable = rate
    finally:
        server.stop()
    print(f"highest sustainable rate at p99 <= {SUSTAINABLE_P99_MS:.0f} ms: {sustainable} "
          f"requests/s (batching {'on' if batching else 'off'})")
    print(f"home kept in {folder}" if args.keep else f"scratch home in {folder}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
