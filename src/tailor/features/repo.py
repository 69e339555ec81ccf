"""The Feast repository inside a Tailor home: render it, apply it, materialize it, open it.

Reads: the definition modules (`feature_store/*.py` of the source tree, or
`features.definitions_dir`) and the settings. Writes `<home>/feature_repo/`:

    feature_store.yaml   Feast configuration from the settings (SQLite or Redis online store;
                         DuckDB or, under features.engine = spark, Spark offline store:
                         tailor.features.offline_store); registry and SQLite paths relative
                         to the repo, so a copied home's repo names its own files
    *.py                 copies of the definition modules
    tailor_home.json     the home the definitions read their files and manifest from ("..",
                         relative to the repo)
    data/registry.db     Feast's registry (file registry; it records each view's
                         materialized intervals)
    data/online_store.db the SQLite online store (when no Redis URL is set)
    data/materialized_store.json  the online store the registry's intervals refer to

`apply_definitions` does what `feast apply` does, in-process; `materialize` loads the
newest offline rows into the online store (all of them, or incrementally). The same
configuration dictionary is rendered into the yaml (for the `feast` CLI) and passed to
`FeatureStore` in-process, so both see one store.

A home copied with `cp -a` carries a registry whose recorded infrastructure (the SQLite
tables and their absolute file) names the original home; Feast would drop those tables
when it applies the copy's definitions. `detach_foreign_infra` removes such records (and
records of tables this home's online store lost, so Feast creates them again) from the
registry before Feast reads it, so a home never touches files outside itself.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import shutil
import sys
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

import yaml

from tailor.config import Settings
from tailor.errors import InputError
from tailor.features.definitions import HOME_MARKER
from tailor.features.feast_internals import online_store_redis_client
from tailor.features.offline_store import DUCKDB, offline_engine, offline_store_config
from tailor.logs import library_output

log = logging.getLogger(__name__)

RENDERED_REPO_DIR = "feature_repo"
REGISTRY_FILE = "data/registry.db"  # relative to the rendered repo, as Feast resolves it
ONLINE_STORE_FILE = "data/online_store.db"
MATERIALIZED_STORE_FILE = "materialized_store.json"
DEFINITION_MODULES: tuple[str, ...] = (
    "entities.py", "data_sources.py", "features.py", "on_demand_features.py",
    "feature_services.py",
)
ONLINE_WRITE_BATCH_SIZE = 20_000
_IMPORT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ViewWindow:
    """The interval one feature view is materialized over, and why.

    `mode`: "incremental" (from the view's last materialized end, Feast's
    `materialize_incremental`), "changed" (from the oldest newest-row the new build
    changed, which lies before that end) or "window" (the view's whole TTL: the first run,
    another online store, or asked for).
    """

    view: str
    start: datetime
    end: datetime
    mode: str

    def to_dict(self) -> dict[str, str]:
        """The window as JSON-ready values."""
        return {"view": self.view, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "mode": self.mode}


@dataclass
class ApplySummary:
    """What applying the definitions changed in the registry."""

    project: str
    repo_path: str
    online_store: str
    applied: list[str]
    deleted: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return dict(self.__dict__)


def repo_dir(settings: Settings) -> Path:
    """`<home>/feature_repo`, the rendered Feast repository."""
    return settings.home_path.resolve() / RENDERED_REPO_DIR


def definitions_source_dir(settings: Settings) -> Path:
    """Where the definition modules come from (see `features.definitions_dir`).

    Raises:
        FileNotFoundError: the folder or one of its modules is missing.
    """
    configured = settings.features_definitions_dir
    source_tree = Path(__file__).resolve().parents[3]
    source = Path(configured) if configured else source_tree / "feature_store"
    missing = [name for name in DEFINITION_MODULES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Feast definitions not found in {source} (missing {', '.join(missing)}); "
            "set features.definitions_dir (TAILOR_FEATURES_DEFINITIONS_DIR) to the "
            "feature_store/ folder of the Tailor source tree")
    return source


def redis_connection_string(redis_url: str, timeout_seconds: float | None = None) -> str:
    """Feast's Redis connection string (host:port,db=N,...) for a redis:// URL.

    Raises:
        InputError: the URL is not redis:// or rediss://.
    """
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss"):
        raise InputError(f"redis_url: expected redis://host:port/db, got {parts.scheme}://…")
    pieces = [f"{parts.hostname or 'localhost'}:{parts.port or 6379}"]
    database = parts.path.strip("/") or "0"
    pieces.append(f"db={int(database)}")
    if parts.username:
        pieces.append(f"username={unquote(parts.username)}")
    if parts.password:
        pieces.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        pieces.append("ssl=true")
    if timeout_seconds is not None:
        pieces += [f"socket_timeout={timeout_seconds}", f"socket_connect_timeout={timeout_seconds}"]
    return ",".join(pieces)


def online_store_path(settings: Settings) -> Path:
    """The SQLite online store's file, `<home>/feature_repo/data/online_store.db`."""
    return repo_dir(settings) / ONLINE_STORE_FILE


