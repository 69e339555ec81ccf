"""A trained Tailor home on a private Redis, for the serving tests: what `tailor serve` needs.

Writes a simulated shop, the event store, lake, warehouse, Feast features (online in a
`redis-server` this module starts on a free port, without persistence, so a test can kill
it and start it again), and the homepage, cross-sell and checkout models in the home's
MLflow store, each with a `champion` alias. Reads nothing else. `copy_trained_home` copies
such a home (its files, and its Redis keys into another database of the same server) for a
test that must change it; `serve_home` runs `tailor serve`'s server on a home. `Serving` is a
running server with its home and keys; `metric_total` reads one metric out of Prometheus
text, and `logged_rows` the prediction log's rows of some answers once the server has
written them.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pandas as pd

from collector_process import free_port
from shop_homes import build_shop_home, redis_settings
from tailor.config import Settings

SERVED_MODELS = ("homepage", "cross_sell", "checkout")
SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass
class RedisServer:
    """A `redis-server` of this test session on 127.0.0.1:`port`, no persistence."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        import redis

        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: the store vanishes mid-request, as in a crash (and loses its data)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_private_redis() -> RedisServer:
    """A fresh `redis-server` on a free port."""
    server = RedisServer(port=free_port())
    server.start()
    return server


@dataclass
class TrainedHome:
    """The home's settings, its shop folder and the customers the tests ask about."""

    settings: Settings
    shop: Path
    known_buyer: str
    product_bought: str
    cart_products: list[tuple[str, float]]


def build_trained_home(root: Path, redis_url: str) -> TrainedHome:
    """Simulate a small recent shop and take it through every step serving depends on."""
    from tailor.features.build import run_features
    from tailor.training import train_models

    settings = redis_settings(root / "home", redis_url)
    shop = build_shop_home(settings, root / "shop", customers=400, products=80, days=44,
                           seed=11, ends_days_ago=1)
    run_features(settings, show_progress=False)
    for model in SERVED_MODELS:
        train_models(settings, model, trials=1)
    ensure_champions(settings)
    return _with_customers(settings, shop)


