"""Shared fixtures: real PostgreSQL and Redis when reachable, one local Spark session, an
isolated Tailor home.

On a newcomer's machine without the services (or without pyspark and Java), tests that
need them are skipped with the reason (pytest -ra lists them). In CI (`CI=true`) a missing
service is a loud failure instead: CI promises the services are up.
"""

from __future__ import annotations

import os
import shutil
import sys
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


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory):
    """One local Spark session for the whole test session (local[2], no web UI, two shuffle
    partitions, 1 GB driver; the JVM's notices in a home of its own): every Spark test shares
    it. Skipped without pyspark or Java on a newcomer's machine (pyspark comes with the dev
    extra; a Java 17 runtime); CI installs both (.ci/run)."""
    from tailor.batch.spark_session import require_spark, spark_session
    from tailor.config import load_settings

    try:
        require_spark()
    except RuntimeError as error:
        _service_missing("Spark", str(error))
    settings = load_settings(home=tmp_path_factory.mktemp("spark-home"), env={}).replace(
        features_spark_master="local[2]", features_spark_shuffle_partitions=2,
        features_spark_driver_memory="1g")
    session = spark_session(settings)
    yield session
    session.stop()


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


# -- new MLflow stores start migrated ---------------------------------------------------------

# MLflow builds a new SQLite store by running every Alembic migration since its first release:
# 1.5 to 4 s per store, and the suite makes dozens (each test home that trains or registers).
# Once a test has imported MLflow's store code, each new SQLite store in this process starts as
# a copy of one store migrated here (an empty database of the same MLflow version; MLflow
# checks its schema revision and creates the Default experiment as for a new store). A
# subprocess (the CLI tests, `tailor demo`) still builds its store from scratch.
_MIGRATED: dict[str, Path] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if "mlflow.store.db.utils" in sys.modules and "template" not in _MIGRATED:
        _copy_migrated_mlflow_stores(item.config)


def _copy_migrated_mlflow_stores(config: pytest.Config) -> None:
    import mlflow.store.db.utils as db_utils
    import mlflow.store.model_registry.sqlalchemy_store as registry_store

    create_engine = db_utils.create_sqlalchemy_engine_with_retry
    template = config._tmp_path_factory.mktemp("mlflow-migrated") / "mlflow.db"
    _MIGRATED["template"] = template

    def from_template(db_uri: str):
        path = Path(db_uri[len("sqlite:///"):].split("?", 1)[0]) \
            if db_uri.startswith("sqlite:///") else None
        if path is not None and path != template and not path.exists():
            if not template.exists():
                engine = create_engine(f"sqlite:///{template}")
                db_utils._initialize_tables(engine)
                engine.dispose()
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, path)
        return create_engine(db_uri)

    db_utils.create_sqlalchemy_engine_with_retry = from_template
    registry_store.create_sqlalchemy_engine_with_retry = from_template


# -- spreading the suite over workers (`make test` runs pytest-xdist with --dist loadgroup) --

# Session fixtures that build a trained home: every test using one runs on the same worker,
# so each home is built once per run however the tests are spread.
_SHARED_HOMES = {
    "private_redis": "e2e-trained-home", "trained_home": "e2e-trained-home",
    "serving": "e2e-trained-home",
    "served_home": "served-home", "pipeline": "served-home",
    "shop_folder": "model-shop", "sim_shop": "model-shop",
    "spark_session": "spark",  # one JVM: every Spark test on one worker
}


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under xdist, group each test with the trained home it uses, else with its module
    (module-scoped fixtures are then built once too). Marked as each test is collected, before
    any `pytest_collection_modifyitems` (xdist's reads the groups into the node ids there)."""
    if not hasattr(item.config, "workerinput"):
        return
    fixtures = getattr(item, "fixturenames", ())
    group = next((_SHARED_HOMES[name] for name in fixtures if name in _SHARED_HOMES),
                 item.nodeid.split("::")[0])
    item.add_marker(pytest.mark.xdist_group(group))


# Heavy work first. xdist hands the groups to the workers in the order of the collection.
# Its own reordering (switched off below) puts the groups with the most tests first, often
# files of quick parametrized unit tests, so a group that builds a trained home and runs for
# minutes could start last and leave the other worker idle at the end. The groups that build
# a shared trained home or a Spark session go first, then the end-to-end, integration and
# model tests, then the rest.
_FIRST_TIERS = ("tests/e2e/", "tests/integration/", "tests/model/")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist is installed
        config.option.loadscopereorder = False


def _tier(item: pytest.Item) -> int:
    marker = item.get_closest_marker("xdist_group")
    group = marker.args[0] if marker and marker.args else ""
    if group in set(_SHARED_HOMES.values()):
        return 0
    path = item.nodeid.split("::")[0]
    return next((number + 1 for number, prefix in enumerate(_FIRST_TIERS)
                 if path.startswith(prefix)), len(_FIRST_TIERS) + 1)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: the heavy tiers first (see `_FIRST_TIERS`; the order within a tier kept),
    and a loud failure when xdist no longer puts the groups into the node ids (pytest 9 with
    xdist 3.8 did that silently): each group's homes would be built on every worker."""
    if hasattr(config, "workerinput"):
        order = {id(item): number for number, item in enumerate(items)}
        items.sort(key=lambda item: (_tier(item), order[id(item)]))
    if hasattr(config, "workerinput") and config.getvalue("dist") == "loadgroup" and items \
            and "@" not in items[0].nodeid:
        raise pytest.UsageError("pytest-xdist did not group the tests (no @group in the node "
                                "ids): check the pytest and pytest-xdist versions pinned in "
                                "requirements/constraints.txt")
