"""`tailor forget` on a demo-like home on PostgreSQL and Redis leaves nothing of the customer.

The home is built the way the demo builds one, on the real services: a simulated shop with
e-mails and names ingested into PostgreSQL (PII to the encrypted store), the lake, the
warehouse, Feast features in Redis, all four models trained into MLflow, the churn
retention list, an Evidently drift snapshot, a real `bentoml serve` that imports the
champions into the BentoML store, answers the customer and logs the answers, events through
its collector, and a last export of the lake. Then the customer is forgotten through the
server (`DELETE /collect/v1/customers/{id}` with an admin key: the tombstone at once, the
job in a process of its own) while the server keeps answering, and every file under the home (Parquet read row by row, SQLite and
DuckDB through SQL and as bytes, archives unpacked), every table of the PostgreSQL schema
and every key and value of the home's Redis project is searched for the id, the e-mail and
the name: nothing is left (the tombstone is a keyed hash, not the id). Re-import and the
collector then store nothing of the id, and a second forget finds nothing. Last, no plain key
the run used is in any file under the home (logs included).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from collector_process import free_port
from privacy_scan import scan_files, scan_postgres, scan_redis
from serving_home import ensure_champions
from shop_homes import build_shop_home, redis_settings

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def _target(shop: Path) -> tuple[str, str, str]:
    """The customer with the most purchases, and their e-mail and name."""
    events = pd.read_parquet(shop / "events.parquet", columns=["customer_id", "event_type"])
    buyer = str(events[events.event_type == "purchase"].customer_id.value_counts().index[0])
    people = pd.read_csv(shop / "customers.csv", dtype=str).set_index("customer_id")
    return buyer, people.loc[buyer, "email"], people.loc[buyer, "name"]


def _build(settings, shop: Path) -> None:
    """Everything the demo does, on a small shop, short of the closed loop."""
    from tailor.features.build import run_features
    from tailor.training import train_models
    from tailor.training.jobs import write_retention_list

    build_shop_home(settings, shop, customers=250, products=50, days=40, seed=5,
                    ends_days_ago=1)
    run_features(settings, show_progress=False)
    train_models(settings, "all", trials=1)
    ensure_champions(settings)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    newest = max(client.search_model_versions("name = 'tailor-churn'"),
                 key=lambda version: int(version.version))
    client.set_registered_model_alias("tailor-churn", "champion", newest.version)
    write_retention_list(settings)
    _drift_snapshot(settings, newest.run_id)


def _drift_snapshot(settings, run_id: str) -> None:
    """A monitoring round's Evidently snapshot: the churn reference against itself."""
    from tailor.monitoring.drift import compare
    from tailor.training.reference import load_reference

    reference = load_reference(run_id, "churn").profile
    compare(settings, "churn", "profile", reference, reference,
            pd.Timestamp.now(tz="UTC"), {"version": "1"})


def _plan_mail(settings, customer: str) -> str:
    """A planned re-engagement mail for the customer, as `campaign plan` writes one; returns
    its tracking token."""
    import json
    import secrets

    from tailor.events.campaign_store import open_campaign_store

    token = secrets.token_urlsafe(16)
    now = int(time.time() * 1_000_000)
    store = open_campaign_store(settings.event_store_url)
    try:
        store.insert_sends([("reengage-test", customer, 1, None, None, 0, 1, "SAVE-TEST",
                             json.dumps([{"product_id": "p00001", "name": "P", "price": 1.0,
                                          "reason": "r"}]),
                             json.dumps([{"label": "shop", "url": "https://shop.example/"}]),
                             token, now, now)])
    finally:
        store.close()
    return token


def _ask(url: str, key: str, customer_id: str) -> httpx.Response:
    return httpx.post(f"{url}/homepage", json={"customer_id": customer_id, "k": 5},
                      headers={"Authorization": f"Bearer {key}"}, timeout=30.0)


