"""Online feature reads for serving: one feature service's vector per entity, never raising.

Reads the online store (Feast's SQLite store under the home, or Redis) through the Feast
SDK, for a feature service (homepage, cross_sell, churn, checkout), and the last run's
`freshness.json`. Writes nothing.

Every read returns a `FeatureVector`: the values, with the catalogue default
(`tailor.features.specs`) in place of anything the store could not give, and flags
saying why: the entity was never seen by a view (`missing`), a view's row is older than
the view's TTL (`stale`), or the store could not be read at all (`error`). A view the last
`tailor features` run found no row for within its TTL (`tailor.features.freshness`) is
stale for every entity without a row, not missing. Request-time
features derived from a missing or stale view get their defaults too, so a served
vector equals what a training set (`tailor.features.training`) holds for the same
entity and time.

On Redis the reader takes the fast path (`tailor.features.redis_fetch`): one HMGET per
entity of the hashes Feast materialized, decoded with Feast's own encoding, and the
request-time features computed by the functions Feast's on-demand views call. On SQLite it
takes the SQLite fast path (`tailor.features.sqlite_fetch`): one SQL statement reading each
view's rows of the entities by their indexed key. With `fast_path=False` (or a service a
fast path cannot compute) it calls `FeatureStore.get_online_features`.

`OnlineFeatureReader` loads the registry, opens the connection and runs a few reads at
construction (warm-up), so the first request is as fast as the hundredth. After a store
failure it answers from defaults for `RETRY_SECONDS` before trying the store again,
so an outage costs no time per request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from tailor.config import Settings
from tailor.features import specs as catalogue
from tailor.features.compute import read_manifest

# Row key of the fast path (tailor.features.redis_fetch): view -> its row time in seconds.
VIEW_SECONDS = "__view_seconds__"

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
FRESHNESS_CHECK_SECONDS = 30.0  # how often a reader re-reads the last run's stale views
WARM_UP_READS = 5
WARM_UP_ENTITY = "__tailor_warm_up__"
# Which entity each model's service is keyed by (used when the registry cannot be read).
SERVICE_ENTITIES: dict[str, str] = {
    "homepage": catalogue.CUSTOMER, "cross_sell": catalogue.PRODUCT,
    "churn": catalogue.CUSTOMER, "checkout": catalogue.CUSTOMER,
}


@dataclass(frozen=True)
class FeatureVector:
    """One entity's features as served.

    Attributes:
        values: feature name -> value; defaults where the store had nothing usable.
        missing: some view has never seen the entity (its features are defaults).
        stale: some view's row is older than the view's TTL (its features are defaults).
        error: why the store could not be read (every feature is a default), else None.
        missing_views: the views behind `missing`.
        stale_views: the views behind `stale`.
    """

    values: dict[str, Any]
    missing: bool = False
    stale: bool = False
    error: str | None = None
    missing_views: tuple[str, ...] = ()
    stale_views: tuple[str, ...] = ()


@dataclass
class ServiceLayout:
    """What the reader needs to know about a feature service, resolved once at load."""

    service: Any  # feast.FeatureService
    join_key: str
    features_by_view: dict[str, list[str]]
    ttl_by_view: dict[str, timedelta | None]
    sources_by_on_demand_view: dict[str, list[str]]
    defaults: dict[str, Any] = field(default_factory=dict)


def _spec_index(settings: Settings) -> dict[str, catalogue.FeatureSpec]:
    manifest = read_manifest(settings.home_path) or {}
    return {spec.name: spec for spec in catalogue.all_specs(manifest.get("categories", ()))}


def fallback_defaults(settings: Settings, service: str) -> dict[str, Any]:
    """Defaults of every catalogue feature of the service's entity (registry unreadable)."""
    entity = SERVICE_ENTITIES.get(service, catalogue.CUSTOMER)
    specs = _spec_index(settings).values()
    return catalogue.defaults(spec for spec in specs
                              if spec.entity == entity and spec.dtype != "timestamp")


def resolve_layout(store: Any, service_name: str, settings: Settings) -> ServiceLayout:
    """Resolve a feature service: its views, their features, TTLs, on-demand sources, defaults."""
    service = store.get_feature_service(service_name)
    on_demand = {view.name: view for view in store.list_on_demand_feature_views()}
    specs = _spec_index(settings)
    features_by_view: dict[str, list[str]] = {}
    ttl_by_view: dict[str, timedelta | None] = {}
    sources: dict[str, list[str]] = {}
    join_keys: set[str] = set()
    for projection in service.feature_view_projections:
        features_by_view[projection.name] = [feature.name for feature in projection.features]
        if projection.name in on_demand:
            odfv = on_demand[projection.name]
            sources[projection.name] = list(odfv.source_feature_view_projections)
            continue
        view = store.get_feature_view(projection.name)
        ttl_by_view[projection.name] = view.ttl if view.ttl and view.ttl.total_seconds() else None
        join_keys.update(column.name for column in view.entity_columns)
    if len(join_keys) != 1:
        raise ValueError(f"feature service {service_name}: expected one entity key, got "
                         f"{sorted(join_keys)}")
    names = [name for features in features_by_view.values() for name in features]
    defaults = {name: catalogue.defaults([specs[name]])[name] if name in specs else None
                for name in names}
    return ServiceLayout(service, join_keys.pop(), features_by_view, ttl_by_view, sources,
                         defaults)


