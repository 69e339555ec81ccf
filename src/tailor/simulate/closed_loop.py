"""The closed loop: simulate more days in which shoppers answer a policy's slates and offers.

`run_closed_loop(state, policy, days, seed)` asks the policy for every session's
homepage slate and every cart's offer, runs the same behaviour model as the bulk
simulator (`tailor.simulate.day`) and returns the events in the data contract. The
truth per session (click, conversion, incentive, abandonment) is appended to
`state.session_log`. `load_shop_state(out)` continues a shop that `simulate_shop` wrote.
Reads `<out>/ground_truth/{config.json,shop_state.npz}`; writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tailor.simulate import taxonomy
from tailor.simulate.config import ShopConfig
from tailor.simulate.day import (
    CartLines,
    CartSummary,
    DayResult,
    OfferSource,
    Sessions,
    SlateSource,
    simulate_day,
    single_blas_thread,
)
from tailor.simulate.events import EventColumns, Vocabulary, to_arrow
from tailor.simulate.output import GROUND_TRUTH
from tailor.simulate.policies import ShopperPolicy
from tailor.simulate.world import ShopState, build_shop_state, load_dynamic, stream


def load_shop_state(out: Path) -> ShopState:
    """The shop written by `simulate_shop` to `out`, ready to continue where it stopped.

    Raises:
        FileNotFoundError: `out` holds no simulated shop (ground_truth/config.json missing).
    """
    folder = Path(out) / GROUND_TRUTH
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not found (is {out} a folder written by "
                                "`tailor simulate`?)")
    config = ShopConfig.from_dict(json.loads(config_path.read_text()))
    return load_dynamic(build_shop_state(config), folder / "shop_state.npz")


def _timestamp(microseconds: int) -> str:
    return dt.datetime.fromtimestamp(microseconds / 1e6, tz=dt.UTC).isoformat()


def policy_slates(policy: ShopperPolicy, k: int) -> SlateSource:
    """Slate source asking `policy.recommend` once per session."""

    def slates(state: ShopState, sessions: Sessions, day: int) -> tuple[np.ndarray, np.ndarray]:
        catalogue = state.catalogue
        index = {product_id: i for i, product_id in enumerate(catalogue.product_ids)}
        weekday = (state.config.start_date + dt.timedelta(days=day)).weekday()
        slate = np.full((len(sessions), k), -1, dtype=np.int32)
        texts = np.empty(len(sessions), dtype=object)
        for row in range(len(sessions)):
            customer_id = str(state.customers.customer_ids[sessions.customer[row]])
            context = {"timestamp": _timestamp(int(sessions.start_us[row])), "day": day,
                       "hour": int(sessions.hour[row]), "weekday": weekday,
                       "device_type": taxonomy.DEVICES[sessions.device[row]],
                       "session_id": f"s{int(sessions.number[row]):09d}"}
            shown = list(policy.recommend(customer_id, context, k))[:k]
            unknown = [product_id for product_id in shown if product_id not in index]
            if unknown:
                raise ValueError(f"recommend: product_id {unknown[0]!r} for customer {customer_id} "
                                 "is not in the catalogue")
            slate[row, :len(shown)] = [index[product_id] for product_id in shown]
            texts[row] = json.dumps(shown, separators=(",", ":"))
        return slate, texts

    return slates


def policy_offers(policy: ShopperPolicy) -> OfferSource:
    """Offer source asking `policy.offer` once per cart."""

    def offers(state: ShopState, sessions: Sessions, carts: CartSummary,
               lines: CartLines) -> np.ndarray:
        codes = np.zeros(len(carts.session), dtype=np.int8)
        for cart, row in enumerate(carts.session):
            in_cart = (carts.line_cart == cart) & ~lines.removed
            session = {"session_id": f"s{int(sessions.number[row]):09d}",
                       "timestamp": _timestamp(int(sessions.start_us[row])),
                       "hour": int(sessions.hour[row]),
                       "device_type": taxonomy.DEVICES[sessions.device[row]],
                       "cart_value": round(float(carts.value[cart]), 2),
                       "n_items": int(carts.n_items[cart]),
                       "product_ids": state.catalogue.product_ids[lines.product[in_cart]].tolist()}
            customer_id = str(state.customers.customer_ids[sessions.customer[row]])
            codes[cart] = incentive_code(policy.offer(customer_id, session))
        return codes

    return offers


def incentive_code(offer: str | None) -> int:
    """Index of an offer in INCENTIVES; ValueError naming the value when it is not one."""
    if offer is None or offer == "none":
        return 0
    if offer not in taxonomy.INCENTIVES:
        raise ValueError(f"offer: {offer!r} is not one of None, "
                         + ", ".join(repr(name) for name in taxonomy.INCENTIVES[1:]))
    return taxonomy.INCENTIVES.index(offer)


def session_outcomes(state: ShopState, day: int, result: DayResult) -> pd.DataFrame:
    """Truth per session of a closed-loop day: click, incentive, abandonment, order value."""
    sessions, checkout, lines = result.sessions, result.checkout, result.lines
    n, cart_rows = len(sessions), checkout.carts.session
    incentive = np.full(n, None, dtype=object)
    incentive[cart_rows] = np.array(taxonomy.INCENTIVES, dtype=object)[checkout.incentive]
    abandoned = np.zeros(n, dtype=bool)
    abandoned[cart_rows] = checkout.abandoned
    cause = np.full(n, "", dtype=object)
    cause[cart_rows] = np.array(("",) + taxonomy.ABANDON_CAUSES, dtype=object)[checkout.cause + 1]
    bought = ~lines.removed & ~checkout.abandoned[checkout.carts.line_cart]
    line_value = state.catalogue.price[lines.product[bought]] * lines.quantity[bought]
    spent = np.bincount(lines.session[bought], weights=line_value, minlength=n)
    clicked = result.browsing.clicked_product
    return pd.DataFrame({
        "session_id": [f"s{number:09d}" for number in sessions.number],
        "customer_id": state.customers.customer_ids[sessions.customer],
        "day": day,
        "clicked_position": result.browsing.slate_position.astype(np.int64),
        "clicked_product_id": np.where(clicked >= 0,
                                       state.catalogue.product_ids[np.maximum(clicked, 0)], None),
        "carted": np.isin(np.arange(n), cart_rows),
        "incentive": incentive,
        "abandoned": abandoned,
        "abandon_cause": cause,
        "converted": spent > 0,
        "order_value": spent.round(2),
    })


def _closed_loop_day(state: ShopState, policy: ShopperPolicy, slate_size: int, seed: int,
                     vocabulary: Vocabulary) -> pa.Table:
    """Simulate the state's next day under `policy`; returns its events, numbered and sorted."""
    day = state.day
    rng = stream(state.config.seed, 5, seed, day)
    result = simulate_day(state, day, rng, policy_slates(policy, slate_size), policy_offers(policy))
    events = result.events.sorted_by_time()
    events.event_number = state.next_event + np.arange(len(events), dtype=np.int64)
    state.next_event += len(events)
    state.session_log.append(session_outcomes(state, day, result))
    state.day += 1
    return to_arrow(events, vocabulary)