def online_store_config(settings: Settings, serving: bool = False) -> dict[str, Any]:
    """The online_store section: SQLite under the home, or Redis when redis_url is set.

    The SQLite path is relative to the repo (Feast joins it to the repo path), so the
    rendered yaml of a copied home never names the original's file.

    Args:
        settings: uses `redis_url`, `home_path`, `features_batch_ttl_days`,
            `features_online_timeout_ms`.
        serving: add socket timeouts so a slow store fails fast (online reads only;
            materialization writes large pipelines and must not time out).
    """
    if not settings.redis_url:
        return {"type": "sqlite", "path": ONLINE_STORE_FILE}
    timeout = settings.features_online_timeout_ms / 1000 if serving else None
    return {
        "type": "redis",
        "connection_string": redis_connection_string(settings.redis_url, timeout),
        # Keys of entities not written for a whole TTL expire: their features are stale anyway.
        "key_ttl_seconds": settings.features_batch_ttl_days * 86_400,
    }


def registry_path(settings: Settings) -> Path:
    """Feast's registry file inside the home (exists once the definitions were applied)."""
    return repo_dir(settings) / REGISTRY_FILE


def repo_config_dict(settings: Settings, serving: bool = False) -> dict[str, Any]:
    """The feature_store.yaml content for the settings."""
    return {
        "project": settings.features_project,
        "provider": "local",
        "registry": {"registry_type": "file", "path": REGISTRY_FILE,
                     "cache_ttl_seconds": 60},
        "online_store": online_store_config(settings, serving),
        # Serving reads only the online store: its config names no Spark store, so a serving
        # image needs no pyspark when the batch jobs run on Spark (SparkSource needs none).
        "offline_store": {"type": DUCKDB} if serving else offline_store_config(settings),
        "entity_key_serialization_version": 3,
        "materialization": {"online_write_batch_size": ONLINE_WRITE_BATCH_SIZE},
    }


