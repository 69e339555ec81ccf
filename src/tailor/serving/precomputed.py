"""Homepage candidates found ahead, per model version: each active customer's best products.

Reads and writes nothing (built in memory from a `HomepageModel`, in a background thread
when a version is loaded). Gorse-style: every active customer's best `CANDIDATES` products
(the model's business filters applied) are found once per version, many customers per
matrix product (`HomepageModel.candidate_block`), so a request without a browsed category or
an experiment's diversity rule scores those few products instead of the whole catalogue,
orders them and applies the model's own diversity rule (`HomepageRanker._ranked_ahead`).

The same answers as ranking the whole catalogue at request time, up to floating-point
rounding: the candidates are scored exactly as a request scores them, except that a
collaborative customer's lowest and highest ALS score (the blend's scale) and the ALS part
come from products of a different number of rows, whose float32 sums may differ in the last
bit (scores within about 1e-7). Each customer's row keeps a bound that no product left out
of it reaches, rounding included (`Candidates.bound`); a request whose list would reach
below it goes through the model, so a product outside the candidates never goes missing.
Only products whose scores differ by less than the rounding can come out in another order
(`tests/integration/serving/test_precomputed_lists.py`, `bench/bench_homepage_ranking.py`).

The most active `listed` customers (`serving.precomputed_lists`) also keep their finished list
of `LIST_LENGTH`, made from their candidates right after them as a request makes it (the
old Gorse-style cache of answers): a request of theirs for up to that many is a lookup.

Memory: 4 bytes per candidate and 20 per customer (1M customers: 148 MB per loaded version),
and 16 bytes per product of a finished list (100,000 lists: 32 MB).
Time: one pass over the catalogue per customer, in blocks (1M customers x 100k products:
see docs/benchmarks.md); until a customer's row is ready, its requests are ranked through
the model as before.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from tailor.serving.schemas import RecommendedItem

log = logging.getLogger(__name__)

CANDIDATES = 32  # products kept per customer
LIST_LENGTH = 20  # products of a finished list (requests with k up to this use it)
BLOCK = 64  # customers per matrix product while filling
NOT_PRECOMPUTED = -1


class PrecomputedLists:
    """The candidates of the `count` most active customers of one model version, filled by a
    background thread (`start`); a customer whose row is not there yet is ranked at request
    time.

    Args:
        model: the fitted `HomepageModel` (its customers' interaction counts pick who).
        count: how many customers (the most active first; customers without any
            interaction are never chosen: theirs is the stranger's list).
        length: candidates per customer.
        progress: told how many customers were added to the fill (positive, when it starts)
            and how many are done with (negative, per block and for the rest when it ends).
        finish: makes a customer row's list of k from its candidates as a request would
            (`HomepageRanker._from_candidates`), None when they do not suffice.
        listed: how many of the most active customers also keep their finished list of
            `LIST_LENGTH` (made by `finish` right after their candidates).
    """

    def __init__(self, model: Any, count: int, length: int = CANDIDATES,
                 progress: Callable[[int], None] | None = None,
                 finish: Callable[[int, int], list[RecommendedItem] | None] | None = None,
                 listed: int = 0) -> None:
        counts = np.asarray(model.interaction_counts)
        active = np.flatnonzero(counts > 0)
        self.rows = active[np.argsort(-counts[active], kind="stable")][:count]
        self.length = length
        self._model = model
        self._progress = progress or (lambda change: None)
        self._slot = np.full(len(counts), NOT_PRECOMPUTED, dtype=np.int32)
        self._items = np.full((len(self.rows), length), -1, dtype=np.int32)
        self._low = np.zeros(len(self.rows), dtype=np.float32)
        self._high = np.zeros(len(self.rows), dtype=np.float32)
        self._bound = np.full(len(self.rows), -np.inf)
        self._finish = finish
        self._listed = min(listed, len(self.rows)) if finish is not None else 0
        self._list_slot = np.full(len(counts), NOT_PRECOMPUTED, dtype=np.int32)
        self._list_products = np.zeros((self._listed, LIST_LENGTH), dtype=np.int32)
        self._list_scores = np.zeros((self._listed, LIST_LENGTH), dtype=np.float64)
        self._list_reasons = np.zeros((self._listed, LIST_LENGTH), dtype=np.int32)
        self._list_lengths = np.zeros(self._listed, dtype=np.int32)
        self._reason_texts: list[str] = []
        self._reason_ids: dict[str, int] = {}
        self._product_ids = [str(product) for product in model.products.ids] \
            if self._listed else []
        self._product_index = {product: index for index, product in
                               enumerate(self._product_ids)}
        self._forgotten: set[int] = set()  # rows a forget took out: never published again
        self._publish = threading.Lock()  # between the filling thread and `forget`
        self._stop = threading.Event()
        self.done = threading.Event()
        self.seconds: float | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        """How many customers' candidates are ready."""
        return int(np.count_nonzero(self._slot != NOT_PRECOMPUTED))

    def start(self) -> PrecomputedLists:
        """Fill the rows on a daemon thread (requests are answered meanwhile)."""
        self._progress(len(self.rows))  # pending from now, before the thread runs
        self._thread = threading.Thread(target=self._fill, name="tailor-precomputed-lists",
                                        daemon=True)
        self._thread.start()
        return self

    def fill(self) -> PrecomputedLists:
        """Fill the rows in the calling thread."""
        self._progress(len(self.rows))
        self._fill()
        return self

    def stop(self) -> None:
        """Stop filling (a newer version took over); the rows ready so far stay usable."""
        self._stop.set()

    def _fill(self) -> None:
        started = time.perf_counter()
        done = 0
        try:
            work = np.empty((min(BLOCK, len(self.rows)), len(self._model.products)),
                            dtype=np.float32)
            for start in range(0, len(self.rows), BLOCK):
                if self._stop.is_set():
                    break
                rows = self.rows[start:start + BLOCK]
                self._store(start, rows, self._model.candidate_block(rows, self.length, work))
                done += len(rows)
                self._progress(-len(rows))
                time.sleep(0)  # let request threads take the interpreter between blocks
        except Exception as error:  # the request path stays: every answer is still right
            self.error = f"{type(error).__name__}: {error}"
            log.exception("homepage candidates stopped after %d customers", len(self))
        finally:
            self._progress(done - len(self.rows))  # the rest: stopped, failed or none
        self.seconds = time.perf_counter() - started
        self.done.set()
        log.info("homepage candidates: %d customers in %.1f s", len(self), self.seconds)

    def _store(self, start: int, rows: np.ndarray, found: Any) -> None:
        """Write one block's rows, then publish them (a reader sees a whole row or none)."""
        end = start + len(rows)
        self._items[start:end] = found.items
        self._low[start:end] = found.low
        self._high[start:end] = found.high
        self._bound[start:end] = found.bound
        with self._publish:
            for position, row in enumerate(rows.tolist(), start):
                if row not in self._forgotten:
                    self._slot[row] = position
        for position, row in enumerate(rows.tolist()[:max(self._listed - start, 0)], start):
            items = self._finish(row, LIST_LENGTH)
            if items is not None:
                self._store_list(position, row, items)

    def _store_list(self, position: int, row: int, items: list[RecommendedItem]) -> None:
        """Write one customer's finished list, then publish it."""
        length = len(items)
        self._list_products[position, :length] = [self._product_index[item.product_id]
                                                  for item in items]
        self._list_scores[position, :length] = [item.score for item in items]
        self._list_reasons[position, :length] = [self._reason_id(item.reason)
                                                 for item in items]
        self._list_lengths[position] = length
        with self._publish:
            if row not in self._forgotten:
                self._list_slot[row] = position

    def _reason_id(self, reason: str) -> int:
        found = self._reason_ids.get(reason)
        if found is None:
            found = self._reason_ids[reason] = len(self._reason_texts)
            self._reason_texts.append(reason)
        return found

    def listed_items(self, row: int, k: int) -> list[RecommendedItem] | None:
        """The first k products of the customer's finished list; None when it has none or
        its list is cut shorter than k (it has more eligible products than were kept)."""
        position = int(self._list_slot[row]) if row >= 0 else NOT_PRECOMPUTED
        if position == NOT_PRECOMPUTED:
            return None
        length = int(self._list_lengths[position])
        if k > length and length == LIST_LENGTH:
            return None
        count = min(k, length)
        products, texts = self._product_ids, self._reason_texts
        return [RecommendedItem(product_id=products[product], score=score, reason=texts[reason])
                for product, score, reason in zip(
                    self._list_products[position, :count].tolist(),
                    self._list_scores[position, :count].tolist(),
                    self._list_reasons[position, :count].tolist())]

    def forget(self, rows: list[int]) -> int:
        """Drop the rows of some customers (forgotten customers), now and for good: the
        filling thread does not publish them later. Returns how many rows were dropped."""
        dropped = 0
        with self._publish:
            for row in rows:
                if not 0 <= row < len(self._slot):
                    continue
                self._forgotten.add(row)
                listed = int(self._list_slot[row])
                if listed != NOT_PRECOMPUTED:
                    self._list_slot[row] = NOT_PRECOMPUTED
                    self._list_products[listed] = 0
                    self._list_scores[listed] = 0.0
                    self._list_reasons[listed] = 0
                    self._list_lengths[listed] = 0
                position = int(self._slot[row])
                if position == NOT_PRECOMPUTED:
                    continue
                self._slot[row] = NOT_PRECOMPUTED
                self._items[position] = -1
                self._low[position] = self._high[position] = 0.0
                self._bound[position] = -np.inf
                dropped += 1
        return dropped

    def candidates(self, row: int) -> tuple[np.ndarray, float, float, float] | None:
        """A customer row's candidates (product indexes, best first), its lowest and highest
        ALS score and its bound (see `Candidates`); None when its row is not ready."""
        position = int(self._slot[row]) if row >= 0 else NOT_PRECOMPUTED
        if position == NOT_PRECOMPUTED:
            return None
        items = self._items[position]
        return (items[items >= 0], float(self._low[position]), float(self._high[position]),
                float(self._bound[position]))

    def memory_bytes(self) -> int:
        """What the rows hold in memory."""
        arrays = (self._slot, self._items, self._low, self._high, self._bound,
                  self._list_slot, self._list_products, self._list_scores, self._list_reasons,
                  self._list_lengths)
        return int(sum(array.nbytes for array in arrays))

    def status(self) -> dict[str, Any]:
        """Customers ready of those chosen, the time it took, the error that stopped it."""
        return {"customers": len(self), "of": len(self.rows), "done": self.done.is_set(),
                "lists": int(np.count_nonzero(self._list_slot != NOT_PRECOMPUTED)),
                "seconds": None if self.seconds is None else round(self.seconds, 1),
                "error": self.error}
