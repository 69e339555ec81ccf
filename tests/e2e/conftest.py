"""Session fixtures for the serving tests: a trained home on a private Redis and a real
`bentoml serve` process over it (two workers), started the way `tailor serve` starts it,
with signed customer ids required by its collector (`collector.require_signed_identity`)
and the demo shop at /shop/ (`serving.demo_shop`, for `test_shop_browser`)."""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest

from collector_process import free_port
from serving_home import (RedisServer, Serving, TrainedHome, build_trained_home,
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
    from tailor.events.identity import create_identity_secret, identity_secret_path
    from tailor.events.keys import create_key, keys_file_path
    from tailor.server import start_server

    settings = trained_home.settings.replace(serving_reload_seconds=str(RELOAD_SECONDS),
                                             serving_workers=str(WORKERS),
                                             serving_timeout_ms=str(TIMEOUT_MS),
                                             collector_require_signed_identity="true",
                                             serving_demo_shop="true",
                                             serving_read_timeout_seconds=str(READ_TIMEOUT))
    keys_file = keys_file_path(settings)
    secret_key = create_key("secret", keys_file, label="serving tests")
    public_key = create_key("public", keys_file, label="serving tests")
    identity_secret = create_identity_secret(identity_secret_path(settings))
    log_path = settings.home_path / "server.log"
    with log_path.open("ab") as log:
        server = start_server(settings, host="127.0.0.1", port=free_port(), log=log)
    serving = Serving(url=server.url, home=trained_home, redis=private_redis,
                      secret_key=secret_key, public_key=public_key, log_path=log_path,
                      reload_seconds=RELOAD_SECONDS, identity_secret=identity_secret,
                      workers=WORKERS)
    try:
        if not server.wait_ready(timeout=240):
            raise RuntimeError(f"the server did not become ready:\n{serving.log_tail()}")
        yield serving
    finally:
        server.stop()
