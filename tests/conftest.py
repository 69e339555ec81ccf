"""Shared fixtures: real PostgreSQL and Redis when reachable, an isolated Tailor home.

On a newcomer's machine without the services, tests that need them are skipped
with the reason (pytest -ra lists them). In CI (`CI=true`) a missing service is a
loud failure instead: CI promises the services are up.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

POSTGRES_URL = os.environ.get("TAILOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TAILOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _service_missing(name: str, reason: str) -> None:
    message = f"{name} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server URL, after checking it answers."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as error:  # any failure to reach the server means "not available"
        _service_missing("PostgreSQL", f"{POSTGRES_URL}: {error}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in postgres_server_url else "?"
    yield f"{postgres_server_url}{separator}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(postgres_server_url, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis URL, after checking it answers PING."""
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as error:
        _service_missing("Redis", f"{REDIS_URL}: {error}")
    return REDIS_URL


@pytest.fixture
def tailor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Tailor home; TAILOR_* variables from the caller's shell are cleared."""
    for key in list(os.environ):
        if key.startswith("TAILOR_") and not key.startswith("TAILOR_TEST_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    return home