def _send_event(url: str, key: str, customer_id: str, product_id: str) -> dict:
    event = {"customer_id": customer_id, "event_type": "product_view",
             "product_id": product_id, "session_id": f"s-{customer_id}",
             "timestamp": pd.Timestamp.now(tz="UTC").isoformat()}
    response = httpx.post(f"{url}/collect/v1/events", json={"events": [event]},
                          headers={"Authorization": f"Bearer {key}"}, timeout=30.0)
    assert response.status_code == 200, response.text
    return response.json()


class Poller:
    """Asks the server for two customers over and over in a thread, keeping the answers."""

    def __init__(self, url: str, key: str, customers: list[str]) -> None:
        self.url, self.key, self.customers = url, key, customers
        self.answers: list[tuple[str, int, bool]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for customer in self.customers:
                response = _ask(self.url, self.key, customer)
                personal = response.json().get("personalised") if response.is_success else None
                self.answers.append((customer, response.status_code, bool(personal)))

    def __enter__(self) -> "Poller":
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def _finished_job(settings, url: str, admin_key: str, tombstone: str,
                  timeout: float = 240.0) -> dict:
    """The forget job the DELETE started, followed through `GET /v1/forget-jobs/{tombstone}`
    until it is done; its audit entry then."""
    from tailor.privacy.forget_audit import read_audit

    deadline = time.monotonic() + timeout
    log = settings.home_path / "privacy" / "forget-jobs" / f"{tombstone}.log"
    seen = []
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/collect/v1/forget-jobs/{tombstone}",
                           headers={"X-Tailor-Key": admin_key}, timeout=10.0)
        assert status.status_code == 200, status.text
        seen.append(status.json()["status"])
        assert seen[-1] != "stopped", (status.json(), log.read_text()[-3000:])
        if seen[-1] == "done":
            assert status.json()["files_left"] == 0
            entries = [entry for entry in read_audit(settings)
                       if entry["tombstone"] == tombstone and entry["action"] == "forget"]
            return entries[-1]
        time.sleep(0.5)
    raise AssertionError(f"the forget job did not finish ({seen[-3:]}): {log.read_text()[-3000:]}")


@pytest.fixture
def forget_settings(tmp_path: Path, postgres_url: str, redis_url: str):
    """The home's settings: PostgreSQL schema of its own, Redis keys under a Feast project
    of its own (removed after the test)."""
    import redis

    settings = redis_settings(tmp_path / "home", redis_url, database_url=postgres_url,
                              serving_reload_seconds="1", serving_workers="1",
                              serving_timeout_ms="5000")
    yield settings
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"*{settings.features_project}", count=1000):
        client.delete(key)


def _forgotten_rows_metric(url: str, key: str) -> float:
    """The server's `tailor_forgotten_rows_total` for the homepage model (waited for a few
    seconds: the server's sweeper looks at the tombstones every 0.2 s)."""
    pattern = re.compile(r'^tailor_forgotten_rows_total\{model="homepage"\} (\S+)$', re.M)
    found = None
    for _ in range(50):
        found = pattern.search(httpx.get(f"{url}/metrics", headers={"X-Tailor-Key": key},
                                         timeout=10.0).text)
        if found:
            break
        time.sleep(0.2)
    return float(found.group(1)) if found else 0.0