def ensure_champions(settings: Settings) -> None:
    """Give every served model a champion: a small shop's first version may not beat the
    baselines, and an operator would then promote by hand."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    for model in SERVED_MODELS:
        name = f"tailor-{model}"
        try:
            client.get_model_version_by_alias(name, "champion")
        except MlflowException:
            newest = max(client.search_model_versions(f"name = '{name}'"),
                         key=lambda version: int(version.version))
            client.set_registered_model_alias(name, "champion", newest.version)


def _with_customers(settings: Settings, shop: Path) -> TrainedHome:
    """The customer with the most purchases, the most bought product, a three-line cart."""
    events = pd.read_parquet(shop / "events.parquet",
                             columns=["customer_id", "event_type", "product_id"])
    purchases = events[events["event_type"] == "purchase"]
    buyer = purchases["customer_id"].value_counts().index[0]
    products = pd.read_csv(shop / "products.csv", usecols=["product_id", "price"])
    cart = [(row.product_id, float(row.price)) for row in products.head(3).itertuples()]
    bought = purchases["product_id"].value_counts().index[0]
    return TrainedHome(settings=settings, shop=shop, known_buyer=str(buyer),
                       product_bought=str(bought), cart_products=cart)


def copy_trained_home(home: TrainedHome, target: Path, redis: RedisServer,
                      database: int) -> TrainedHome:
    """A copy of `home` at `target` (a new folder) that changing leaves the original alone.

    Files are copied as they are, but each SQLite database through SQLite's backup (a
    consistent snapshot while a server writes the original); the online store's keys go
    into `database` of the same Redis (the copy's own, emptied first); the warehouse is
    refreshed, so its views read the copy's lake. The copy's MLflow store points itself at
    its own artifacts when first opened (`tailor.registry.relocation`). The simulated
    shop's folder stays shared: nothing writes it.
    """
    import redis as redis_client

    from tailor.warehouse import refresh_warehouse

    source = home.settings.home_path
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(
        "*.db-wal", "*.db-shm", "*.db-journal", "server.log"))
    for database_file in source.rglob("*.db"):
        with database_file.open("rb") as handle:
            if handle.read(16) != SQLITE_HEADER:  # e.g. Feast's registry: a protobuf file
                continue
        copy = target / database_file.relative_to(source)
        copy.unlink()
        with closing(sqlite3.connect(database_file)) as original, \
                closing(sqlite3.connect(copy)) as copied:
            original.backup(copied)
    client = redis_client.Redis.from_url(redis.url)
    redis_client.Redis.from_url(f"redis://127.0.0.1:{redis.port}/{database}").flushdb()
    for key in client.scan_iter(count=1000):
        client.copy(key, key, destination_db=database, replace=True)
    settings = home.settings.replace(
        home=str(target), redis_url=f"redis://127.0.0.1:{redis.port}/{database}")
    refresh_warehouse(settings)
    return replace(home, settings=settings)


@dataclass
class Serving:
    """A running Tailor server (its worker processes and model reload interval), the home
    behind it, its Redis, two keys and the identity secret its collector checks
    customer-id signatures with."""

    url: str
    home: TrainedHome
    redis: RedisServer
    secret_key: str
    public_key: str
    log_path: Path
    reload_seconds: float
    identity_secret: str = ""
    workers: int = 1

    def post(self, path: str, body: Any, *, key: str | None = None,
             **kwargs: Any) -> httpx.Response:
        """POST JSON with the secret key (or `key`) in the Authorization header."""
        headers = {"Authorization": f"Bearer {key or self.secret_key}"}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30.0, **kwargs)

    def get(self, path: str, *, key: str | None = None) -> httpx.Response:
        headers = {"X-Tailor-Key": key} if key else {}
        return httpx.get(self.url + path, headers=headers, timeout=30.0)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def champion(self, model: str) -> str:
        """The registry version the `champion` alias of `tailor-<model>` names now."""
        from mlflow.tracking import MlflowClient

        uri = self.home.settings.tracking_uri
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return str(client.get_model_version_by_alias(f"tailor-{model}", "champion").version)


@contextmanager
def serve_home(home: TrainedHome, redis: RedisServer, *, reload_seconds: float,
               workers: int, **settings: str) -> Iterator[Serving]:
    """`bentoml serve bentos.service:Tailor` on a free port over `home`, ready, with a secret
    and a public key made for it and the home's identity secret (made when it has none);
    stopped after.

    Args:
        home: the home to serve; `settings` are set on it (`serving_demo_shop="true"`, ...).
        redis: the Redis its online store is in.
        reload_seconds: `serving.reload_seconds` (how soon an alias move is served).
        workers: `serving.workers`.
    """
    from tailor.events.identity import create_identity_secret, identity_secret_path
    from tailor.events.keys import create_key, keys_file_path
    from tailor.server import start_server

    served = home.settings.replace(serving_reload_seconds=str(reload_seconds),
                                   serving_workers=str(workers), **settings)
    keys_file = keys_file_path(served)
    secret_key = create_key("secret", keys_file, label="serving tests")
    public_key = create_key("public", keys_file, label="serving tests")
    secret_file = identity_secret_path(served)  # a copied home has its original's
    identity_secret = secret_file.read_text(encoding="utf-8").strip() if secret_file.is_file() \
        else create_identity_secret(secret_file)
    log_path = served.home_path / "server.log"
    with log_path.open("ab") as log:
        server = start_server(served, host="127.0.0.1", port=free_port(), log=log)
    serving = Serving(url=server.url, home=home, redis=redis, secret_key=secret_key,
                      public_key=public_key, log_path=log_path, reload_seconds=reload_seconds,
                      identity_secret=identity_secret, workers=workers)
    try:
        if not server.wait_ready(timeout=240):
            raise RuntimeError(f"the server did not become ready:\n{serving.log_tail()}")
        yield serving
    finally:
        server.stop()


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of one metric's samples whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{key}="{value}"' in (match.group(1) or "")
                         for key, value in labels.items()):
            total += float(match.group(2))
    return total


def logged_rows(settings: Settings, request_ids: list[str],
                timeout: float = 20.0) -> pd.DataFrame:
    """The prediction log's rows of `request_ids`, once every one is there (the server's
    writers flush every `monitoring.prediction_flush_seconds`)."""
    from tailor.monitoring.prediction_log import read_predictions

    deadline = time.monotonic() + timeout
    while True:
        now = datetime.now(timezone.utc)
        frame = read_predictions(settings, now - timedelta(hours=1), now + timedelta(minutes=1))
        rows = frame[frame["request_id"].isin(request_ids)]
        if set(rows["request_id"]) == set(request_ids) or time.monotonic() > deadline:
            return rows.set_index("request_id")
        time.sleep(0.2)
