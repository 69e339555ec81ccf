"""One simulated day: e-mails, sessions, browsing, carts and checkout, as coded events.

Both drivers, the bulk simulator (`tailor.simulate.shop`) and the closed loop
(`tailor.simulate.closed_loop`), call `simulate_day`; they differ only in where the
homepage slate and the checkout offers come from (a `SlateSource` and an
`OfferSource`). Every step is vectorised over the day's sessions. The shop's history
(orders, owned products, pending visits, id counters) is updated in place; nothing is
written to disk here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from tailor.simulate import behaviour, taxonomy
from tailor.simulate.events import EVENT_CODE, PRODUCT_EVENT_CODES, EventColumns
from tailor.simulate.world import SUBCATEGORY_CATEGORY, ShopState

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
# Order of a session's events: each gets a step; equal steps never occur within a session.
STEP_CLICK, STEP_CLICKED_VIEW, STEP_SEARCH, STEP_FOLLOWUP_VIEW = 100, 200, 300, 400
STEP_FIRST_VIEW, VIEW_STRIDE = 1_000, 100
STEP_REMOVE, STEP_CHECKOUT, STEP_PURCHASE = 10_000_000, 20_000_000, 20_000_001
SESSION_KEY = 1 << 25
# Mean seconds spent after each event type (time on page), in EVENT_TYPES order.
MEAN_DWELL_SECONDS = np.array([30.0, 45.0, 12.0, 20.0, 8.0, 90.0, 0.0, 3.0, 0.0, 0.0])
DEVICE_VIEWS = np.array([0.85, 1.15, 1.0])  # mobile sessions are shorter
FOLLOW_UP_SHARE = 0.15  # complements not bought with the anchor, bought on a later visit


@dataclass
class Sessions:
    """The day's sessions in start order; `number` is the global session number (session_id)."""

    customer: np.ndarray
    start_us: np.ndarray
    hour: np.ndarray
    device: np.ndarray
    forced_product: np.ndarray
    number: np.ndarray

    def __len__(self) -> int:
        return len(self.customer)


@dataclass
class Browsing:
    """What each session saw and did before the cart: slate click, intent, search, views."""

    slate_position: np.ndarray
    clicked_product: np.ndarray
    click_properties: np.ndarray
    intent: np.ndarray
    query: np.ndarray
    view_session: np.ndarray
    view_product: np.ndarray
    view_step: np.ndarray
    view_affinity: np.ndarray


@dataclass
class CartLines:
    """Products put in carts. kind: 0 the session's main pick, 1 an extra pick, 2 a complement."""

    session: np.ndarray
    product: np.ndarray
    view_step: np.ndarray
    kind: np.ndarray
    quantity: np.ndarray
    removed: np.ndarray
    missed_line: np.ndarray
    missed_product: np.ndarray


@dataclass
class CartSummary:
    """One row per session with a cart: what an offer policy may look at."""

    session: np.ndarray
    value: np.ndarray
    n_items: np.ndarray
    line_cart: np.ndarray


@dataclass
class Checkout:
    """Outcome per cart session (rows aligned with `CartSummary`)."""

    carts: CartSummary
    incentive: np.ndarray
    abandoned: np.ndarray
    cause: np.ndarray
    reached_checkout: np.ndarray
    abandon_probability: np.ndarray
    order_number: np.ndarray


@dataclass
class DayResult:
    """Everything one day produced: events (unsorted, unnumbered) and the truth behind them."""

    events: EventColumns
    sessions: Sessions
    browsing: Browsing
    lines: CartLines
    checkout: Checkout


# slate_source(state, sessions, day) -> ((n, k) product indices, -1 = empty slot;
#                                        (n,) JSON text of each session's slate)
SlateSource = Callable[[ShopState, Sessions, int], tuple[np.ndarray, np.ndarray]]
# offer_source(state, sessions, carts, lines) -> (n_carts,) index into INCENTIVES
OfferSource = Callable[[ShopState, Sessions, CartSummary, CartLines], np.ndarray]


