"""Segment's and RudderStack's own Python libraries against a real `tailor collect`.

`segment-analytics-python` and `rudder-sdk-python` (test-only dependencies) are pointed at
the collector on loopback, through a small forwarding proxy that counts requests and can
lose an answer. Each library sends a shopping journey (page, product viewed, identify,
product added, checkout started, order completed) and the test reads exactly the expected
rows back from the event store and the traits from the PII store; a batch whose answer
is lost is sent again by the library and stored once; a bad write key gets an answer the
library does not retry (one request, reported to `on_error`).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from collector_process import CollectorProcess, start_collector
from waiting import wait_until
from tailor.config import load_settings
from tailor.events.keys import create_key, keys_file_path
from tailor.events.pii import open_pii_store
from tailor.events.store import open_event_store

segment_analytics = pytest.importorskip("segment.analytics")
rudder_analytics = pytest.importorskip("rudderstack.analytics")

COLUMNS = ["event_id", "customer_id", "event_type", "product_id", "price", "quantity",
           "order_id", "timestamp"]


# -- a proxy that counts requests and can lose answers --------------------------------------


@dataclass
class Proxy:
    """Forwards POSTs to the collector; the first `lose_answers` answers are replaced by 502
    after the collector handled the request (as when a connection drops on the way back)."""

    upstream: str
    lose_answers: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "Proxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name: value for name, value in self.headers.items()
                           if name.lower() in ("authorization", "content-type",
                                               "content-encoding", "x-retry-count")}
                answer = httpx.post(proxy.upstream + self.path, content=body, headers=headers,
                                    timeout=30.0)
                with proxy.lock:
                    proxy.requests.append({"path": self.path, "headers": headers})
                    lose = proxy.lose_answers > 0
                    proxy.lose_answers -= 1 if lose else 0
                    status = 502 if lose else answer.status_code
                    proxy.statuses.append(answer.status_code)
                content = b'{"code": "bad_gateway", "message": "lost"}' if lose else answer.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# -- the two libraries behind one face --------------------------------------------------------


@dataclass
class Library:
    name: str
    make: Callable[..., Any]


def _segment_client(key: str, host: str, errors: list) -> Any:
    return segment_analytics.Client(write_key=key, host=host, gzip=True, upload_interval=0.05,
                                    max_retries=3, on_error=lambda error, batch:
                                    errors.append(error))


def _rudder_client(key: str, host: str, errors: list) -> Any:
    return rudder_analytics.Client(write_key=key, host=host, gzip=True, upload_interval=0.05,
                                   max_retries=3, on_error=lambda error, batch:
                                   errors.append(error))


LIBRARIES = [Library("segment-analytics-python", _segment_client),
             Library("rudder-sdk-python", _rudder_client)]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    process = start_collector(tmp_path_factory.mktemp("segment-collector") / "home")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def write_key(collector: CollectorProcess) -> str:
    settings = load_settings(home=collector.home, env={})
    key = create_key("secret", keys_file_path(settings), label="segment source")
    wait_until(lambda: httpx.post(collector.url + "/v1/batch", json={"batch": []},
                                  auth=(key, "")).status_code == 200,
               timeout=30, what="the collector to accept the new key (keys file re-read)")
    return key


@pytest.fixture
def proxy(collector: CollectorProcess) -> Iterator[Proxy]:
    running = Proxy(collector.url).start()
    yield running
    running.stop()


def stored(collector: CollectorProcess, customer_ids: set[str]) -> list[dict[str, Any]]:
    """The stored events of these customers, oldest first, as plain values."""
    settings = load_settings(home=collector.home, env={})
    store = open_event_store(settings.event_store_url)
    try:
        frame = store.events_after(0, 100_000)
    finally:
        store.close()
    frame = frame[frame["customer_id"].isin(customer_ids)].sort_values(["timestamp", "event_id"])
    rows = []
    for row in frame.to_dict("records"):
        plain = {name: (None if _missing(row[name]) else row[name]) for name in COLUMNS}
        plain["timestamp"] = row["timestamp"].isoformat()
        plain["anonymous_id"] = json.loads(row["properties"] or "{}").get("anonymous_id")
        rows.append(plain)
    return rows


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def send_journey(client: Any, user_id: str, anonymous_id: str, start: datetime,
                 ids: dict[str, str]) -> None:
    """A shopper browses anonymously, signs in, buys two products."""
    at = [start + timedelta(seconds=second) for second in range(7)]
    client.page(anonymous_id=anonymous_id, name="Home", properties={"path": "/"},
                timestamp=at[0], message_id=ids["page"])
    client.track(anonymous_id=anonymous_id, event="Product Viewed",
                 properties={"product_id": "p-103", "price": 89.0, "category": "clothing",
                             "name": "Linen shirt"}, timestamp=at[1], message_id=ids["viewed"])
    client.identify(user_id=user_id, anonymous_id=anonymous_id,
                    traits={"email": f"{user_id}@example.com", "name": "Ada Shopper",
                            "plan": "gold"}, timestamp=at[2], message_id=ids["identify"])
    client.track(user_id=user_id, anonymous_id=anonymous_id, event="Product Added",
                 properties={"product_id": "p-103", "price": 89.0, "quantity": 1},
                 timestamp=at[3], message_id=ids["added"])
    client.track(user_id=user_id, anonymous_id=anonymous_id, event="Checkout Started",
                 properties={"order_id": "o-1", "value": 128.9}, timestamp=at[4],
                 message_id=ids["checkout"])
    client.track(user_id=user_id, anonymous_id=anonymous_id, event="Order Completed",
                 properties={"order_id": "o-1", "total": 128.9, "currency": "EUR",
                             "products": [{"product_id": "p-103", "price": 89.0, "quantity": 1},
                                          {"product_id": "p-7", "price": 19.95,
                                           "quantity": 2}]},
                 timestamp=at[5], message_id=ids["order"])
    client.flush()


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda library: library.name)
def test_a_shopping_journey_is_stored_exactly(library: Library, collector: CollectorProcess,
                                              write_key: str, proxy: Proxy) -> None:
    run = uuid.uuid4().hex[:8]
    user_id, anonymous = f"c-{run}", f"visitor-{run}"
    anonymous_id = f"anon-{anonymous}"
    ids = {name: f"{run}-{name}" for name in
           ("page", "viewed", "identify", "added", "checkout", "order")}
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    errors: list = []
    client = library.make(write_key, proxy.url, errors)
    send_journey(client, user_id, anonymous, start, ids)
    client.join()

    assert errors == []
    assert all(request["headers"].get("Content-Encoding") == "gzip"
               for request in proxy.requests)  # the libraries compress; the collector unpacks
    stamp = [(start + timedelta(seconds=second)).isoformat() for second in range(7)]
    expected = [
        {"event_id": ids["page"], "customer_id": anonymous_id, "event_type": "page_view",
         "product_id": None, "price": None, "quantity": None, "order_id": None,
         "timestamp": stamp[0], "anonymous_id": anonymous_id},
        {"event_id": ids["viewed"], "customer_id": anonymous_id, "event_type": "product_view",
         "product_id": "p-103", "price": 89.0, "quantity": None, "order_id": None,
         "timestamp": stamp[1], "anonymous_id": anonymous_id},
        {"event_id": ids["identify"], "customer_id": user_id, "event_type": "click",
         "product_id": None, "price": None, "quantity": None, "order_id": None,
         "timestamp": stamp[2], "anonymous_id": anonymous_id},
        {"event_id": ids["added"], "customer_id": user_id, "event_type": "add_to_cart",
         "product_id": "p-103", "price": 89.0, "quantity": 1.0, "order_id": None,
         "timestamp": stamp[3], "anonymous_id": anonymous_id},
        {"event_id": ids["checkout"], "customer_id": user_id, "event_type": "checkout_start",
         "product_id": None, "price": None, "quantity": None, "order_id": "o-1",
         "timestamp": stamp[4], "anonymous_id": anonymous_id},
        {"event_id": ids["order"] + ":1", "customer_id": user_id, "event_type": "purchase",
         "product_id": "p-103", "price": 89.0, "quantity": 1.0, "order_id": "o-1",
         "timestamp": stamp[5], "anonymous_id": anonymous_id},
        {"event_id": ids["order"] + ":2", "customer_id": user_id, "event_type": "purchase",
         "product_id": "p-7", "price": 19.95, "quantity": 2.0, "order_id": "o-1",
         "timestamp": stamp[5], "anonymous_id": anonymous_id},
    ]
    assert stored(collector, {user_id, anonymous_id}) == expected

    settings = load_settings(home=collector.home, env={})
    pii = open_pii_store(settings)
    try:
        assert pii.get(user_id) == {"email": f"{user_id}@example.com", "name": "Ada Shopper"}
    finally:
        pii.close()
    database = Path(settings.event_store_url.removeprefix("sqlite:///")).read_bytes()
    assert f"{user_id}@example.com".encode() not in database  # traits never reach events
    assert b"Ada Shopper" not in database and b"Linen shirt" not in database


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda library: library.name)
def test_a_batch_whose_answer_is_lost_is_sent_again_and_stored_once(
        library: Library, collector: CollectorProcess, write_key: str, proxy: Proxy) -> None:
    run = uuid.uuid4().hex[:8]
    proxy.lose_answers = 1
    errors: list = []
    client = library.make(write_key, proxy.url, errors)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    for number in range(5):
        client.track(user_id=f"c-{run}", event="Product Viewed",
                     properties={"product_id": f"p-{number}"},
                     timestamp=start + timedelta(seconds=number), message_id=f"{run}-{number}")
    client.flush()
    client.join()

    assert errors == []
    assert len(proxy.requests) >= 2 and proxy.statuses[:2] == [200, 200]  # stored, then again
    rows = stored(collector, {f"c-{run}"})
    assert [row["event_id"] for row in rows] == [f"{run}-{number}" for number in range(5)]


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda library: library.name)
def test_a_bad_write_key_is_refused_once_and_not_retried(
        library: Library, collector: CollectorProcess, write_key: str, proxy: Proxy) -> None:
    run = uuid.uuid4().hex[:8]
    errors: list = []
    client = library.make("tlr_sk_" + "0" * 40, proxy.url, errors)
    client.track(user_id=f"c-{run}", event="Product Viewed", properties={"product_id": "p-1"})
    client.flush()
    client.join()

    assert len(proxy.requests) == 1 and proxy.statuses == [403]
    assert len(errors) == 1 and getattr(errors[0], "status", None) == 403
    assert stored(collector, {f"c-{run}"}) == []
