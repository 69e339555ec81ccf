"""Fixtures for the quality tests: a store filled by a real ingest path and a local webhook
receiver (http.server) on 127.0.0.1 (the SMTP server is tests/smtp_servers.py's)."""

from __future__ import annotations

import json
import socketserver
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from tailor.config import Settings, load_settings
from tailor.events.schema import validate_events
from tailor.events.store import EventStore, IngestRun

NOW = pd.Timestamp("2026-03-01T12:00:00Z")


def ingest(store: EventStore, rows: pd.DataFrame, batch_id: str, now: pd.Timestamp = NOW,
           known_products: set[str] | None = None) -> dict[str, int]:
    """Validate and store rows as `tailor ingest` does; returns the run's counts."""
    result = validate_events(rows, now=now, known_products=known_products)
    accepted = store.insert_events(result.valid, batch_id)
    store.insert_rejected(result.rejected, batch_id, "test-file.csv")
    rejected = result.rejected["reason"].value_counts().to_dict()
    store.record_ingest(IngestRun(batch_id, "test-file.csv", now, now, received=len(rows),
                                  accepted=accepted, duplicates=len(result.valid) - accepted,
                                  rejected=rejected))
    return {"accepted": accepted, "duplicates": len(result.valid) - accepted, **rejected}


def daily_rows(counts: list[int], first_day: str = "2026-02-15", prefix: str = "v") -> pd.DataFrame:
    """Good page views: counts[i] events spread over day first_day + i (UTC)."""
    rows = []
    for offset, count in enumerate(counts):
        day = pd.Timestamp(first_day, tz="UTC") + pd.Timedelta(days=offset)
        for index in range(count):
            moment = day + pd.Timedelta(seconds=int(index * 86_000 / max(count, 1)))
            rows.append({"event_id": f"{prefix}{offset}-{index}", "customer_id": f"c{index % 7}",
                         "event_type": "page_view", "timestamp": moment.isoformat()})
    return pd.DataFrame(rows)


# Faults injected into `faulty_file`, per rejection reason, and repeated event ids.
INJECTED = {"missing_customer_id": 3, "nonpositive_price": 2, "future_timestamp": 4,
            "malformed_row": 5, "unknown_product": 6, "missing_product_id": 7}
INJECTED_DUPLICATES = 8
CATALOGUE = {"p1", "p2"}


def faulty_file() -> pd.DataFrame:
    """1,000 good events over ten days (Feb 15-24) plus exactly the faults in `INJECTED`."""
    good = daily_rows([100] * 10)
    stamp = "2026-02-24T10:00:00Z"
    bad = (
        [{"customer_id": value} for value in (None, "", "   ")]
        + [{"event_type": "purchase", "product_id": "p1", "price": value} for value in (0, -5)]
        + [{"timestamp": "2027-01-01T00:00:00Z"}] * 4
        + [{"event_type": "bogus"}, {"timestamp": "yesterday"}, {"price": "abc"},
           {"quantity": "1.5"}, {"properties": "[1]"}]
        + [{"event_type": "product_view", "product_id": "p-nope"}] * 6
        + [{"event_type": "add_to_cart"}] * 7
    )
    base = {"customer_id": "c1", "event_type": "page_view", "timestamp": stamp}
    faults = pd.DataFrame([base | {"event_id": f"bad{index}"} | row
                           for index, row in enumerate(bad)])
    duplicates = good.iloc[:INJECTED_DUPLICATES]
    return pd.concat([good, faults, duplicates], ignore_index=True)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={})


@pytest.fixture
def ingest_rows():
    """The `ingest` helper, for tests."""
    return ingest


@pytest.fixture
def make_daily_rows():
    """The `daily_rows` helper, for tests."""
    return daily_rows


@pytest.fixture
def ingest_faulty_file():
    """A function that ingests `faulty_file` into a store (with the catalogue `CATALOGUE`)
    and returns (faults injected per reason, duplicates injected)."""

    def run(store: EventStore) -> tuple[dict[str, int], int]:
        store.upsert_products(pd.DataFrame({"product_id": sorted(CATALOGUE)}))
        ingest(store, faulty_file(), "faulty", known_products=CATALOGUE)
        return dict(INJECTED), INJECTED_DUPLICATES

    return run


@dataclass
class Received:
    """What a local test server got, and where it listens."""

    bodies: list = field(default_factory=list)
    url: str = ""
    port: int = 0


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """Run a server on a daemon thread for the duration of the block."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> Iterator[Received]:
    """A local HTTP endpoint recording JSON bodies; `@pytest.mark.parametrize("webhook", [500],
    indirect=True)` makes it answer with that status instead of 200."""
    status = getattr(request, "param", 200)
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", 0))
            received.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    received.port = server.server_address[1]
    received.url = f"http://127.0.0.1:{received.port}/hooks/quality"
    with serving(server):
        yield received


@pytest.fixture
def faulty_csv():
    """A function writing `faulty_file` and the catalogue as CSV files into a folder; returns
    (events path, products path, faults injected per reason, duplicates injected)."""

    def write(folder: Path) -> tuple[Path, Path, dict[str, int], int]:
        events_path, products_path = folder / "events.csv", folder / "products.csv"
        faulty_file().to_csv(events_path, index=False)
        pd.DataFrame({"product_id": sorted(CATALOGUE)}).to_csv(products_path, index=False)
        return events_path, products_path, dict(INJECTED), INJECTED_DUPLICATES

    return write