def single_blas_thread() -> AbstractContextManager[object]:
    """Limit BLAS to one thread while simulating.

    The simulator's matrix products are skinny (latent dimension ~14), so extra BLAS
    threads gain nothing, and their spin-waiting slows the whole run several-fold when
    the machine's cores are shared.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def simulate_day(state: ShopState, day: int, rng: np.random.Generator, slate_source: SlateSource,
                 offer_source: OfferSource) -> DayResult:
    """Simulate day `day` (0 = config.start) of the shop and update its history.

    Args:
        state: the shop; its history arrays and counters are advanced in place.
        day: index of the day relative to the shop's first day.
        rng: this day's random stream.
        slate_source: the homepage slate shown to each session.
        offer_source: the incentive (if any) shown to each cart.

    Returns:
        The day's events and the ground truth of sessions, carts and checkouts.
    """
    weekday = (state.config.start_date + dt.timedelta(days=day)).weekday()
    email_events = send_weekly_email(state, day, weekday, rng)
    sessions = draw_sessions(state, day, weekday, rng)
    sub_logprob = behaviour.subcategory_logprob(
        state, sessions.customer, day, sessions.hour, weekend=weekday >= 5)
    browsing = browse(state, sessions, sub_logprob, day, weekday >= 5, slate_source, rng)
    lines = fill_carts(state, sessions, browsing, rng)
    checkout = check_out(state, sessions, browsing, lines, offer_source, rng)
    update_history(state, sessions, lines, checkout, rng)
    events = session_events(state, sessions, browsing, lines, checkout, rng)
    events = EventColumns.concat([events, email_events])
    return DayResult(events, sessions, browsing, lines, checkout)


def _active(state: ShopState, day: int) -> np.ndarray:
    customers = state.customers
    return (customers.signup_day <= day) & (day < customers.churn_day)


def _take_pending(state: ShopState, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove visits due today from the pending queue; keep those of still-active customers."""
    due = state.pending_start_us < state.day_start_us(day + 1)
    customer, product = state.pending_customer[due], state.pending_product[due]
    start = np.maximum(state.pending_start_us[due], state.day_start_us(day))
    state.pending_customer = state.pending_customer[~due]
    state.pending_product = state.pending_product[~due]
    state.pending_start_us = state.pending_start_us[~due]
    alive = _active(state, day)[customer]
    return customer[alive], product[alive], start[alive]


