"""Forgotten customers taken out of the model versions a server holds in memory, at once.

Reads the home's tombstones (`tailor.events.tombstones.TombstoneSet`, the keyed hashes
`tailor forget` writes first); writes nothing on disk. `tailor forget` rewrites every stored
copy of a model (MLflow artifacts, the BentoML store), but a running server loaded its
versions before: their per-customer rows (ALS user factors, what the customer saw and
bought, the candidates found ahead for them) would stay in its memory until the next version.
This sweeper looks at the tombstones every `interval_seconds` (a stat of the file) and, when
they changed or a model version was loaded since its last look, hashes the customer ids of
each loaded version that holds customers and takes the forgotten ones out
(`tailor.models.customer_rows.forget_rows`, in its `shared` mode: requests read the model
meanwhile) along with their ranked-ahead lists (`PrecomputedLists.forget`).

Requests never wait for it: a forgotten customer is already refused personalisation by the
exclusion list from the moment the tombstone is written; the sweep removes the data itself.
Cost: one keyed hash per customer of each loaded homepage version per change (about 2 s of
one core for a million customers), in slices that let request threads run between them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable

from tailor.events.tombstones import TombstoneSet
from tailor.periodic import PeriodicThread

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 0.2
SLICE = 20_000  # ids hashed between two yields of the interpreter lock


class ForgottenRowSweeper(PeriodicThread):
    """Keeps forgotten customers out of the loaded models (`start`: every `interval_seconds`
    on a daemon thread).

    Args:
        tombstones: the home's tombstones, kept current.
        loaded: returns the `LoadedModel`s being served now (default slots and variants).
        interval_seconds: how often the tombstone file and the loaded versions are checked.
        on_removed: called with a model's name (`tailor-<model>` less the prefix) and the
            rows taken out of one of its versions (the pipeline counts them in Prometheus).
    """

    thread_name = "tailor-forgotten-rows"

    def __init__(self, tombstones: TombstoneSet, loaded: Callable[[], Iterable[Any]],
                 interval_seconds: float = INTERVAL_SECONDS,
                 on_removed: Callable[[str, int], None] | None = None) -> None:
        super().__init__()
        self.tombstones = tombstones
        self.loaded = loaded
        self.on_removed = on_removed
        self.interval_seconds = interval_seconds
        self.removed = 0  # customer rows taken out since start
        self.last_error: str | None = None
        # id(model) -> (the model, the tombstones it was swept against): the model is kept
        # so its id cannot be reused by a newer object while the entry lives.
        self._swept: dict[int, tuple[Any, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def tick(self) -> None:
        try:
            self.sweep()
        except Exception as error:  # keep sweeping later; requests are unaffected
            self.last_error = f"{type(error).__name__}: {error}"
            log.exception("serving: taking forgotten customers out of the models failed")

    def sweep(self) -> int:
        """One look: take the forgotten customers out of every loaded version not yet swept
        against the current tombstones. Returns how many customer rows were taken out."""
        with self._lock:
            stones = self.tombstones.current()
            models = [loaded for loaded in self.loaded() if _holds_customers(loaded)]
            live = {id(loaded.model) for loaded in models}
            self._swept = {key: entry for key, entry in self._swept.items() if key in live}
            removed = 0
            for loaded in models:
                entry = self._swept.get(id(loaded.model))
                if entry is not None and entry[1] == stones:
                    continue
                if stones:
                    removed += self._sweep_one(loaded)
                self._swept[id(loaded.model)] = (loaded.model, stones)
            self.removed += removed
            self.last_error = None
            return removed

    def _sweep_one(self, loaded: Any) -> int:
        from tailor.models.customer_rows import forget_rows

        ids = [str(value) for value in loaded.model.customers.ids]
        forgotten: list[str] = []
        for start in range(0, len(ids), SLICE):
            chunk = ids[start:start + SLICE]
            forgotten += [value for value, gone
                          in zip(chunk, self.tombstones.forgotten_mask(chunk)) if gone and value]
            if start + SLICE < len(ids):
                time.sleep(0)  # let request threads take the interpreter
        if not forgotten:
            return 0
        rows = forget_rows(loaded.model, forgotten, shared=True)
        lists = getattr(loaded.prepared, "precomputed", None)
        if lists is not None:
            lists.forget(rows)
        log.info("serving: %d forgotten customer(s) taken out of %s v%s in memory", len(rows),
                 loaded.tag or "a model", loaded.version)
        if self.on_removed is not None and rows:
            self.on_removed(_model_name(loaded), len(rows))
        return len(rows)

    def status(self) -> dict[str, Any]:
        return {"removed": self.removed, "last_error": self.last_error}


def _model_name(loaded: Any) -> str:
    """`homepage` from the tag `tailor-homepage:v3` (the model's name in metrics)."""
    tag = str(loaded.tag or "")
    return tag.split(":", 1)[0].removeprefix("tailor-") or "unknown"


def _holds_customers(loaded: Any) -> bool:
    customers = getattr(getattr(loaded, "model", None), "customers", None)
    return customers is not None and hasattr(customers, "positions")