def _as_utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def vector_from_row(layout: ServiceLayout, row: Mapping[str, Any],
                    request_time: datetime,
                    nothing_fresh: frozenset[str] = frozenset()) -> FeatureVector:
    """Turn one row into a vector: Feast's answer (values and `<feature>__ts` seconds) or
    the fast path's (values and VIEW_SECONDS).

    A view is missing when all its features are null and carry no timestamp; stale when
    its timestamp is older than its TTL at `request_time`, or when it has no row and is in
    `nothing_fresh` (the last materialization found no row within its TTL at all, so the
    absent row says the history is old, not that the entity is new).
    """
    missing: list[str] = []
    stale: list[str] = []
    now = request_time.timestamp()
    view_seconds = row.get(VIEW_SECONDS)  # the fast path's per-view times
    for view, ttl in layout.ttl_by_view.items():
        names = layout.features_by_view[view]
        # Every feature of a view carries its row's time; 0 when the view has no row.
        seconds = (view_seconds.get(view, 0) if view_seconds is not None
                   else row.get(f"{names[0]}__ts") or 0)
        if seconds == 0 and all(row.get(name) is None for name in names):
            (stale if view in nothing_fresh else missing).append(view)
        elif ttl is not None and now - seconds > ttl.total_seconds():
            stale.append(view)
    unusable = set(missing) | set(stale)
    for view, sources in layout.sources_by_on_demand_view.items():
        if unusable.intersection(sources):
            unusable.add(view)
    values: dict[str, Any] = {}
    defaults = layout.defaults
    for view, names in layout.features_by_view.items():
        if view in unusable:
            values.update((name, _fresh(defaults[name])) for name in names)
            continue
        for name in names:
            value = row.get(name)
            values[name] = value if value is not None else _fresh(defaults[name])
    return FeatureVector(values, missing=bool(missing), stale=bool(stale),
                         missing_views=tuple(missing), stale_views=tuple(stale))


def _fresh(default: Any) -> Any:
    """A copy of mutable defaults (lists), the default itself otherwise."""
    return list(default) if isinstance(default, (list, tuple)) else default


