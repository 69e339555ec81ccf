"""Session fixtures for the serving tests: a trained home on a private Redis and a real
`bentoml serve` process over it (two workers), started the way `tailor serve` starts it,
with signed customer ids required by its collector (`collector.require_signed_identity`)
and the demo shop at /shop/ (`serving.demo_shop`, for `test_shop_browser`)."""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest

from serving_home import (RedisServer, Serving, TrainedHome, build_trained_home, serve_home,
                          start_private_redis)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
RELOAD_SECONDS = 2.0  # serving.reload_seconds of the test server: alias moves show quickly
WORKERS = 2          # two workers, so /metrics must add up both processes' series
READ_TIMEOUT = 3.0   # serving.read_timeout_seconds: the slow-loris test waits this long
TIMEOUT_MS = 3_000   # a generous budget: on a busy 2-core machine a personalised answer
                     # must not turn into a timeout fallback and make the tests flaky


def _require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (Debian package redis-server)"
        if IN_CI:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def private_redis() -> Iterator[RedisServer]:
    _require_redis_server()
    server = start_private_redis()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def trained_home(private_redis: RedisServer,
                 tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    return build_trained_home(tmp_path_factory.mktemp("serving"), private_redis.url)


@pytest.fixture(scope="session")
def serving(trained_home: TrainedHome, private_redis: RedisServer) -> Iterator[Serving]:
    """`bentoml serve bentos.service:Tailor` on a free port, ready."""
    with serve_home(trained_home, private_redis, reload_seconds=RELOAD_SECONDS, workers=WORKERS,
                    serving_timeout_ms=str(TIMEOUT_MS),
                    collector_require_signed_identity="true", serving_demo_shop="true",
                    serving_read_timeout_seconds=str(READ_TIMEOUT)) as serving:
        yield serving