def test_forget_leaves_nothing_anywhere(forget_settings, tmp_path: Path, postgres_url: str,
                                        redis_url: str) -> None:
    from tailor.events.ingest.job import ingest_files
    from tailor.events.keys import ADMIN, create_key, keys_file_path
    from tailor.events.lake import export_lake
    from tailor.privacy.forget import forget_customer
    from tailor.privacy.forget_audit import read_audit
    from tailor.server import start_server
    from tailor.warehouse import refresh_warehouse

    settings = forget_settings
    shop = tmp_path / "shop"
    _build(settings, shop)
    customer, email, name = _target(shop)
    token = _plan_mail(settings, customer)
    other = "c000001" if customer != "c000001" else "c000002"
    key = create_key("secret", keys_file_path(settings), label="forget test")
    admin_key = create_key("secret", keys_file_path(settings), "dpo", scopes=[ADMIN])
    with (settings.home_path / "server.log").open("ab") as log:
        server = start_server(settings, host="127.0.0.1", port=free_port(), log=log)
    try:
        assert server.wait_ready(timeout=240), (settings.home_path / "server.log").read_text()
        assert _ask(server.url, key, customer).json()["personalised"] is True
        assert _send_event(server.url, key, customer, "p00001")["accepted"] == 1
        time.sleep(3)  # the prediction log's writer flushes every few seconds
        export_lake(settings, progress=False)
        refresh_warehouse(settings)

        with Poller(server.url, key, [customer, other]) as poller:
            answer = httpx.delete(f"{server.url}/collect/v1/customers/{customer}",
                                  headers={"X-Tailor-Key": admin_key}, timeout=30.0)
            assert answer.status_code == 202, answer.text
            entry = _finished_job(settings, server.url, admin_key, answer.json()["tombstone"])
            time.sleep(2.5)  # answers after the job, for the poller
        assert entry["files_left"] == 0, entry
        removed = entry["removed"]
        assert removed["event_store"]["events"] > 0 and removed["pii_store"]["records"] == 1
        assert removed["online_store"]["redis_keys"] == 1
        assert removed["campaign_mails"] == {"mails": 1}
        assert httpx.get(f"{server.url}/collect/t/o/{token}.gif").status_code == 404
        assert removed["lake"]["events"] == removed["event_store"]["events"]
        assert removed["lake"]["predictions"] >= 1 and removed["warehouse"]["orders"] > 0
        assert removed["mlflow_artifacts"]["files"] >= 1  # the homepage model's pickle
        assert removed["bentoml_store"]["files"] >= 1  # its copy in the BentoML store
        # Serving kept answering, and the customer's last answers were not personalised.
        assert poller.answers and all(status == 200 for _, status, _ in poller.answers)
        assert [personal for who, _, personal in poller.answers if who == customer][-1] is False
        assert _ask(server.url, key, customer).json()["personalised"] is False
        assert _ask(server.url, key, other).status_code == 200
        # The server took the customer's rows out of the homepage version in its memory.
        assert _forgotten_rows_metric(server.url, key) == 1.0
        # The collector stores nothing of a forgotten id.
        assert _send_event(server.url, key, customer, "p00002") == {
            "accepted": 0, "duplicates": 0, "rejected": [], "forgotten": 1}
    finally:
        server.stop()

    # Re-import of the shop's files stores nothing of the customer either.
    report = ingest_files(settings, shop / "events.parquet", customers_path=shop / "customers.csv",
                          progress=False)
    assert report.forgotten > 0 and report.accepted == 0
    # A second forget is idempotent; the audit holds the tombstone, never the id.
    again = forget_customer(settings, customer)
    assert again.total == 0 and again.complete
    audit = read_audit(settings)
    assert [line["tombstone"] for line in audit] == [entry["tombstone"]] * 2
    assert audit[0]["actor"].startswith("key ")
    # The rewritten copy in the BentoML store loads, and scores the customer as a stranger.
    from tailor.serving.model_store import TailorModelStore

    store = TailorModelStore(settings)
    model = store.load(store.newest("tailor-homepage", "champion"))
    assert customer not in model.customers.positions
    assert set(model.recommend([customer], k=3)["tier"]) == {"cold_start"}
    needles = [customer, email, name]
    traces = scan_files([settings.home_path], needles)
    traces += scan_postgres(postgres_url, needles)
    traces += [trace for trace in scan_redis(redis_url, needles)
               if settings.features_project in trace.where]
    assert traces == []
    tombstones = (settings.home_path / "privacy" / "tombstones.csv").read_text()
    assert entry["tombstone"] in tombstones and customer not in tombstones
    # No plain key the run used is in any file under the home either: the keys file holds
    # hashes, and neither the server's log nor the forget job's log ever prints a key.
    assert (settings.home_path / "server.log").stat().st_size > 0
    keys = [key, admin_key, key[len("tlr_sk_"):], admin_key[len("tlr_sk_"):]]
    assert scan_files([settings.home_path], keys) == []
