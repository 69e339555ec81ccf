"""The collector app on a fresh home, shared by the collector test modules: settings that
allow one shop origin, a public and a secret key, a test client, and the event store."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from tailor.config import Settings, load_settings
from tailor.events.collector.app import create_collector_app
from tailor.events.keys import create_key, keys_file_path
from tailor.events.store import EventStore, open_event_store

SHOP = "https://shop.example"  # the one origin the collector's settings allow


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return load_settings(home=tailor_home, env={}).replace(collector_allowed_origins=SHOP)


@pytest.fixture
def public_key(settings: Settings) -> str:
    return create_key("public", keys_file_path(settings), label="test shop")


@pytest.fixture
def secret_key(settings: Settings) -> str:
    return create_key("secret", keys_file_path(settings), label="test server")


@pytest.fixture
def client(settings: Settings, public_key: str, secret_key: str) -> Iterator[TestClient]:
    with TestClient(create_collector_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def store(settings: Settings) -> Iterator[EventStore]:
    event_store = open_event_store(settings.event_store_url)
    yield event_store
    event_store.close()