class OnlineFeatureReader:
    """Reads one feature service for serving; construct once per process and reuse.

    Args:
        settings: the Tailor settings (online store, home, project).
        service: homepage, cross_sell, churn or checkout.
        warm_up: run a few reads now so the first request pays no start-up cost.
        store: an already open `feast.FeatureStore` (default: opened for serving).
        fast_path: read Feast's Redis hashes or SQLite tables directly instead of through
            the SDK.
    """

    def __init__(self, settings: Settings, service: str, *, warm_up: bool = True,
                 store: Any | None = None, fast_path: bool = True) -> None:
        self.settings = settings
        self.service_name = service
        self._store = store
        self._want_fast_path = fast_path
        self._fetcher: Any | None = None
        self._layout: ServiceLayout | None = None
        self._load_error: str | None = None
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._nothing_fresh: frozenset[str] = frozenset()
        self._freshness_checked = -math.inf
        self._load()
        if warm_up:
            self.warm_up()

    def _load(self) -> None:
        """Open the store and resolve the service; remember the error instead of raising."""
        try:
            if self._store is None:
                from tailor.features.repo import open_feature_store

                self._store = open_feature_store(self.settings, serving=True)
            self._layout = resolve_layout(self._store, self.service_name, self.settings)
            self._fetcher = self._fast_fetcher() if self._want_fast_path else None
            self._load_error = None
        except Exception as error:  # serving must come up even before `tailor features`
            self._load_error = f"feature service {self.service_name!r} unavailable: " \
                               f"{type(error).__name__}: {error}"
            log.warning("online features: %s", self._load_error)

    def _fast_fetcher(self) -> Any | None:
        """The direct Redis or SQLite reader, or None for services it cannot compute."""
        store, layout = self._store, self._layout
        assert store is not None and layout is not None  # called by _load after both
        if store.config.online_store.type == "sqlite":
            return self._sqlite_fetcher()
        if store.config.online_store.type != "redis" or not self.settings.redis_url:
            return None
        import redis

        from tailor.features.redis_fetch import FastPathUnsupported, RedisFeatureFetcher
        from tailor.features.repo import serving_retry

        timeout = self.settings.features_online_timeout_ms / 1000
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=timeout,
                                      socket_connect_timeout=timeout, retry=serving_retry())
        try:
            return RedisFeatureFetcher(store, client, layout.join_key,
                                       layout.features_by_view,
                                       set(layout.sources_by_on_demand_view))
        except FastPathUnsupported as reason:
            log.info("online features (%s): Feast SDK path: %s", self.service_name, reason)
            return None

    def _sqlite_fetcher(self) -> Any | None:
        """The direct SQLite reader, or None for services it cannot compute."""
        from tailor.features.redis_fetch import FastPathUnsupported
        from tailor.features.sqlite_fetch import SqliteFeatureFetcher

        store, layout = self._store, self._layout
        assert store is not None and layout is not None  # called by _load after both
        try:
            return SqliteFeatureFetcher(store, layout.join_key, layout.features_by_view,
                                        set(layout.sources_by_on_demand_view),
                                        self.settings.features_online_timeout_ms / 1000)
        except FastPathUnsupported as reason:
            log.info("online features (%s): Feast SDK path: %s", self.service_name, reason)
            return None

    @property
    def fast_path(self) -> bool:
        """Whether reads go straight to Feast's Redis hashes or SQLite tables."""
        return self._fetcher is not None

    @property
    def join_key(self) -> str:
        """The entity key column the service is read by (customer_id or product_id)."""
        if self._layout is not None:
            return self._layout.join_key
        return catalogue.JOIN_KEYS[SERVICE_ENTITIES.get(self.service_name, catalogue.CUSTOMER)]

    @property
    def feature_names(self) -> list[str]:
        """The service's features, in service order."""
        if self._layout is None:
            return list(fallback_defaults(self.settings, self.service_name))
        return list(self._layout.defaults)

    def warm_up(self, reads: int = WARM_UP_READS) -> None:
        """Read an entity that does not exist a few times (loads caches and connections)."""
        for _ in range(reads):
            self.read(WARM_UP_ENTITY)

    def read(self, entity_id: str, request_time: datetime | None = None) -> FeatureVector:
        """The service's features for one entity at `request_time` (default now)."""
        return self.read_many([entity_id], request_time)[0]

    def read_many(self, entity_ids: Sequence[str],
                  request_time: datetime | None = None) -> list[FeatureVector]:
        """The service's features for several entities in one round trip; never raises."""
        moment = _as_utc(request_time)
        if self._layout is None:
            with self._lock:
                self._load()
        if self._layout is None:
            return [self._error_vector(self._load_error or "unavailable") for _ in entity_ids]
        if not entity_ids:
            return []
        if time.monotonic() < self._down_until:
            return [self._error_vector("online store unreachable (waiting before retrying)")
                    for _ in entity_ids]
        try:
            rows = self._fetch(entity_ids, moment)
        except Exception as error:  # the serving path answers with defaults instead
            self._down_until = time.monotonic() + RETRY_SECONDS
            message = f"online store read failed: {type(error).__name__}: {error}"
            log.warning("online features (%s): %s", self.service_name, message)
            return [self._error_vector(message) for _ in entity_ids]
        nothing_fresh = self._views_with_nothing_fresh()
        return [vector_from_row(self._layout, row, moment, nothing_fresh) for row in rows]

    def _views_with_nothing_fresh(self) -> frozenset[str]:
        """`read_stale_views`, re-read at most every FRESHNESS_CHECK_SECONDS."""
        if time.monotonic() - self._freshness_checked > FRESHNESS_CHECK_SECONDS:
            from tailor.features.freshness import read_stale_views

            self._nothing_fresh = read_stale_views(self.settings)
            self._freshness_checked = time.monotonic()
        return self._nothing_fresh

    def _fetch(self, entity_ids: Sequence[str], moment: datetime) -> list[dict[str, Any]]:
        """Rows of Feast's answer: feature values plus `<feature>__ts` seconds."""
        if self._fetcher is not None:
            return self._fetcher.fetch(entity_ids, moment)
        store, layout = self._store, self._layout
        assert store is not None and layout is not None  # read_many checked the layout
        entity_rows = [{layout.join_key: str(entity_id), "request_time": moment}
                       for entity_id in entity_ids]
        response = store.get_online_features(features=layout.service, entity_rows=entity_rows)
        columns = response.to_dict(include_event_timestamps=True)
        return [{name: values[index] for name, values in columns.items()}
                for index in range(len(entity_ids))]

    def _error_vector(self, message: str) -> FeatureVector:
        defaults = (self._layout.defaults if self._layout is not None
                    else fallback_defaults(self.settings, self.service_name))
        return FeatureVector({name: _fresh(value) for name, value in defaults.items()},
                             error=message)
