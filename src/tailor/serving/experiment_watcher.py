"""The experiments a serving process assigns, re-read in the background without a restart.

Reads (never creates) the `experiment_state` table of the event store
(`tailor.experiments.state`: the running experiments with their slices and definitions as
started, the promoted ones with their winners) every `experiments.refresh_seconds`, and the
MLflow registry for the model versions the running variants serve (one extra `ModelSlot` per
alias or version a variant names that the default slot does not serve; loaded before the
experiment is served, and followed every `serving.reload_seconds` like the default slots).
Writes logs only.

`assign(surface, unit_id)` is what a request pays: one attribute read and the `Assigner`'s
few microseconds (`tailor.experiments.assignment`). A refresh builds a new `Assigner` and
swaps it in whole; a read that fails keeps the last good one serving and is logged once a
minute. An experiment whose variant's model is not loaded (yet) is not served: its units
get the defaults and are logged with no experiment, and `status()` says why, until the
version loads.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping

from tailor.config import Settings
from tailor.experiments.assignment import Assigner, Assignment
from tailor.experiments.definition import SURFACE_MODELS
from tailor.experiments.state import (
    PROMOTED, RUNNING, ExperimentRecord, ExperimentStore, assigner_from,
)
from tailor.serving.model_slots import ModelSlot
from tailor.throttled_log import ThrottledLog, error_key

log = logging.getLogger(__name__)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


class ExperimentWatcher:
    """The current `Assigner` and the model slots of the running variants.

    Args:
        settings: where the state table and the registry are; the refresh intervals.
        slots: the pipeline's default slots, by model.
        new_slot: builds a slot for (model, reference) (prepared like the default one).
    """

    def __init__(self, settings: Settings, slots: Mapping[str, ModelSlot],
                 new_slot: Callable[[str, str], ModelSlot]) -> None:
        self.settings = settings
        self.default_slots = slots
        self.new_slot = new_slot
        self.interval_seconds = settings.experiments_refresh_seconds
        self.assigner = Assigner(holdout_share=settings.experiments_holdout_share)
        self.variant_slots: dict[tuple[str, str], ModelSlot] = {}
        self.not_served: dict[str, str] = {}  # running experiments not served, and why
        self.last_error: str | None = None
        self.refreshed_at: float | None = None
        self._records: tuple[ExperimentRecord, ...] | None = None
        self._slots_refreshed_at = 0.0
        self._store: ExperimentStore | None = None
        self._errors = ThrottledLog(log)
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request side ------------------------------------------------------------------

    def assign(self, surface: str, unit_id: str | None) -> Assignment | None:
        """The unit's assignment on `surface` (None: the defaults)."""
        return self.assigner.assign(surface, unit_id)

    def slot(self, model: str, reference: str | None) -> ModelSlot:
        """The slot serving `model` at `reference` (the default slot when it serves that
        reference, or when no variant slot holds it)."""
        default = self.default_slots[model]
        if reference is None or reference == default.reference:
            return default
        return self.variant_slots.get((model, reference), default)

    # -- refreshing ------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the state table; rebuild the assignment when it changed (or a variant's
        model became ready). Never raises.

        Returns:
            True when a new `Assigner` took over.
        """
        with self._refresh_lock:
            try:
                records = tuple(self._opened().records((RUNNING, PROMOTED)))
            except Exception as error:
                self._failed("reading experiment_state", error)
                return False
            self.last_error = None
            self.refreshed_at = time.time()
            slots_due = time.monotonic() - self._slots_refreshed_at \
                >= self.settings.serving_reload_seconds
            if records == self._records and not self.not_served and not slots_due:
                return False
            try:
                return self._rebuild(records, slots_due)
            except Exception as error:  # a bug or a bad row: keep serving the last good one
                self._failed("building the assignment", error)
                return False

    def _rebuild(self, records: tuple[ExperimentRecord, ...], slots_due: bool) -> bool:
        usable, not_served = [], {}
        slots: dict[tuple[str, str], ModelSlot] = {}
        for record in records:
            try:
                definition = record.definition()
            except Exception as error:  # a row another version wrote: skip it, say so
                not_served[record.name] = f"its stored definition does not load: " \
                                          f"{_describe(error)}"
                continue
            problem = None
            if record.status == RUNNING:
                problem = self._ready_models(definition, slots, slots_due)
            if problem is None:
                usable.append(record)
            else:
                not_served[record.name] = problem
        assigner = assigner_from(usable, self.settings.experiments_holdout_share)
        if slots_due:
            self._slots_refreshed_at = time.monotonic()
        changed = records != self._records or set(not_served) != set(self.not_served)
        # New slots first (requests of the old assigner find theirs too), then the
        # assigner, then drop the slots no running variant needs.
        self.variant_slots = {**self.variant_slots, **slots}
        self.assigner = assigner
        self.variant_slots = slots
        for name, problem in not_served.items():
            if self.not_served.get(name) != problem:
                log.warning("experiment %s: not served: %s", name, problem)
        self.not_served = not_served
        self._records = records
        if changed:
            log.info("experiments: serving %s", ", ".join(assigner.running) or "none")
        return changed

    def _ready_models(self, definition: Any, slots: dict[tuple[str, str], ModelSlot],
                      refresh: bool) -> str | None:
        """Load (or keep) a slot per model reference the variants name; why one is not
        ready, or None."""
        model = SURFACE_MODELS.get(definition.surface)
        for variant in definition.variants:
            reference = variant.changes.model
            if reference is None or model is None:
                continue
            slot = self.default_slots[model]
            if reference != slot.reference:
                key = (model, reference)
                known = slots.get(key) or self.variant_slots.get(key)
                if known is None:
                    known = self.new_slot(model, reference)
                    refresh = True
                slot = slots[key] = known
                if refresh or slot.current is None:
                    slot.refresh()
            if slot.current is None:
                return f"variant {variant.name}: {slot.unavailable_reason()}"
        return None

    def _opened(self) -> ExperimentStore:
        if self._store is None:
            self._store = ExperimentStore(self.settings.event_store_url, read_only=True)
        return self._store

    def _failed(self, what: str, error: BaseException) -> None:
        self.last_error = f"{what}: {_describe(error)}"
        self._errors.log(logging.WARNING, what + error_key(error),
                         "experiments: %s; the last assignment keeps serving", self.last_error,
                         exc_info=error)
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # a broken connection may fail to close; it is dropped anyway
                log.debug("experiments: closing the state store failed", exc_info=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "ExperimentWatcher":
        """Refresh every `experiments.refresh_seconds` on a daemon thread (once); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tailor-experiments",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.refresh()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and release the state store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def status(self) -> dict[str, Any]:
        """What is served, what is not and why, the last error (for /status)."""
        return {"serving": list(self.assigner.running), "not_served": dict(self.not_served),
                "surfaces": self.assigner.surfaces(),
                "holdout_share": self.assigner.holdout_share,
                "variant_models": {f"tailor-{model}@{reference}":
                                   slot.current.version if slot.current else None
                                   for (model, reference), slot in self.variant_slots.items()},
                "last_error": self.last_error, "refreshed_at": self.refreshed_at}
