"""Corrupt a share of event rows the way real feeds break, and count exactly what was done.

Each corrupted row carries exactly one fault, in a row that was good; the counts per
fault use the rejection reasons of `tailor.events.schema`, so a quality gate can be
checked against them. Works on coded `EventColumns` chunks; writes nothing.
"""

from __future__ import annotations

import numpy as np

from tailor.events.schema import (
    DUPLICATE_EVENT_ID,
    EVENT_TYPES,
    FUTURE_TIMESTAMP,
    MALFORMED_ROW,
    MISSING_CUSTOMER_ID,
    NONPOSITIVE_PRICE,
    UNKNOWN_PRODUCT,
)
from tailor.simulate.events import PRODUCT_EVENT_CODES, UNKNOWN_PRODUCT_SLOTS, EventColumns

FAULT_KINDS: tuple[str, ...] = (
    MISSING_CUSTOMER_ID, DUPLICATE_EVENT_ID, NONPOSITIVE_PRICE, FUTURE_TIMESTAMP, UNKNOWN_PRODUCT,
    MALFORMED_ROW,
)
PRODUCT_FAULTS = (NONPOSITIVE_PRICE, UNKNOWN_PRODUCT)  # need a row that names a product
FUTURE_YEARS_US = 3653 * 86_400_000_000  # ten years: in the future whenever the data is read
YEAR_US = 365 * 86_400_000_000


class FaultInjector:
    """Spreads `rate` of all rows over the fault kinds, chunk by chunk, and keeps the tally.

    Fractions owed are carried from chunk to chunk so the totals match the rate; the last
    chunk makes sure every kind occurs at least once when the rate is above 0.
    """

    def __init__(self, rate: float, n_products: int, window_end_us: int) -> None:
        self.rate = rate
        self.n_products = n_products
        self.window_end_us = window_end_us
        self.owed = dict.fromkeys(FAULT_KINDS, 0.0)
        self.injected = dict.fromkeys(FAULT_KINDS, 0)

    def _plan(self, n_rows: int, last: bool) -> dict[str, int]:
        """How many rows of each kind to corrupt in a chunk of `n_rows` rows."""
        counts = {}
        for kind in FAULT_KINDS:
            self.owed[kind] += self.rate * n_rows / len(FAULT_KINDS)
            counts[kind] = int(self.owed[kind])
            if last and self.rate > 0:
                counts[kind] = max(counts[kind], 1 - self.injected[kind])
        return counts

    def _choose_rows(self, events: EventColumns, counts: dict[str, int],
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Distinct rows for each kind; product faults only on rows that name a product."""
        product_rows = np.flatnonzero(np.isin(events.event_type, PRODUCT_EVENT_CODES))
        wanted = sum(counts[kind] for kind in PRODUCT_FAULTS)
        picked = rng.choice(product_rows, size=min(wanted, len(product_rows)), replace=False)
        chosen, used = {}, 0
        for kind in PRODUCT_FAULTS:
            chosen[kind] = picked[used:used + counts[kind]]
            used += len(chosen[kind])
        rest = np.setdiff1d(np.arange(len(events)), picked, assume_unique=True)
        others = [kind for kind in FAULT_KINDS if kind not in PRODUCT_FAULTS]
        wanted = sum(counts[kind] for kind in others)
        picked = rng.choice(rest, size=min(wanted, len(rest)), replace=False)
        used = 0
        for kind in others:
            chosen[kind] = picked[used:used + counts[kind]]
            used += len(chosen[kind])
        return chosen

    def apply(self, events: EventColumns, rng: np.random.Generator, last: bool) -> EventColumns:
        """A copy of `events` with faults injected; duplicates follow their original row."""
        if self.rate <= 0 or len(events) == 0:
            return events
        chosen = self._choose_rows(events, self._plan(len(events), last), rng)
        faulty = events.take(slice(None))
        faulty.customer = faulty.customer.copy()
        faulty.customer[chosen[MISSING_CUSTOMER_ID]] = -1
        rows = chosen[NONPOSITIVE_PRICE]
        faulty.price = faulty.price.copy()
        faulty.price[rows] = np.where(rng.random(len(rows)) < 0.5, 0.0, -faulty.price[rows])
        rows = chosen[FUTURE_TIMESTAMP]
        faulty.timestamp_us = faulty.timestamp_us.copy()
        faulty.timestamp_us[rows] = self.window_end_us + FUTURE_YEARS_US + rng.integers(
            0, YEAR_US, len(rows))
        rows = chosen[UNKNOWN_PRODUCT]
        faulty.product = faulty.product.copy()
        faulty.product[rows] = self.n_products + rng.integers(0, UNKNOWN_PRODUCT_SLOTS, len(rows))
        faulty.event_type = faulty.event_type.copy()
        faulty.event_type[chosen[MALFORMED_ROW]] += len(EVENT_TYPES)  # the garbled spelling
        for kind, rows in chosen.items():
            self.injected[kind] += len(rows)
            self.owed[kind] -= len(rows)
        with_copies = np.sort(np.concatenate([np.arange(len(events)), chosen[DUPLICATE_EVENT_ID]]))
        return faulty.take(with_copies)
