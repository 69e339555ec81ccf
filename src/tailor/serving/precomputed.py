"""Homepage lists ranked ahead, per model version: each active customer's best products.

Reads and writes nothing (built in memory from a `HomepageRanker`, in a background thread
when a version is loaded). Gorse-style: the most active customers' lists (their best
`PRECOMPUTED_LENGTH` products, each with its score and reason, the model's business filters
and its own diversity rule applied) are ranked once per version, so a request without a
browsed category or an experiment's diversity rule takes the first k of its customer's list
instead of scoring the whole catalogue. Each list is computed by the same call a request
makes (one customer at a time, so the floating-point sums are the request's own): the
answers are the same products, order, scores and reasons (`tests/integration/serving/
test_precomputed_lists.py`). Customers outside the lists, browsing visitors and diversity
variants are ranked at request time as before.

Memory: 16 bytes per product per customer (50,000 customers: 40 MB per loaded version).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from tailor.serving.schemas import RecommendedItem

log = logging.getLogger(__name__)

PRECOMPUTED_LENGTH = 50  # products kept per customer: requests with k up to this use them
NOT_PRECOMPUTED = -1


class PrecomputedLists:
    """The lists of the `count` most active customers of one model version, filled by a
    background thread (`start`); a customer whose list is not there yet is ranked at request
    time.

    Args:
        model: the fitted `HomepageModel` (its customers' interaction counts pick who).
        count: how many customers (the most active first; customers without any
            interaction are never chosen: theirs is the stranger's list).
        rank_one: ranks one customer row's list of a given length (the ranker's own
            request path), returning its `RecommendedItem`s.
    """

    def __init__(self, model: Any, count: int,
                 rank_one: Callable[[int, int], list[RecommendedItem]]) -> None:
        counts = np.asarray(model.interaction_counts)
        active = np.flatnonzero(counts > 0)
        order = active[np.argsort(-counts[active], kind="stable")][:count]
        self.rows = order
        self._rank_one = rank_one
        self._slot = np.full(len(counts), NOT_PRECOMPUTED, dtype=np.int64)
        self._products = np.zeros((len(order), PRECOMPUTED_LENGTH), dtype=np.int32)
        self._scores = np.zeros((len(order), PRECOMPUTED_LENGTH), dtype=np.float64)
        self._reasons = np.zeros((len(order), PRECOMPUTED_LENGTH), dtype=np.int32)
        self._lengths = np.zeros(len(order), dtype=np.int32)
        self._reason_texts: list[str] = []
        self._reason_ids: dict[str, int] = {}
        self._product_ids: list[str] = [str(product) for product in model.products.ids]
        self._product_index = {product: index for index, product in enumerate(self._product_ids)}
        self._forgotten: set[int] = set()  # rows a forget took out: never published again
        self._publish = threading.Lock()  # between the filling thread and `forget`
        self._stop = threading.Event()
        self.done = threading.Event()
        self.seconds: float | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        """How many customers' lists are ready."""
        return int(np.count_nonzero(self._slot != NOT_PRECOMPUTED))

    def start(self) -> PrecomputedLists:
        """Rank the lists on a daemon thread (requests are answered meanwhile)."""
        self._thread = threading.Thread(target=self._fill, name="tailor-precomputed-lists",
                                        daemon=True)
        self._thread.start()
        return self

    def fill(self) -> PrecomputedLists:
        """Rank the lists in the calling thread."""
        self._fill()
        return self

    def stop(self) -> None:
        """Stop filling (a newer version took over); the lists ready so far stay usable."""
        self._stop.set()

    def _fill(self) -> None:
        started = time.perf_counter()
        try:
            for position, row in enumerate(self.rows.tolist()):
                if self._stop.is_set():
                    break
                self._store(position, row, self._rank_one(row, PRECOMPUTED_LENGTH))
        except Exception as error:  # the request path stays: every answer is still right
            self.error = f"{type(error).__name__}: {error}"
            log.exception("precomputed homepage lists stopped after %d customers", len(self))
        self.seconds = time.perf_counter() - started
        self.done.set()
        log.info("precomputed homepage lists: %d customers in %.1f s", len(self), self.seconds)

    def _store(self, position: int, row: int, items: list[RecommendedItem]) -> None:
        """Write one customer's list, then publish it (a reader sees all of it or none)."""
        length = len(items)
        self._products[position, :length] = [self._product_index[item.product_id]
                                             for item in items]
        self._scores[position, :length] = [item.score for item in items]
        self._reasons[position, :length] = [self._reason_id(item.reason) for item in items]
        self._lengths[position] = length
        with self._publish:
            if row not in self._forgotten:
                self._slot[row] = position

    def forget(self, rows: list[int]) -> int:
        """Drop the lists of some customer rows (forgotten customers), now and for good: the
        filling thread does not publish them later. Returns how many lists were dropped."""
        dropped = 0
        with self._publish:
            for row in rows:
                if not 0 <= row < len(self._slot):
                    continue
                self._forgotten.add(row)
                position = int(self._slot[row])
                if position == NOT_PRECOMPUTED:
                    continue
                self._slot[row] = NOT_PRECOMPUTED
                self._products[position] = 0
                self._scores[position] = 0.0
                self._reasons[position] = 0
                self._lengths[position] = 0
                dropped += 1
        return dropped

    def _reason_id(self, reason: str) -> int:
        found = self._reason_ids.get(reason)
        if found is None:
            found = self._reason_ids[reason] = len(self._reason_texts)
            self._reason_texts.append(reason)
        return found

    def items(self, row: int, k: int) -> list[RecommendedItem] | None:
        """The first k products of the customer row's list; None when it has no list or
        its list is cut shorter than k (it has more eligible products than were kept)."""
        position = int(self._slot[row]) if row >= 0 else NOT_PRECOMPUTED
        if position == NOT_PRECOMPUTED:
            return None
        length = int(self._lengths[position])
        if k > length and length == PRECOMPUTED_LENGTH:
            return None
        count = min(k, length)
        products, texts = self._product_ids, self._reason_texts
        return [RecommendedItem(product_id=products[product], score=score, reason=texts[reason])
                for product, score, reason in zip(self._products[position, :count].tolist(),
                                                  self._scores[position, :count].tolist(),
                                                  self._reasons[position, :count].tolist())]

    def status(self) -> dict[str, Any]:
        """Customers ready of those chosen, the time it took, the error that stopped it."""
        return {"customers": len(self), "of": len(self.rows), "done": self.done.is_set(),
                "seconds": None if self.seconds is None else round(self.seconds, 1),
                "error": self.error}
