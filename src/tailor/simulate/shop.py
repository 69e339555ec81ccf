"""The bulk simulator: `simulate_shop(config, out)` writes a whole synthetic shop.

Writes `<out>/events.parquet` (sorted by timestamp, except injected faulty rows, which
keep their place in the stream), `<out>/products.csv`, `<out>/customers.csv` and
`<out>/ground_truth/`. Simulates day by day with the shared behaviour model
(`tailor.simulate.day`), the bestseller homepage and random site-wide promotions.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tailor.events.schema import EVENT_TYPES
from tailor.simulate import taxonomy
from tailor.simulate.config import ShopConfig
from tailor.simulate.day import DayResult, simulate_day, single_blas_thread
from tailor.simulate.events import GARBLED_EVENT_TYPES, EventColumns, Vocabulary
from tailor.simulate.faults import FAULT_KINDS, FaultInjector
from tailor.simulate.output import (
    GROUND_TRUTH,
    EventWriter,
    customers_frame,
    products_frame,
    write_ground_truth,
)
from tailor.simulate.policies import bestseller_slates, random_promotions
from tailor.simulate.world import ShopState, build_shop_state, stream

log = logging.getLogger(__name__)

PROGRESS_MIN_SESSIONS = 200_000  # show a progress bar above about this many sessions


@dataclass
class SimulationSummary:
    """Counts and paths of one simulation run."""

    out: Path
    n_events: int
    n_customers: int
    n_products: int
    n_days: int
    n_sessions: int
    n_orders: int
    n_cart_sessions: int
    n_abandoned: int
    events_by_type: dict[str, int]
    faults: dict[str, int]
    paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def conversion_rate(self) -> float:
        """Share of sessions that ended in an order."""
        return self.n_orders / self.n_sessions if self.n_sessions else 0.0

    @property
    def abandonment_rate(self) -> float:
        """Share of sessions with a cart that did not end in an order."""
        return self.n_abandoned / self.n_cart_sessions if self.n_cart_sessions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what `tailor simulate --json` prints)."""
        return {
            "out": str(self.out), "events": self.n_events, "customers": self.n_customers,
            "products": self.n_products, "days": self.n_days, "sessions": self.n_sessions,
            "orders": self.n_orders, "cart_sessions": self.n_cart_sessions,
            "conversion_rate": round(self.conversion_rate, 5),
            "abandonment_rate": round(self.abandonment_rate, 5),
            "events_by_type": self.events_by_type, "faults": self.faults, "paths": self.paths,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class _Tally:
    """Running counts while days are simulated."""

    by_type: np.ndarray = field(default_factory=lambda: np.zeros(
        len(EVENT_TYPES) + len(GARBLED_EVENT_TYPES), np.int64))
    sessions: int = 0
    orders: int = 0
    carts: int = 0
    abandoned: int = 0
    abandonment: list[pd.DataFrame] = field(default_factory=list)

    def add_day(self, state: ShopState, result: DayResult) -> None:
        checkout = result.checkout
        self.sessions += len(result.sessions)
        self.carts += len(checkout.carts.session)
        self.abandoned += int(checkout.abandoned.sum())
        self.orders += int((~checkout.abandoned).sum())
        self.abandonment.append(abandonment_frame(state, result))


def abandonment_frame(state: ShopState, result: DayResult) -> pd.DataFrame:
    """Ground truth of each cart session: abandoned or not, why, and the incentive shown."""
    checkout, sessions = result.checkout, result.sessions
    session = checkout.carts.session
    causes = np.array(("",) + taxonomy.ABANDON_CAUSES, dtype=object)
    return pd.DataFrame({
        "session_number": sessions.number[session],
        "customer_id": state.customers.customer_ids[sessions.customer[session]],
        "cause": causes[checkout.cause + 1],
        "incentive": np.array(taxonomy.INCENTIVES, dtype=object)[checkout.incentive],
        "abandoned": checkout.abandoned,
        "reached_checkout": checkout.reached_checkout,
        "cart_value": checkout.carts.value.round(2),
        "abandon_probability": checkout.abandon_probability.round(4),
        "order_number": checkout.order_number,
    })


def _format_truth_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """Session and order numbers as the ids used in events.parquet."""
    frame = frame.copy()
    frame.insert(0, "session_id", "s" + frame.pop("session_number").astype(str).str.zfill(9))
    order = frame.pop("order_number")
    frame["order_id"] = ("o" + order.astype(str).str.zfill(8)).where(order >= 0, None)
    return frame


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr (or nothing); yields a function that advances it by a day."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True)) as progress:
        task = progress.add_task("simulating days", total=total)
        yield lambda: progress.advance(task)


def _emit_day(state: ShopState, carry: EventColumns, result: DayResult, day: int
              ) -> tuple[EventColumns, EventColumns]:
    """The day's events ready to write (numbered, in time order), and those after midnight.

    After the last day the carry is dropped: an export taken at the end of the window holds
    nothing later (a late e-mail open or a session past midnight would otherwise make thin
    days after the window, which no real export has).
    """
    events = EventColumns.concat([carry, result.events]).sorted_by_time()
    cut = int(np.searchsorted(events.timestamp_us, state.day_start_us(day + 1)))
    chunk, carry = events.take(slice(0, cut)), events.take(slice(cut, None))
    chunk.event_number = state.next_event + np.arange(cut, dtype=np.int64)
    state.next_event += cut
    return chunk, carry


def _run_days(state: ShopState, writer: EventWriter, injector: FaultInjector, tally: _Tally,
              advance: Callable[[], None]) -> None:
    """Simulate every day of the window, writing events as they are produced."""
    config = state.config
    slates = bestseller_slates(config.slate_size)
    carry = EventColumns.empty()
    for day in range(config.n_days):
        if day == config.shift_at_day:
            from tailor.simulate.shift import apply_shift

            apply_shift(state, stream(config.seed, 4, day))
        offers = random_promotions(config.promo_share, stream(config.seed, 2, day))
        result = simulate_day(state, day, stream(config.seed, 1, day), slates, offers)
        state.day = day + 1
        chunk, carry = _emit_day(state, carry, result, day)
        chunk = injector.apply(chunk, stream(config.seed, 3, day), last=day == config.n_days - 1)
        tally.by_type += np.bincount(chunk.event_type, minlength=len(tally.by_type))
        writer.write(chunk)
        tally.add_day(state, result)
        advance()


def _write_events(state: ShopState, path: Path) -> tuple[_Tally, FaultInjector, int]:
    """Simulate the window into `path`; returns the tally, the fault log and the rows written."""
    config = state.config
    vocabulary = Vocabulary.for_shop(state.customers.customer_ids, state.catalogue.product_ids)
    injector = FaultInjector(config.fault_rate, state.catalogue.n_products,
                             state.day_start_us(config.n_days))
    tally = _Tally()
    expected_sessions = config.n_customers * config.n_days * config.sessions_per_day
    show = config.show_progress if config.show_progress is not None else (
        expected_sessions > PROGRESS_MIN_SESSIONS)
    with EventWriter(path, vocabulary, config.rows_per_group) as writer, \
            _progress(show, config.n_days) as advance, single_blas_thread():
        _run_days(state, writer, injector, tally, advance)
    return tally, injector, writer.rows_written


def simulate_shop(config: ShopConfig, out: Path,
                  state: ShopState | None = None) -> SimulationSummary:
    """Simulate the shop described by `config` and write it to `out`.

    Args:
        config: size, seed, fault rate and behaviour settings.
        out: folder for events.parquet, products.csv, customers.csv and ground_truth/.
        state: a shop built by `build_shop_state(config)` to simulate into (advanced in
            place, e.g. to continue it with `run_closed_loop`); built here when None.

    Returns:
        A `SimulationSummary` with counts and the paths written.
    """
    began = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = state or build_shop_state(config)
    products_frame(state).to_csv(out / "products.csv", index=False)
    customers_frame(state).to_csv(out / "customers.csv", index=False)
    tally, injector, rows_written = _write_events(state, out / "events.parquet")
    abandonment = _format_truth_ids(pd.concat(tally.abandonment, ignore_index=True))
    paths = write_ground_truth(state, out / GROUND_TRUTH, abandonment, injector.injected)
    paths.update(events=str(out / "events.parquet"), products=str(out / "products.csv"),
                 customers=str(out / "customers.csv"))
    summary = SimulationSummary(
        out=out, n_events=rows_written, n_customers=config.n_customers,
        n_products=state.catalogue.n_products, n_days=config.n_days, n_sessions=tally.sessions,
        n_orders=tally.orders, n_cart_sessions=tally.carts, n_abandoned=tally.abandoned,
        events_by_type={name: int(tally.by_type[i]) for i, name in enumerate(EVENT_TYPES)},
        faults={kind: injector.injected[kind] for kind in FAULT_KINDS}, paths=paths,
        seconds=time.perf_counter() - began)
    log.info("simulated %s events in %.1fs; wrote %s", f"{summary.n_events:,}", summary.seconds,
             out)
    return summary
