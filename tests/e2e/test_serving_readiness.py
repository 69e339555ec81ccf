"""`/readyz` of a real `bentoml serve` under faults: not ready while the models
that exist cannot be loaded and while the collector's event store cannot be written; ready
again, and storing events, once the faults clear. `/livez` stays 200 throughout.

The faults are folders whose place is taken by a file (what a read-only home does, and
what root cannot write through either): the BentoML model store's, so every registered
version fails to load, and the event store's, so the collector cannot open it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pandas as pd
import pytest

from collector_process import free_port

pytestmark = pytest.mark.slow


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n"
                         f"{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def broken_server(trained_home, tmp_path: Path) -> Iterator[tuple[str, list[Path], Path, str]]:
    from tailor.events.keys import create_key, keys_file_path
    from tailor.server import start_server

    model_store = tmp_path / "bentoml-models"
    store_folder = tmp_path / "events"
    for blocker in (model_store, store_folder):
        blocker.write_text("a file where a folder should be")
    settings = trained_home.settings.replace(
        serving_bentoml_home=str(model_store),
        database_url=f"sqlite:///{store_folder / 'events.db'}",
        serving_reload_seconds="2", serving_workers="1", serving_timeout_ms="3000")
    public_key = create_key("public", keys_file_path(settings), label="readiness test")
    log_path = tmp_path / "server.log"
    with log_path.open("ab") as log:
        server = start_server(settings, host="127.0.0.1", port=free_port(), log=log)
    try:
        yield server.url, [model_store, store_folder], log_path, public_key
    finally:
        server.stop()


def test_readyz_follows_model_loading_and_the_event_store(broken_server) -> None:
    url, blockers, log_path, public_key = broken_server
    wait_for(lambda: httpx.get(url + "/livez", timeout=5).status_code == 200, 240,
             "the server to answer /livez", log_path)

    def unready_for_the_models() -> bool:  # after start-up: the reason names a model
        answer = httpx.get(url + "/readyz", timeout=5)
        return answer.status_code == 503 and "/readyz: not ready: homepage model not loaded" \
            in log_path.read_text(errors="replace")

    wait_for(unready_for_the_models, 240, "start-up to finish, unready", log_path)
    event = {"event_id": uuid.uuid4().hex, "customer_id": "c-1", "event_type": "page_view",
             "timestamp": (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)).isoformat()}
    refused = httpx.post(url + "/collect/v1/events", json={"events": [event]},
                         headers={"X-Tailor-Key": public_key}, timeout=30)
    assert refused.status_code == 503
    health = httpx.get(url + "/collect/healthz", timeout=5)
    assert health.status_code == 503 and "event store" in health.json()["error"]

    for blocker in blockers:  # the home is writable again
        blocker.unlink()
    wait_for(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, 60,
             "/readyz to turn 200 after the faults cleared", log_path)
    stored = httpx.post(url + "/collect/v1/events", json={"events": [event]},
                        headers={"X-Tailor-Key": public_key}, timeout=30)
    assert stored.status_code == 200 and stored.json()["accepted"] == 1
    assert httpx.get(url + "/livez", timeout=5).status_code == 200
