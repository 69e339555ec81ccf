"""Models for serving, from the MLflow registry through the BentoML model store, switched
without dropping a request.

Reads the MLflow registry at `settings.tracking_uri` (`tailor.registry.tracking`): which
version an alias (`champion`, `challenger`, an experiment's) or a version number names.
That version is imported once into the BentoML model store under the Tailor home as
`tailor-<model>:v<version>` (`tailor.serving.model_store`) and loaded from there, unwrapped
to the fitted object from `tailor.models`. Writes the store, metrics and logs.

A `ModelSlot` holds the model currently serving for one name and reference. `refresh`
resolves the reference; when the version moved, it loads the new version in the calling
thread (requests keep using the old one meanwhile), prepares it (the pipeline's lookups),
then swaps one attribute, so each request sees either the old or the new model whole. A
version that fails to load leaves the old one serving, is recorded in `last_error` and the
`tailor_model_load_failures_total` metric, and is tried again at the next refresh.
While nothing serves and the registry is missing or unreachable, the slot serves the
newest matching version in the BentoML store (a built Bento's models, or what an earlier
start imported), with `last_error` saying so, and switches to the registry's version once
it answers. `ModelWatcher` calls `refresh` on every slot from a daemon thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from tailor.config import Settings
from tailor.periodic import PeriodicThread
from tailor.serving.metrics import ServingMetrics
from tailor.serving.model_store import StoredVersion, TailorModelStore
from tailor.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

REGISTERED_PREFIX = "tailor-"  # models are registered as tailor-<model> (tailor.training)
# MLflow's error codes when the registry answers that a model, version or alias is not there
# (any other error means it could not answer).
NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version.

    Attributes:
        model: the fitted object (`HomepageModel`, `CrossSellModel`, `CheckoutModel`, ...).
        version: its registry version.
        reference: the alias or version number it was resolved from.
        loaded_at: when it finished loading (UTC).
        prepared: what the slot's `prepare` built from it (serving lookups), else None.
        tag: its BentoML model store tag (`tailor-<model>:v<version>`).
        source: "registry", or "bentoml store" when the registry could not be read.
    """

    model: Any
    version: str
    reference: str
    loaded_at: datetime
    prepared: Any = None
    tag: str | None = None
    source: str = "registry"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class ModelSlot:
    """The version of one model that serves now, by alias or version number.

    Args:
        settings: where the registry is.
        model: homepage, cross_sell, churn or checkout.
        reference: an alias (champion, challenger, ...) or a version number ("3").
        metrics: where load failures and the serving version are recorded.
        prepare: called with each newly loaded model before the swap; its result is
            `LoadedModel.prepared`. An exception fails the load like a broken artifact.
    """

    def __init__(self, settings: Settings, model: str, reference: str = "champion", *,
                 metrics: ServingMetrics | None = None,
                 prepare: Callable[[Any], Any] | None = None) -> None:
        self.settings = settings
        self.model = model
        self.reference = reference
        self.registered_name = REGISTERED_PREFIX + model
        self.metrics = metrics
        self.prepare = prepare
        self.store = TailorModelStore(settings)
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        # Why a model that exists (or a registry that could not be read) gave nothing to
        # serve; None when the slot serves, or when there is simply no model yet.
        self.load_failure: str | None = None
        self._registry_missing = False
        self._log = ThrottledLog(log)
        self._lock = threading.Lock()  # one refresh at a time; reads never wait for it

    def refresh(self) -> bool:
        """Resolve the reference and load its version if it changed.

        Returns:
            True when a new version took over.
        """
        with self._lock:
            try:
                found = self._resolve()
            except Exception as error:  # the registry is down: keep serving what we have
                self._failed(f"registry lookup failed: {_describe(error)}", count=False)
                return self._from_store()
            if found is None:  # no registry or no such version: nothing failed
                self.load_failure = None
                return self._from_store() if self._registry_missing else False
            version, run_id = found
            current = self.current
            if current is not None and current.version == version \
                    and current.source == "registry":  # (a store copy is replaced once)
                self.last_error = None
                return False
            try:
                loaded = self._load(version, run_id)
            except Exception as error:
                return self._failed(f"version {version} failed to load: {_describe(error)}",
                                    count=True)
            self._swap(loaded)
            return True

    def _from_store(self) -> bool:
        """With nothing serving and no registry: the BentoML store's newest match, if any
        (last_error keeps the registry's problem and says what serves instead)."""
        problem = self.last_error
        if self.current is not None:
            if self.current.source != "registry":
                self.last_error = f"{problem}; {self._store_note(self.current.tag)}"
            return False
        try:
            stored = self.store.newest(self.registered_name, self.reference)
            if stored is None:
                return False
            loaded = self._prepared(self.store.load(stored), stored, "bentoml store")
        except Exception as error:
            return self._failed(f"{problem}; the BentoML model store failed too: "
                                f"{_describe(error)}", count=True)
        self._swap(loaded)
        self.last_error = f"{problem}; {self._store_note(stored.tag)} at {stored.store}"
        log.warning("%s@%s: %s", self.registered_name, self.reference, self.last_error)
        return True

    @staticmethod
    def _store_note(tag: str | None) -> str:
        return f"serving {tag} from the BentoML model store"

    def _swap(self, loaded: LoadedModel) -> None:
        """Serve `loaded` from now on (one attribute: a request sees one model whole); the
        replaced version's background work (`close` of what `prepare` built) stops."""
        replaced = self.current
        previous = replaced.version if replaced is not None else None
        self.current = loaded
        close = getattr(replaced.prepared, "close", None) if replaced is not None else None
        if callable(close):
            close()
        self.last_error = self.load_failure = None
        if self.metrics is not None:
            self.metrics.model_version(self.model, loaded.version)
        log.info("%s: serving v%s (%s)%s", self.registered_name, loaded.version, self.reference,
                 f", was v{previous}" if previous else "")

    def _failed(self, message: str, count: bool) -> bool:
        self.last_error = self.load_failure = message
        if count and self.metrics is not None:
            self.metrics.load_failure(self.model)
        serving = f"; v{self.current.version} keeps serving" if self.current else ""
        # Once a minute per distinct message: the watcher retries every few seconds.
        self._log.log(logging.WARNING, message + serving, "%s@%s: %s%s", self.registered_name,
                      self.reference, message, serving)
        return False

    def _resolve(self) -> tuple[str, str | None] | None:
        """The version the reference names now and its run id; None (with last_error) when
        there is none (`_registry_missing` says whether the registry itself is missing)."""
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from tailor.registry.tracking import tracking_store_exists, use_tracking

        self._registry_missing = not tracking_store_exists(self.settings)
        if self._registry_missing:
            self.last_error = f"no model registry yet at {self.settings.tracking_uri}: " \
                              "run `tailor train` first"
            return None
        uri = use_tracking(self.settings)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            if self.reference.isdigit():
                found = client.get_model_version(self.registered_name, self.reference)
            else:
                found = client.get_model_version_by_alias(self.registered_name, self.reference)
        except MlflowException as error:
            if error.error_code not in NOT_FOUND:  # e.g. the registry server does not answer
                raise
            self.last_error = f"{self.registered_name}@{self.reference} not found " \
                              f"({error.error_code}): run `tailor train {self.model}`"
            return None
        return str(found.version), found.run_id

    def _load(self, version: str, run_id: str | None) -> LoadedModel:
        """Import one version into the BentoML store (once) and load and prepare it from
        there (by number: the alias may move meanwhile)."""
        from tailor.registry.tracking import use_tracking

        use_tracking(self.settings)
        alias = None if self.reference.isdigit() else self.reference
        stored, imported = self.store.ensure(self.registered_name, version, run_id=run_id,
                                             alias=alias)
        if imported:
            log.info("%s: imported v%s into the BentoML model store as %s",
                     self.registered_name, version, stored.tag)
        return self._prepared(self.store.load(stored), stored, "registry")

    def _prepared(self, model: Any, stored: StoredVersion, source: str) -> LoadedModel:
        prepared = self.prepare(model) if self.prepare is not None else None
        return LoadedModel(model, stored.version, self.reference, datetime.now(timezone.utc),
                           prepared, stored.tag, source)

    def broken(self) -> str | None:
        """Why this slot serves nothing although there is something to serve (a version
        that failed to load, a registry that could not be read), else None. A shop without
        models yet is not broken: its answers are fallbacks by design."""
        return self.load_failure if self.current is None else None

    def unavailable_reason(self) -> str:
        """Why nothing is served (for a fallback answer): the last load error, if any."""
        return f"no {self.model} model loaded: {self.last_error or 'not trained yet'}"

    def status(self) -> dict[str, Any]:
        """What the slot serves and its last error, for /status and logs."""
        current = self.current
        return {"model": self.model, "registered_name": self.registered_name,
                "reference": self.reference,
                "version": current.version if current else None,
                "loaded_at": current.loaded_at.isoformat() if current else None,
                "tag": current.tag if current else None,
                "source": current.source if current else None,
                "last_error": self.last_error}


class ModelWatcher(PeriodicThread):
    """Refreshes slots every `interval_seconds` on a daemon thread (a load in progress
    finishes before `stop` returns, up to its timeout).

    Args:
        slots: the slots to refresh, by name.
        interval_seconds: time between two rounds.
        on_switch: called with a slot's name after it switched version (from the thread).
    """

    thread_name = "tailor-model-watcher"

    def __init__(self, slots: Mapping[str, ModelSlot], interval_seconds: float,
                 on_switch: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.slots = slots
        self.interval_seconds = interval_seconds
        self.on_switch = on_switch

    def refresh_all(self) -> list[str]:
        """One round: refresh every slot; returns the names that switched."""
        switched = []
        for name, slot in self.slots.items():
            try:
                if slot.refresh():
                    switched.append(name)
                    if self.on_switch is not None:
                        self.on_switch(name)
            except Exception:  # refresh records its own errors; this guards the thread
                log.exception("model watcher: refreshing %s failed", name)
        return switched

    def tick(self) -> None:
        self.refresh_all()
