"""Fixtures shared by the serving tests of two tiers (`unit/serving`, `integration/serving`):
pipelines with a metrics registry of their own, a BentoML model store pointed at a folder
for one test, and incentive ledgers on SQLite and on the real Redis.

Each tier's `conftest.py` imports the ones it uses; pytest then offers them to that folder's
tests. Importable from every test folder: pytest puts `tests/` on `sys.path` when it loads
`tests/conftest.py`. Writes only under pytest's temporary folders and under a Redis key
prefix of its own, which it removes.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tailor.config import Settings

LEDGER_BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(scope="session")
def pipeline_factory():
    """Builds pipelines with their own metrics registry and no watcher (other options, e.g.
    `ledger`, passed on); closes them after."""
    from prometheus_client import CollectorRegistry

    from tailor.serving.metrics import ServingMetrics
    from tailor.serving.pipeline import ServingPipeline

    built = []

    def build(settings: Settings, **options) -> ServingPipeline:
        built.append(ServingPipeline(settings, start_watcher=False,
                                     metrics=ServingMetrics(CollectorRegistry()), **options))
        _lists_ranked(built[-1])
        return built[-1]

    yield build
    for pipeline in built:
        pipeline.close()


def _lists_ranked(pipeline) -> None:
    """Wait for the homepage candidates found ahead (`tailor.serving.precomputed`): a test that
    watches the model's calls must not see the background thread's."""
    loaded = pipeline.slots["homepage"].current
    lists = getattr(loaded.prepared, "precomputed", None) if loaded is not None else None
    if lists is not None:
        assert lists.done.wait(120), "the homepage lists were not ranked within 120 s"


@pytest.fixture
def configured_bentoml_store():
    """Points BentoML's configured model store (a served Bento's, else $BENTOML_HOME's) at
    a folder for the test: `configured_bentoml_store(path)`; put back afterwards."""
    from tailor.serving.bentoml_internals import (
        configured_model_store, model_store_at, set_configured_model_store,
    )

    before = configured_model_store()

    def point(path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        set_configured_model_store(model_store_at(path))

    yield point
    set_configured_model_store(before)


@pytest.fixture
def empty_bentoml_store(configured_bentoml_store, tmp_path: Path) -> None:
    """BentoML's configured model store is an empty one for the test."""
    configured_bentoml_store(tmp_path / "configured-bentoml-store")


@pytest.fixture(params=LEDGER_BACKENDS)
def ledger_factory(request, tmp_path: Path):
    """`make(budget)`: a fresh, empty ledger on the parameter's backend; its keys removed
    after. Its `spec` rebuilds the same ledger in another process."""
    from tailor.serving.budget import RedisLedger, SQLiteLedger

    run = f"tailor-test:{uuid.uuid4().hex}:"
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made = []

    def make(budget: float):
        prefix = f"{run}{len(made)}:incentive_budget:"
        database = tmp_path / f"budget-{len(made)}.db"
        if url:
            made.append(RedisLedger(url, budget, prefix=prefix, timeout_seconds=2.0))
            made[-1].spec = f"RedisLedger({url!r}, {budget!r}, prefix={prefix!r}, " \
                            "timeout_seconds=5.0)"
        else:
            made.append(SQLiteLedger(database, budget))
            made[-1].spec = f"SQLiteLedger({str(database)!r}, {budget!r})"
        return made[-1]

    yield make
    if url:
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=run + "*"):
            client.delete(key)