def render_feature_repo(settings: Settings) -> Path:
    """Write `<home>/feature_repo/`: the yaml, the definition modules and the home marker.

    Returns:
        The rendered repo's path.
    """
    target = repo_dir(settings)
    (target / "data").mkdir(parents=True, exist_ok=True)
    source = definitions_source_dir(settings)
    for name in DEFINITION_MODULES:
        shutil.copyfile(source / name, target / name)
    header = ("# Rendered by `tailor features` from the settings; edit the settings, not this "
              "file.\n")
    config_file = target / "feature_store.yaml"
    config_file.write_text(header + yaml.safe_dump(repo_config_dict(settings), sort_keys=False),
                           encoding="utf-8")
    config_file.chmod(0o600)  # may hold the Redis password
    # The repo's parent folder is the home; relative, so a copied home's repo reads itself.
    marker = {"home": "..", "rendered_at": _now_iso()}
    (target / HOME_MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return target


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


@contextlib.contextmanager
def _isolated_imports(directory: Path, names: list[str]) -> Iterator[None]:
    """Import modules named `names` from `directory`, then forget them again.

    The definitions import each other by plain module name (`from entities import
    customer`), as in any Feast repo; repos of different homes must not share modules.
    """
    with _IMPORT_LOCK:
        saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
        sys.path.insert(0, str(directory))
        try:
            yield
        finally:
            sys.path.remove(str(directory))
            for name in names:
                sys.modules.pop(name, None)
            sys.modules.update(saved)


def load_definitions(directory: Path, project: str) -> Any:
    """Import a Feast repo's modules and collect its objects, like `feast apply` does.

    Args:
        directory: the repo folder.
        project: the Feast project the objects belong to (from feature_store.yaml).

    Returns:
        A `feast.repo_contents.RepoContents`.
    """
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource, PushSource
    from feast.feature_view import DUMMY_ENTITY
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.project import Project
    from feast.repo_contents import RepoContents

    names = [path.stem for path in sorted(directory.glob("*.py"))]
    found: dict[type, list[Any]] = {kind: [] for kind in
                                    (DataSource, Entity, FeatureView, OnDemandFeatureView,
                                     FeatureService)}
    with _isolated_imports(directory, names):
        for name in names:
            module = importlib.import_module(name)
            for value in vars(module).values():
                for kind, objects in found.items():
                    if isinstance(value, kind) and not any(value is seen for seen in objects):
                        objects.append(value)
    for source in list(found[DataSource]):
        if isinstance(source, PushSource) and source.batch_source is not None \
                and not any(source.batch_source is seen for seen in found[DataSource]):
            found[DataSource].append(source.batch_source)
    # Feast's placeholder entity for entity-less views (request_context), as parse_repo adds.
    found[Entity].append(DUMMY_ENTITY)
    return RepoContents(projects=[Project(name=project)], data_sources=found[DataSource],
                        feature_views=found[FeatureView],
                        on_demand_feature_views=found[OnDemandFeatureView],
                        stream_feature_views=[], label_views=[], entities=found[Entity],
                        feature_services=found[FeatureService], permissions=[])


def open_feature_store(settings: Settings, serving: bool = False) -> Any:
    """A `feast.FeatureStore` on the home's repo, configured from the settings.

    Args:
        settings: the Tailor settings.
        serving: configure the online store for reads (short Redis timeouts).
    """
    from feast import FeatureStore, RepoConfig

    target = repo_dir(settings)
    config = RepoConfig(**repo_config_dict(settings, serving))
    config.repo_path = target
    store = FeatureStore(repo_path=str(target), config=config)
    if serving and settings.redis_url:
        limit_redis_retries(store)
    return store


def serving_retry() -> Any:
    """One immediate retry: redis-py's default (3 retries with backoff) stalls a request
    for about ten seconds when Redis is down; serving answers with defaults instead."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 1)


def limit_redis_retries(store: Any) -> None:
    """Give the Redis client inside Feast's online store the serving retry policy."""
    online_store_redis_client(store).set_retry(serving_retry())


def apply_definitions(settings: Settings, store: Any | None = None) -> ApplySummary:
    """Render the repo and apply its definitions to the registry and online store.

    Objects in the registry that the definitions no longer have are deleted, as with
    `feast apply`.

    Returns:
        The `ApplySummary` (object names applied and deleted).
    """
    from feast.repo_operations import (
        apply_total_with_repo_instance,
        extract_objects_for_apply_delete,
    )

    target = render_feature_repo(settings)
    detach_foreign_infra(settings)
    contents = load_definitions(target, settings.features_project)
    store = store or open_feature_store(settings)
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(
        settings.features_project, store.registry, contents)
    # Feast reads each source's columns (on Spark: through the session) as it applies.
    with library_output("feast.output"), warnings.catch_warnings(), offline_engine(settings):
        # Feast prints its plan (to the log, not the terminal: Tailor sums it up), and warns on every apply that on-demand views
        # are experimental (known: docs/features.md).
        warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
        # The same call `feast apply` makes after parsing the repo: registry and
        # infrastructure (online tables) are planned, applied and recorded together.
        apply_total_with_repo_instance(store, settings.features_project, store.registry,
                                       contents, skip_source_validation=False)
    return ApplySummary(
        project=settings.features_project, repo_path=str(target),
        online_store=store.config.online_store.type,
        applied=sorted(f"{type(item).__name__}:{item.name}" for item in to_apply),
        deleted=sorted(f"{type(item).__name__}:{item.name}" for item in to_delete))


def _inside(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def _read_registry(path: Path) -> Any:
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    proto = RegistryProto()
    proto.ParseFromString(path.read_bytes())
    return proto


def foreign_infra_paths(settings: Settings) -> list[str]:
    """Files outside this home that the registry's recorded infrastructure names.

    Read from the registry file's bytes, not through Feast: Feast opens (and creates) each
    recorded SQLite file as it loads the record.

    Returns:
        The distinct paths, sorted; empty for a registry of this home or no registry.
    """
    path = registry_path(settings)
    if not path.is_file():
        return []
    home = settings.home_path.resolve()
    return sorted({item.sqlite_table.path for item in _read_registry(path).infra.infra_objects
                   if item.HasField("sqlite_table") and not _inside(item.sqlite_table.path, home)})


def _sqlite_tables(database: Path) -> set[str]:
    """Tables in a SQLite file, read-only (none when the file is missing)."""
    import sqlite3

    if not database.is_file():
        return set()
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        return {name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}


def detach_foreign_infra(settings: Settings) -> list[str]:
    """Drop the registry's infrastructure records that Feast must not act on.

    A copied home's registry records the original's SQLite tables; Feast's apply would tear
    them down (`DROP TABLE` in the original's online store) as "moved". A record of a table
    missing from this home's online store (lost, or dropped by that fault) would keep Feast
    from creating it again. Without the records Feast creates this home's tables (`CREATE
    TABLE IF NOT EXISTS`: rows already there stay) and touches nothing else. Objects,
    intervals and the rest of the registry stay.

    Returns:
        What was removed: foreign file paths, and `<table> (missing)` for lost tables
        (empty: the registry was left as it was).
    """
    path = registry_path(settings)
    if not path.is_file():
        return []
    proto = _read_registry(path)
    home = settings.home_path.resolve()
    tables = _sqlite_tables(online_store_path(settings))
    removed, kept = [], []
    for item in proto.infra.infra_objects:
        if not item.HasField("sqlite_table"):
            kept.append(item)
        elif not _inside(item.sqlite_table.path, home):
            removed.append(item.sqlite_table.path)
        elif Path(item.sqlite_table.path).resolve() == online_store_path(settings).resolve() \
                and item.sqlite_table.name not in tables:
            removed.append(f"{item.sqlite_table.name} (missing)")
        else:
            kept.append(item)
    if not removed:
        return []
    del proto.infra.infra_objects[:]
    proto.infra.infra_objects.extend(kept)
    path.write_bytes(proto.SerializeToString())
    removed = sorted(set(removed))
    log.warning("feature registry %s recorded online tables Feast must not act on (%s); "
                "their records were removed, this home's online store is used", path,
                ", ".join(removed))
    return removed


def source_table(view: Any) -> str:
    """The offline file (stem: customer_features, ...) a feature view reads."""
    return Path(view.batch_source.path).stem


def plan_windows(store: Any, end: datetime, incremental: bool,
                 changed_since: dict[str, str | None] | None = None) -> list[ViewWindow]:
    """The window each online feature view with a TTL is materialized over.

    Args:
        store: the open `feast.FeatureStore` (its registry knows each view's last end).
        end: the time materialized to.
        incremental: start from each view's last materialized end where there is one.
        changed_since: per offline file, the oldest stamp of an entity's newest row that
            the latest build changed (`FeatureBuild.changed_since`); an incremental window
            is rewound to it when it lies before the last end.

    Returns:
        One `ViewWindow` per view; never older than the view's TTL before `end` (older rows
        are stale anyway).
    """
    windows = []
    for view in store.list_feature_views():
        if not view.online or not view.ttl:
            continue
        oldest = end - view.ttl
        last = view.most_recent_end_time if incremental else None
        if last is not None and last >= oldest:
            start, mode = min(last, end), "incremental"
        else:
            start, mode = oldest, "window"
        changed = (changed_since or {}).get(source_table(view))
        if mode == "incremental" and changed and datetime.fromisoformat(changed) < start:
            start, mode = max(datetime.fromisoformat(changed), oldest), "changed"
        windows.append(ViewWindow(view.name, start, end, mode))
    return windows


def online_store_identity(settings: Settings) -> str:
    """Which online store (and Feast project in it) materialization writes to; no password."""
    if settings.redis_url:
        parts = urlsplit(settings.redis_url)
        where = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        return f"{where} {settings.features_project}"
    return f"sqlite {online_store_path(settings)} {settings.features_project}"


def _materialized_store_file(settings: Settings) -> Path:
    return repo_dir(settings) / "data" / MATERIALIZED_STORE_FILE


def same_online_store(settings: Settings) -> bool:
    """Whether the registry's materialized intervals were written to this online store."""
    path = _materialized_store_file(settings)
    if not path.is_file():
        return False
    recorded = json.loads(path.read_text(encoding="utf-8")).get("online_store")
    return recorded == online_store_identity(settings)


def _record_online_store(settings: Settings) -> None:
    path = _materialized_store_file(settings)
    path.write_text(json.dumps({"online_store": online_store_identity(settings),
                                "recorded_at": _now_iso()}, indent=2), encoding="utf-8")


def materialize(settings: Settings, end: datetime | None = None, store: Any | None = None,
                incremental: bool = False,
                changed_since: dict[str, str | None] | None = None) -> list[ViewWindow]:
    """Load each entity's newest offline row before `end` into the online store.

    By default every online view's whole TTL window (Feast `materialize` over
    [end - TTL, end]): what an empty or new online store needs. With `incremental`, each
    view starts where its last materialization into this online store ended (Feast's
    `materialize_incremental`, which reads that end from the registry), rewound to
    `changed_since` when the new build changed an entity's newest row stamped before it
    (`plan_windows`); a different online store than last time gets whole windows.

    On Redis the batch views are written in bulk in Feast's format
    (`tailor.features.redis_writer`, measured several times faster than Feast's
    value-by-value conversion: docs/features.md); the session view, and everything on
    SQLite, goes through Feast. Either way the registry records the intervals.

    Returns:
        The window of each view.
    """
    store = store or open_feature_store(settings)
    end = end or datetime.now(timezone.utc)
    windows = plan_windows(store, end, incremental and same_online_store(settings),
                           changed_since)
    done: set[str] = set()
    if settings.redis_url:
        import redis

        from tailor.features.redis_writer import materialize_batch_views

        client = redis.Redis.from_url(settings.redis_url)
        try:
            done = set(materialize_batch_views(
                store, client, {window.view: window.start for window in windows}, end))
        finally:
            client.close()
    groups: dict[tuple[str, datetime], list[str]] = {}
    for window in windows:
        if window.view not in done:
            groups.setdefault((window.mode, window.start), []).append(window.view)
    # Feast's progress lines go to the log; it reads the newest rows with the offline store.
    with library_output("feast.output"), offline_engine(settings):
        for (mode, start), names in groups.items():
            if mode == "incremental":
                store.materialize_incremental(end_date=end, feature_views=sorted(names))
            else:
                store.materialize(start_date=start, end_date=end, feature_views=sorted(names))
    _record_online_store(settings)
    return windows