def draw_sessions(state: ShopState, day: int, weekday: int, rng: np.random.Generator) -> Sessions:
    """The day's sessions: Poisson visits per active customer, plus visits due from the queue.

    A customer who signs up today has at least one session (they sign up during a visit).
    """
    customers = state.customers
    rate = customers.session_rate * behaviour.activity_ramp(customers, day)
    counts = rng.poisson(rate * behaviour.WEEKDAY_VOLUME[weekday]) * _active(state, day)
    counts = np.where(customers.signup_day == day, np.maximum(counts, 1), counts)
    customer = np.repeat(np.arange(customers.n_customers, dtype=np.int32), counts)
    hour = behaviour.session_hours(weekday >= 5, len(customer), rng)
    start = state.day_start_us(day) + hour.astype(np.int64) * HOUR_US + rng.integers(
        0, HOUR_US, len(customer))
    due_customer, due_product, due_start = _take_pending(state, day)
    customer = np.concatenate([customer, due_customer])
    start = np.concatenate([start, due_start])
    forced = np.concatenate([np.full(len(hour), -1, np.int32), due_product]).astype(np.int32)
    other_device = rng.choice(len(taxonomy.DEVICES), size=len(customer), p=taxonomy.DEVICE_SHARES)
    device = np.where(rng.random(len(customer)) < 0.8, customers.device[customer], other_device)
    order = np.argsort(start, kind="stable")
    number = state.next_session + np.arange(len(customer), dtype=np.int64)
    state.next_session += len(customer)
    hour = ((start - state.day_start_us(day)) // HOUR_US).astype(np.int8)
    return Sessions(customer=customer[order], start_us=start[order], hour=hour[order],
                    device=device[order].astype(np.int8), forced_product=forced[order],
                    number=number)


def _slate_response(state: ShopState, sessions: Sessions, sub_logprob: np.ndarray, day: int,
                    slate_source: SlateSource, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Slate clicks: clicked position, product, its relevance and the click's properties text."""
    rows = np.arange(len(sessions))
    slate, slate_text = slate_source(state, sessions, day)
    valid = (slate >= 0) & (sessions.forced_product < 0)[:, None]
    relevance = behaviour.relevance(state, sub_logprob, rows, sessions.customer,
                                    np.maximum(slate, 0))
    position, clicked_relevance = behaviour.slate_clicks(relevance, valid, rng)
    clicked = np.where(position >= 0, slate[rows, np.maximum(position, 0)], -1).astype(np.int32)
    properties = np.full(len(sessions), None, dtype=object)
    for row in np.flatnonzero(position >= 0):
        properties[row] = f'{{"position":{int(position[row])},"slate":{slate_text[row]}}}'
    return position, clicked, clicked_relevance, properties


def _free_view_counts(sessions: Sessions, intent: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Products a session views on its own: buyers browse more; half of browsers bounce."""
    n = len(sessions)
    mean_views = np.where(intent, 3.0, 1.2) * DEVICE_VIEWS[sessions.device]
    bounce = ~intent & (rng.random(n) < 0.5)
    counts = np.where(bounce, 0, 1 + rng.poisson(mean_views))
    return np.where(sessions.forced_product >= 0, rng.poisson(0.8, n), counts)


def _queries(sessions: Sessions, focus: np.ndarray, intent: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Search query per session (-1 none): the focus subcategory's word, sometimes its category."""
    n = len(sessions)
    follow_up = sessions.forced_product >= 0
    searched = rng.random(n) < np.where(intent, 0.3, 0.12) + 0.08 * (sessions.device == 1)
    by_category = (rng.random(n) < 0.2) & ~follow_up
    word = np.where(by_category, len(behaviour.SUBCATEGORY_QUERIES) + SUBCATEGORY_CATEGORY[focus],
                    focus)
    return np.where(searched | follow_up, word, -1).astype(np.int16)


def _free_views(state: ShopState, sessions: Sessions, sub_logprob: np.ndarray, focus: np.ndarray,
                counts: np.ndarray, searched: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sessions, products and steps of self-directed views: mostly in the focus subcategory."""
    view_session = np.repeat(np.arange(len(sessions)), counts)
    rank = np.arange(len(view_session)) - np.repeat(np.cumsum(counts) - counts, counts)
    stay = rng.random(len(view_session)) < np.where(searched[view_session], 0.75, 0.5)
    subcategory = focus[view_session].copy()
    wander = np.flatnonzero(~stay)
    subcategory[wander] = behaviour.sample_rows(sub_logprob, view_session[wander], rng)
    product = behaviour.sample_products(state, sessions.customer[view_session], subcategory, rng)
    return view_session, product, STEP_FIRST_VIEW + VIEW_STRIDE * rank


def browse(state: ShopState, sessions: Sessions, sub_logprob: np.ndarray, day: int, weekend: bool,
           slate_source: SlateSource, rng: np.random.Generator) -> Browsing:
    """Homepage slate response, buying intent, search and product views of each session."""
    customers = state.customers
    position, clicked, clicked_relevance, click_properties = _slate_response(
        state, sessions, sub_logprob, day, slate_source, rng)
    ramp = behaviour.activity_ramp(customers, day, sessions.customer)
    probability = behaviour.intent_probability(customers, sessions.customer, ramp, sessions.hour,
                                               sessions.device, weekend)
    follow_up = sessions.forced_product >= 0
    probability = behaviour.inspired_intent(probability, clicked_relevance)
    intent = (rng.random(len(sessions)) < probability) | follow_up
    focus = behaviour.sample_rows(sub_logprob, np.arange(len(sessions)), rng)
    focus[follow_up] = state.catalogue.subcategory[sessions.forced_product[follow_up]]
    query = _queries(sessions, focus, intent, rng)
    counts = _free_view_counts(sessions, intent, rng)
    free_session, free_product, free_step = _free_views(
        state, sessions, sub_logprob, focus, counts, query >= 0, rng)
    clicked_rows, follow_rows = np.flatnonzero(clicked >= 0), np.flatnonzero(follow_up)
    view_session = np.concatenate([clicked_rows, follow_rows, free_session])
    view_product = np.concatenate([clicked[clicked_rows], sessions.forced_product[follow_rows],
                                   free_product]).astype(np.int32)
    view_step = np.concatenate([np.full(len(clicked_rows), STEP_CLICKED_VIEW),
                                np.full(len(follow_rows), STEP_FOLLOWUP_VIEW), free_step])
    view_affinity = behaviour.affinity(state, sub_logprob, view_session,
                                       sessions.customer[view_session], view_product)
    return Browsing(position, clicked, click_properties, intent, query, view_session, view_product,
                    view_step.astype(np.int64), view_affinity)


def is_owned(state: ShopState, customer: np.ndarray, product: np.ndarray) -> np.ndarray:
    """Whether each customer already bought each (non-consumable) product."""
    keys = customer.astype(np.int64) * state.catalogue.n_products + product
    if len(state.owned_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    position = np.searchsorted(state.owned_keys, keys)
    inside = position < len(state.owned_keys)
    return inside & (state.owned_keys[np.minimum(position, len(state.owned_keys) - 1)] == keys)


def _best_per_session(session: np.ndarray, score: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Mask of the highest-scoring candidate row of each session."""
    rows = np.flatnonzero(candidate)
    rows = rows[np.lexsort((-score[rows], session[rows]))]
    best = np.zeros(len(session), dtype=bool)
    best[rows[np.unique(session[rows], return_index=True)[1]]] = True
    return best


def _picked_lines(state: ShopState, sessions: Sessions, browsing: Browsing,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Which views become cart lines: a buying session's best-liked eligible view, a few extras.

    Returns the view rows put in a cart and whether each is the session's main pick.
    """
    catalogue = state.catalogue
    session, product = browsing.view_session, browsing.view_product
    eligible = catalogue.in_stock[product] & (
        catalogue.consumable[product] | ~is_owned(state, sessions.customer[session], product))
    score = browsing.view_affinity + rng.gumbel(size=len(session))
    follow_up = browsing.view_step == STEP_FOLLOWUP_VIEW
    intent = browsing.intent[session] & (sessions.forced_product[session] < 0)
    main = _best_per_session(session, score, eligible & intent) | (eligible & follow_up)
    extra_rate = np.where(browsing.intent[session], 0.12, 0.008)  # impulse adds are rare
    extra = eligible & ~main & (rng.random(len(session)) < extra_rate)
    rows = np.flatnonzero(main | extra)
    rows = rows[np.lexsort((browsing.view_step[rows], session[rows]))]
    key = session[rows].astype(np.int64) * catalogue.n_products + product[rows]
    rows = rows[np.sort(np.unique(key, return_index=True)[1])]  # a product enters a cart once
    return rows, main[rows]


def _complements(state: ShopState, session: np.ndarray, product: np.ndarray, view_step: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Complements added with each anchor line at the rule's probability.

    Returns the added lines (anchor line index, complement product, view step) and the
    rules that did not fire (anchor line index, complement product).
    """
    catalogue = state.catalogue
    counts = catalogue.rule_start[product + 1] - catalogue.rule_start[product]
    anchor_line = np.repeat(np.arange(len(product)), counts)
    offset = np.arange(len(anchor_line)) - np.repeat(np.cumsum(counts) - counts, counts)
    rule = catalogue.rule_start[product[anchor_line]] + offset
    fired = rng.random(len(rule)) < catalogue.rule_probability[rule]
    complement = catalogue.rule_complement[rule]
    step = view_step[anchor_line] + 2 + 2 * offset
    return (anchor_line[fired], complement[fired], step[fired],
            anchor_line[~fired], complement[~fired])


def fill_carts(state: ShopState, sessions: Sessions, browsing: Browsing,
               rng: np.random.Generator) -> CartLines:
    """Cart lines of the day: picks from views, their complements, quantities and removals."""
    rows, is_main = _picked_lines(state, sessions, browsing, rng)
    session, product = browsing.view_session[rows], browsing.view_product[rows]
    view_step = browsing.view_step[rows]
    anchor, complement, complement_step, missed_line, missed_product = _complements(
        state, session, product, view_step, rng)
    n_products = state.catalogue.n_products
    key = session[anchor].astype(np.int64) * n_products + complement
    keep = ~np.isin(key, session.astype(np.int64) * n_products + product)
    keep &= np.isin(np.arange(len(key)), np.unique(key, return_index=True)[1])  # once per cart
    session = np.concatenate([session, session[anchor][keep]])
    product = np.concatenate([product, complement[keep]]).astype(np.int32)
    view_step = np.concatenate([view_step, complement_step[keep]])
    kind = np.concatenate([np.where(is_main, 0, 1), np.full(keep.sum(), 2)]).astype(np.int8)
    order = np.lexsort((view_step, session))
    quantity = behaviour.draw_quantities(state.catalogue.consumable[product[order]], rng)
    lines = CartLines(session[order], product[order], view_step[order], kind[order], quantity,
                      np.zeros(len(order), bool), np.argsort(order)[missed_line], missed_product)
    lines.removed = _removals(lines, rng)
    return lines


def _removals(lines: CartLines, rng: np.random.Generator) -> np.ndarray:
    """Second thoughts: extra picks in carts of two or more lines are often removed again.

    A cart is never emptied: its first line stays when every line would go.
    """
    n_sessions = int(lines.session.max(initial=-1)) + 1
    sizes = np.bincount(lines.session, minlength=n_sessions)
    candidate = (lines.kind == 1) & (sizes[lines.session] >= 2)
    removed = candidate & (rng.random(len(lines.session)) < 0.35)
    emptied = np.bincount(lines.session, weights=~removed, minlength=n_sessions) == 0
    first_line = np.searchsorted(lines.session, np.flatnonzero(emptied & (sizes > 0)))
    removed[first_line] = False
    return removed


def summarise_carts(state: ShopState, lines: CartLines) -> CartSummary:
    """One row per cart session: value and item count of the lines not removed."""
    cart_session, line_cart = np.unique(lines.session, return_inverse=True)
    kept = ~lines.removed
    line_value = state.catalogue.price[lines.product] * lines.quantity * kept
    value = np.bincount(line_cart, weights=line_value, minlength=len(cart_session))
    n_items = np.bincount(line_cart, weights=kept, minlength=len(cart_session)).astype(np.int32)
    return CartSummary(cart_session, value, n_items, line_cart)


def check_out(state: ShopState, sessions: Sessions, browsing: Browsing, lines: CartLines,
              offer_source: OfferSource, rng: np.random.Generator) -> Checkout:
    """Offer, abandonment (with cause) and order numbers for every cart session."""
    carts = summarise_carts(state, lines)
    customers = state.customers
    customer = sessions.customer[carts.session]
    incentive = np.asarray(offer_source(state, sessions, carts, lines), dtype=np.int8)
    hazards = behaviour.abandonment_hazards(
        carts.value, sessions.device[carts.session], customers.price_sensitivity[customer],
        customers.hesitancy[customer], state.orders_per_customer[customer],
        sessions.hour[carts.session], browsing.query[carts.session] >= 0, incentive)
    abandoned, cause, reached, probability = behaviour.draw_abandonment(hazards, rng)
    order_number = np.where(abandoned, -1, state.next_order + np.cumsum(~abandoned) - 1)
    state.next_order += int((~abandoned).sum())
    return Checkout(carts, incentive, abandoned, cause, reached, probability, order_number)


def update_history(state: ShopState, sessions: Sessions, lines: CartLines, checkout: Checkout,
                   rng: np.random.Generator) -> None:
    """Record orders and owned products; queue follow-up visits for complements not yet bought."""
    catalogue = state.catalogue
    completed = ~checkout.abandoned
    buyer = sessions.customer[checkout.carts.session[completed]]
    n_customers = len(state.orders_per_customer)
    state.orders_per_customer += np.bincount(buyer, minlength=n_customers).astype(np.int32)
    bought = ~lines.removed & completed[checkout.carts.line_cart]
    state.purchases_per_product += np.bincount(lines.product[bought],
                                               minlength=catalogue.n_products)
    durable = bought & ~catalogue.consumable[lines.product]
    keys = sessions.customer[lines.session[durable]].astype(np.int64) * catalogue.n_products
    state.owned_keys = np.union1d(state.owned_keys, keys + lines.product[durable])
    anchor_bought = bought[lines.missed_line]
    later = anchor_bought & (rng.random(len(lines.missed_line)) < FOLLOW_UP_SHARE)
    session = lines.session[lines.missed_line[later]]
    delay = rng.uniform(1.0, 14.0, len(session)) * DAY_US
    _queue_visits(state, sessions.customer[session], lines.missed_product[later],
                  sessions.start_us[session] + delay.astype(np.int64))


def _queue_visits(state: ShopState, customer: np.ndarray, product: np.ndarray,
                  start_us: np.ndarray) -> None:
    """Add visits (product -1 for none) to the pending queue."""
    state.pending_customer = np.concatenate([state.pending_customer, customer.astype(np.int32)])
    state.pending_product = np.concatenate([state.pending_product, product.astype(np.int32)])
    state.pending_start_us = np.concatenate([state.pending_start_us, start_us.astype(np.int64)])


def send_weekly_email(state: ShopState, day: int, weekday: int,
                      rng: np.random.Generator) -> EventColumns:
    """The weekly campaign: opens and clicks (fading before churn); a click brings a visit."""
    customers = state.customers
    if weekday != state.config.email_weekday:
        return EventColumns.empty()
    recipients = np.flatnonzero(_active(state, day) & customers.email_opt_in).astype(np.int32)
    ramp = behaviour.activity_ramp(customers, day, recipients)
    opened, clicked = behaviour.email_response(customers, recipients, ramp, rng)
    sent = state.day_start_us(day) + 9 * HOUR_US + rng.integers(0, HOUR_US // 2, len(recipients))
    open_at = sent + np.minimum(rng.exponential(6.0, len(recipients)), 47.0) * HOUR_US
    churn_at = state.day_start_us(0) + customers.churn_day[recipients] * DAY_US
    opened &= open_at < churn_at
    clicked &= opened
    click_at = open_at + rng.exponential(90.0, len(recipients)) * 1e6
    _queue_visits(state, recipients[clicked], np.full(clicked.sum(), -1), click_at[clicked] + 20e6)
    week = (state.config.start_date + dt.timedelta(days=day)).isocalendar()
    campaign = f'{{"campaign":"weekly","week":"{week.year}-W{week.week:02d}"}}'
    customer = np.concatenate([recipients[opened], recipients[clicked]])
    kinds = np.repeat([EVENT_CODE["email_open"], EVENT_CODE["email_click"]],
                      [opened.sum(), clicked.sum()])
    return EventColumns.build(
        np.concatenate([open_at[opened], click_at[clicked]]).astype(np.int64), kinds, customer,
        device=customers.device[customer],
        properties=np.full(len(customer), campaign, dtype=object))


INCENTIVE_PROPERTIES = np.array(
    [None] + [f'{{"incentive":"{name}"}}' for name in taxonomy.INCENTIVES[1:]], dtype=object)


def _part(session: np.ndarray, step: np.ndarray | int, event_type: str, **columns: np.ndarray
          ) -> dict[str, np.ndarray]:
    """Rows of one event type within sessions; absent columns filled in by `_stack_parts`."""
    n = len(session)
    part = {"session": session.astype(np.int64), "step": np.broadcast_to(step, n).astype(np.int64),
            "event_type": np.full(n, EVENT_CODE[event_type], np.int8)}
    part.update(columns)
    return part


def _stack_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate parts column by column, filling absent columns with 'absent' values."""
    absent = {"product": (-1, np.int32), "quantity": (0, np.int8), "order": (-1, np.int64),
              "query": (-1, np.int16), "properties": (None, object)}
    stacked = {name: np.concatenate([part[name] for part in parts])
               for name in ("session", "step", "event_type")}
    for name, (fill, dtype) in absent.items():
        stacked[name] = np.concatenate([
            np.asarray(part[name]).astype(dtype) if name in part
            else np.full(len(part["session"]), fill, dtype=dtype) for part in parts])
    return stacked


def _browse_parts(sessions: Sessions, browsing: Browsing,
                  rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Homepage and listing page views, slate clicks, searches and product views."""
    clicked = np.flatnonzero(browsing.clicked_product >= 0)
    searched = np.flatnonzero(browsing.query >= 0)
    free = browsing.view_step >= STEP_FIRST_VIEW
    listing = free & (rng.random(len(free)) < 0.3)  # a category page before some views
    return [
        _part(np.arange(len(sessions)), 0, "page_view"),
        _part(clicked, STEP_CLICK, "click", product=browsing.clicked_product[clicked],
              properties=browsing.click_properties[clicked]),
        _part(searched, STEP_SEARCH, "search", query=browsing.query[searched]),
        _part(browsing.view_session[listing], browsing.view_step[listing] - 1, "page_view"),
        _part(browsing.view_session, browsing.view_step, "product_view",
              product=browsing.view_product),
    ]


def _cart_parts(lines: CartLines, checkout: Checkout) -> list[dict[str, np.ndarray]]:
    """Complement views, cart adds and removals, checkout starts and purchases."""
    carts = checkout.carts
    complement = lines.kind == 2
    removed = np.flatnonzero(lines.removed)
    reached = np.flatnonzero(checkout.reached_checkout)
    bought = ~lines.removed & ~checkout.abandoned[carts.line_cart]
    line_incentive = INCENTIVE_PROPERTIES[checkout.incentive[carts.line_cart]]
    return [
        _part(lines.session[complement], lines.view_step[complement], "product_view",
              product=lines.product[complement]),
        _part(lines.session, lines.view_step + 1, "add_to_cart", product=lines.product,
              quantity=lines.quantity),
        _part(lines.session[removed], STEP_REMOVE + removed, "remove_from_cart",
              product=lines.product[removed], quantity=lines.quantity[removed]),
        _part(carts.session[reached], STEP_CHECKOUT, "checkout_start",
              properties=INCENTIVE_PROPERTIES[checkout.incentive[reached]]),
        _part(lines.session[bought], STEP_PURCHASE, "purchase", product=lines.product[bought],
              quantity=lines.quantity[bought],
              order=checkout.order_number[carts.line_cart[bought]],
              properties=line_incentive[bought]),
    ]


def session_events(state: ShopState, sessions: Sessions, browsing: Browsing, lines: CartLines,
                   checkout: Checkout, rng: np.random.Generator) -> EventColumns:
    """All events of the day's sessions, with timestamps from per-event dwell times."""
    rows = _stack_parts(_browse_parts(sessions, browsing, rng) + _cart_parts(lines, checkout))
    order = np.argsort(rows["session"] * SESSION_KEY + rows["step"], kind="stable")
    rows = {name: values[order] for name, values in rows.items()}
    session, event_type = rows["session"], rows["event_type"]
    dwell = rng.exponential(MEAN_DWELL_SECONDS[event_type])
    elapsed = np.cumsum(dwell) - dwell
    elapsed -= elapsed[np.searchsorted(session, session, side="left")]
    product = rows["product"]
    is_product_event = np.isin(event_type, PRODUCT_EVENT_CODES)
    price = np.where(is_product_event, state.catalogue.price[np.maximum(product, 0)], np.nan)
    is_page_view = event_type == EVENT_CODE["page_view"]
    return EventColumns.build(
        sessions.start_us[session] + (elapsed * 1e6).astype(np.int64), event_type,
        sessions.customer[session], product=product, session=sessions.number[session],
        order=rows["order"], quantity=rows["quantity"], device=sessions.device[session],
        query=rows["query"], price=price, properties=rows["properties"],
        time_on_page=np.where(is_page_view, np.round(dwell, 1), np.nan),
    )