def run_closed_loop(state: ShopState, policy: ShopperPolicy, days: int, seed: int,
                    k: int | None = None) -> pd.DataFrame:
    """Simulate `days` more days of `state` with `policy` choosing slates and offers.

    Args:
        state: the shop (e.g. from `load_shop_state` or after `simulate_shop`); advanced
            in place: its day, history and `session_log` grow. Use `state.copy()` to
            compare policies from the same starting point.
        policy: a `ShopperPolicy`.
        days: number of days to simulate.
        seed: seed of these days' randomness (same state, policy and seed: same events).
        k: slate size; config.slate_size when None.

    Returns:
        The events in the data contract (`EVENT_COLUMNS`), sorted by timestamp; clicks on
        the slate carry `properties` {"position": i, "slate": [...]}.
    """
    if days < 0:
        raise ValueError(f"days: must be 0 or more, got {days!r}")
    slate_size = k or state.config.slate_size
    vocabulary = Vocabulary.for_shop(state.customers.customer_ids, state.catalogue.product_ids)
    tables = []
    with single_blas_thread():
        for _ in range(days):
            tables.append(_closed_loop_day(state, policy, slate_size, seed, vocabulary))
    if not tables:
        tables.append(to_arrow(EventColumns.empty(), vocabulary))
    table = pa.concat_tables(tables)
    order = np.argsort(table.column("timestamp").to_numpy(), kind="stable")
    return table.take(order).to_pandas()
