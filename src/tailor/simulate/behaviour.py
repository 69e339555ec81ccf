"""The shopper behaviour model, shared by the bulk simulator and the closed loop.

Pure functions over numpy arrays (one row per session, view or cart): what a customer
looks at, how they answer a homepage slate, whether they mean to buy, and whether and
why they abandon a cart. Both drivers call these same functions; neither re-implements
behaviour. Nothing here reads or writes files.

The true affinity of customer c for product p is the log-probability (up to a
within-subcategory normaliser) that c views p:

    affinity(c, p) = log softmax_s(L_c)[s_p] + item_logit(c, p) - mass(s_p)
    L_cs = log pref_c[cat_s] + taste_c · w_s + mass_s - 0.3 β_c level_s + season_s(t) + context
    item_logit(c, p) = τ_s taste_c · ε_p + log popularity_p + 0.4 rating_z_p - β_c price_z_p

so taste · product vector, category preference, price sensitivity and popularity all
shape views, carts and purchases.
"""

from __future__ import annotations

import numpy as np

from tailor.simulate import taxonomy
from tailor.simulate.world import (
    SUBCATEGORY_CATEGORY,
    SUBCATEGORY_SEASON,
    Catalogue,
    Customers,
    ShopState,
)

# Relative session starts per hour (UTC = shop time): morning, lunch and evening peaks.
WEEKDAY_HOURS = np.array([0.35, 0.2, 0.12, 0.08, 0.08, 0.15, 0.4, 0.8, 1.1, 1.1, 1.0, 1.1,
                          1.4, 1.3, 1.0, 1.0, 1.1, 1.3, 1.7, 2.2, 2.5, 2.3, 1.6, 0.8])
WEEKEND_HOURS = np.array([0.5, 0.3, 0.18, 0.1, 0.08, 0.1, 0.2, 0.4, 0.7, 1.1, 1.4, 1.5,
                          1.5, 1.4, 1.4, 1.4, 1.4, 1.4, 1.6, 1.9, 2.1, 2.0, 1.5, 0.9])
WEEKDAY_VOLUME = np.array([1.05, 1.0, 1.0, 0.98, 0.95, 1.12, 1.18])  # Monday .. Sunday

# Category interest by time of day (night, morning, afternoon, evening) and at weekends,
# in CATEGORIES order: grocery in the morning, electronics and toys in the evening, ...
DAYPART_CATEGORY_BOOST = np.array([
    [0.1, 0.0, -0.1, 0.25, -0.2, 0.0, -0.2, -0.3],
    [-0.1, 0.0, 0.05, 0.0, 0.1, 0.1, -0.1, 0.35],
    [0.0, 0.1, 0.1, 0.0, 0.05, 0.05, 0.05, 0.0],
    [0.2, 0.05, 0.0, 0.05, -0.05, 0.0, 0.15, -0.1],
], dtype=np.float32)
WEEKEND_CATEGORY_BOOST = np.array([0.0, 0.1, 0.25, 0.05, 0.25, 0.0, 0.2, 0.05], dtype=np.float32)

DAYPART_INTENT = np.array([0.7, 0.9, 1.0, 1.15])
DEVICE_INTENT = np.array([0.8, 1.3, 0.95])  # mobile, desktop, tablet
SEASON_STRENGTH = 1.2
SLATE_POSITION_BIAS = 0.85
REFERENCE_CATALOGUE_SIZE = 300  # each lower slot is examined this much less often
# P(abandon) = sigmoid(INTERCEPT + SLOPE * log(total hazard)): about 70% of carts, with a
# spread wide enough that cart value, device, time and loyalty predict it (as in real shops).
ABANDON_INTERCEPT = 2.1
ABANDON_SLOPE = 3.0

SUBCATEGORY_QUERIES = tuple(sub.name for sub in taxonomy.SUBCATEGORIES)
QUERY_WORDS: tuple[str, ...] = SUBCATEGORY_QUERIES + taxonomy.CATEGORIES


def daypart_of(hour: np.ndarray) -> np.ndarray:
    """0 night (0-5h), 1 morning (6-11h), 2 afternoon (12-17h), 3 evening (18-23h)."""
    return (np.asarray(hour) // 6).astype(np.int8)


def activity_ramp(customers: Customers, day: int,
                  customer_idx: np.ndarray | None = None) -> np.ndarray:
    """Activity multiplier: 1, falling over the weeks before a customer's churn day, then 0."""
    churn = customers.churn_day if customer_idx is None else customers.churn_day[customer_idx]
    decay = customers.decay_days if customer_idx is None else customers.decay_days[customer_idx]
    days_left = churn - day
    ramp = np.clip(days_left / decay, 0.12, 1.0)
    return np.where(days_left > 0, ramp, 0.0)


def session_hours(weekend: bool, size: int, rng: np.random.Generator) -> np.ndarray:
    """Start hour of each session from the weekday or weekend profile."""
    weights = WEEKEND_HOURS if weekend else WEEKDAY_HOURS
    return rng.choice(24, size=size, p=weights / weights.sum()).astype(np.int8)


def season_boost(day_of_year: int) -> np.ndarray:
    """Log demand boost per subcategory: seasonal ones peak on their season's day."""
    boost = np.zeros(len(SUBCATEGORY_SEASON), dtype=np.float32)
    for index, season in enumerate(SUBCATEGORY_SEASON):
        if season is not None:
            angle = 2 * np.pi * (day_of_year - taxonomy.SEASON_PEAK_DAY[season]) / 365.25
            boost[index] = SEASON_STRENGTH * np.cos(angle)
    return boost


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def subcategory_logprob(state: ShopState, customer_idx: np.ndarray, day: int, hour: np.ndarray,
                        weekend: bool) -> np.ndarray:
    """Log-probability that each customer's next view falls in each subcategory, (n, S)."""
    catalogue, customers = state.catalogue, state.customers
    category = SUBCATEGORY_CATEGORY
    day_of_year = (state.config.start_date.timetuple().tm_yday + day - 1) % 365 + 1
    logits = np.log(customers.category_preference[customer_idx][:, category])
    logits += customers.tastes[customer_idx] @ catalogue.subcategory_vectors.T
    sensitivity = customers.price_sensitivity[customer_idx, None]
    logits -= 0.3 * sensitivity * catalogue.subcategory_price_level
    logits += catalogue.subcategory_mass + season_boost(day_of_year)
    logits += DAYPART_CATEGORY_BOOST[daypart_of(hour)][:, category]
    if weekend:
        logits += WEEKEND_CATEGORY_BOOST[category]
    return _log_softmax(logits.astype(np.float32))


def item_logits(catalogue: Catalogue, customers: Customers, customer_idx: np.ndarray,
                product_idx: np.ndarray) -> np.ndarray:
    """Within-subcategory appeal of product_idx[i] (shape (n,) or (n, k)) to customer_idx[i]."""
    scale = catalogue.subcategory_taste_scale[catalogue.subcategory[product_idx]]
    tastes = customers.tastes[customer_idx]
    vectors = catalogue.item_vectors[product_idx]
    if product_idx.ndim == 1:
        personal = np.einsum("nd,nd->n", tastes, vectors)
        sensitivity = customers.price_sensitivity[customer_idx]
    else:
        personal = np.einsum("nd,nkd->nk", tastes, vectors)
        sensitivity = customers.price_sensitivity[customer_idx][:, None]
    base = catalogue.log_popularity[product_idx] + 0.4 * catalogue.rating_z[product_idx]
    return personal * scale + base - sensitivity * catalogue.price_z[product_idx]


def item_logit_matrix(catalogue: Catalogue, customers: Customers, customer_idx: np.ndarray,
                      members: np.ndarray) -> np.ndarray:
    """Within-subcategory appeal of every product of one subcategory to each customer: (n, m).

    One matrix product of augmented vectors ([taste, -β, 1] · [τ ε, price_z, base]),
    so the largest array of the simulator is touched once.
    """
    scale = catalogue.subcategory_taste_scale[catalogue.subcategory[members[0]]]
    items = np.empty((catalogue.item_vectors.shape[1] + 2, len(members)), dtype=np.float32)
    items[:-2] = catalogue.item_vectors[members].T * scale
    items[-2] = catalogue.price_z[members]
    items[-1] = catalogue.log_popularity[members] + 0.4 * catalogue.rating_z[members]
    people = np.empty((len(customer_idx), items.shape[0]), dtype=np.float32)
    people[:, :-2] = customers.tastes[customer_idx]
    people[:, -2] = -customers.price_sensitivity[customer_idx]
    people[:, -1] = 1.0
    return people @ items


def affinity(state: ShopState, sub_logprob: np.ndarray, rows: np.ndarray, customer_idx: np.ndarray,
             product_idx: np.ndarray) -> np.ndarray:
    """True affinity of customer_idx[i] for product_idx[i] (shape (n,) or (n, k)).

    Args:
        sub_logprob: `subcategory_logprob` output; `rows` picks each entry's row in it.
    """
    catalogue = state.catalogue
    subcategory = catalogue.subcategory[product_idx]
    row_index = rows if product_idx.ndim == 1 else rows[:, None]
    own = item_logits(catalogue, state.customers, customer_idx, product_idx)
    return sub_logprob[row_index, subcategory] + own - catalogue.subcategory_mass[subcategory]


def relevance(state: ShopState, sub_logprob: np.ndarray, rows: np.ndarray, customer_idx: np.ndarray,
              product_idx: np.ndarray) -> np.ndarray:
    """Affinity measured against a typical product: 0 = as likely to be viewed as average.

    The catalogue-size term is tempered, because the top of a larger catalogue is more
    extreme (more products, same popularity spread) while shoppers' click habits are not.
    """
    n_products = state.catalogue.n_products
    shift = np.log(n_products) - 0.45 * np.log(n_products / REFERENCE_CATALOGUE_SIZE)
    return affinity(state, sub_logprob, rows, customer_idx, product_idx) + shift


def sample_rows(logprob: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per entry of `rows`, drawn from that row of a log-probability matrix."""
    cdf = np.cumsum(np.exp(logprob[rows]), axis=1)
    draws = (1.0 - rng.random(len(rows))) * cdf[:, -1]  # in (0, total]: never a zero-weight column
    picked = (cdf < draws[:, None]).sum(axis=1)
    return np.minimum(picked, logprob.shape[1] - 1).astype(np.int16)


def sample_products(state: ShopState, customer_idx: np.ndarray, subcategory: np.ndarray,
                    rng: np.random.Generator, block_cells: int = 1_000_000) -> np.ndarray:
    """A product per view, drawn within its subcategory in proportion to exp(item logit)."""
    catalogue, customers = state.catalogue, state.customers
    chosen = np.empty(len(customer_idx), dtype=np.int32)
    order = np.argsort(subcategory, kind="stable")
    bounds = np.searchsorted(subcategory[order], np.arange(len(catalogue.members) + 1))
    for sub_index, members in enumerate(catalogue.members):
        rows = order[bounds[sub_index]:bounds[sub_index + 1]]
        step = max(1, block_cells // max(1, len(members)))
        for start in range(0, len(rows), step):
            block = rows[start:start + step]
            # Item logits stay far below float32's exp limit (~88), so no max-shift pass.
            cdf = np.exp(item_logit_matrix(catalogue, customers, customer_idx[block], members))
            np.cumsum(cdf, axis=1, out=cdf)
            draws = (1.0 - rng.random(len(block), dtype=np.float32)) * cdf[:, -1]
            picked = np.count_nonzero(cdf < draws[:, None], axis=1)
            chosen[block] = members[np.minimum(picked, len(members) - 1)]
    return chosen


def slate_clicks(relevance: np.ndarray, valid: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cascade clicks on a homepage slate.

    Args:
        relevance: (n, k) `relevance` of each shown product.
        valid: (n, k) mask of real slots (slates may be shorter than k).

    Returns:
        Clicked position per session (-1 for none) and the clicked product's relevance
        (-inf for none).
    """
    attraction = np.where(valid, 1.0 / (1.0 + np.exp(5.5 - 0.7 * relevance)), 0.0)
    examined = SLATE_POSITION_BIAS ** np.arange(relevance.shape[1])
    clicked = rng.random(relevance.shape) < examined * attraction
    any_click = clicked.any(axis=1)
    position = np.where(any_click, clicked.argmax(axis=1), -1)
    chosen = np.take_along_axis(relevance, np.maximum(position, 0)[:, None], axis=1)[:, 0]
    return position.astype(np.int16), np.where(any_click, chosen, -np.inf)


def intent_probability(customers: Customers, customer_idx: np.ndarray, ramp: np.ndarray,
                       hour: np.ndarray, device: np.ndarray, weekend: bool) -> np.ndarray:
    """Probability that a session is a buying session (the customer will fill a cart)."""
    probability = customers.buy_propensity[customer_idx] * ramp
    probability = probability * DAYPART_INTENT[daypart_of(hour)] * DEVICE_INTENT[device]
    return np.clip(probability * (1.1 if weekend else 1.0), 0.0, 0.95)


def inspired_intent(probability: np.ndarray, clicked_relevance: np.ndarray) -> np.ndarray:
    """A clicked recommendation makes buying more likely, the more so the better it fits."""
    with np.errstate(over="ignore"):
        inspiration = 1.0 / (1.0 + np.exp(5.0 - 0.6 * clicked_relevance))
    return probability + (1.0 - probability) * inspiration


def abandonment_hazards(cart_value: np.ndarray, device: np.ndarray, price_sensitivity: np.ndarray,
                        hesitancy: np.ndarray, past_orders: np.ndarray, hour: np.ndarray,
                        searched: np.ndarray, incentive: np.ndarray) -> np.ndarray:
    """Hazard of abandoning the cart from each cause in ABANDON_CAUSES, shape (n, 5).

    Args:
        cart_value: value of the cart at checkout.
        device: index into DEVICES.
        price_sensitivity, hesitancy: the customer's hidden traits.
        past_orders: orders the customer placed before this session.
        hour: hour of the session start.
        searched: the session searched (a purposeful visit: less distraction and comparing).
        incentive: index into INCENTIVES (0 none, 1 10% off, 2 free shipping).
    """
    below_free_shipping = cart_value < taxonomy.FREE_SHIPPING_THRESHOLD
    hazards = np.stack([
        0.25 * price_sensitivity * (cart_value / 60.0) ** 0.5,
        np.where(below_free_shipping, 0.6, 0.03),
        np.array([0.65, 0.03, 0.3])[device],
        0.1 + 0.6 * (hour < 6) + 0.15 * (hour >= 22),
        0.03 + 0.45 * (past_orders == 0),
    ], axis=1)
    discount = incentive == 1
    free_shipping = incentive == 2
    hazards[:, 0] *= np.where(discount, 0.4, np.where(free_shipping, 0.85, 1.0))
    hazards[:, 1] *= np.where(discount, 0.8, np.where(free_shipping, 0.0, 1.0))
    hazards[:, 3:] *= np.where(searched, 0.5, 1.0)[:, None]
    loyalty = np.exp(-0.25 * np.log1p(past_orders))
    return hazards * (hesitancy * loyalty)[:, None]


def draw_abandonment(hazards: np.ndarray, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Who abandons, why, whether they reached checkout first, and P(abandon).

    Returns:
        abandoned (bool), cause index (-1 when not abandoned), reached_checkout (bool),
        probability of abandoning.
    """
    total = hazards.sum(axis=1)
    probability = 1.0 / (1.0 + np.exp(-ABANDON_INTERCEPT - ABANDON_SLOPE * np.log(total)))
    abandoned = rng.random(len(total)) < probability
    cdf = np.cumsum(hazards, axis=1)
    cause = (cdf < (rng.random(len(total)) * total)[:, None]).sum(axis=1)
    cause = np.where(abandoned, np.minimum(cause, hazards.shape[1] - 1), -1)
    # Shipping costs and payment forms bite at checkout; price shocks either side of it.
    at_checkout = (cause == 1) | (cause == 2) | ((cause == 0) & (rng.random(len(total)) < 0.5))
    return abandoned, cause.astype(np.int8), ~abandoned | at_checkout, probability


def draw_quantities(consumable: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Units per cart line, 1-3: groceries often in multiples, other goods mostly one."""
    draws = rng.random(len(consumable))
    other = 1 + (draws > 0.88) + (draws > 0.97)
    grocery = 1 + (draws > 0.5) + (draws > 0.82)
    return np.where(consumable, grocery, other).astype(np.int8)


def email_response(customers: Customers, recipients: np.ndarray, ramp: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Who opens and who clicks the weekly e-mail; engagement fades before churn."""
    opened = rng.random(len(recipients)) < customers.email_open_rate[recipients] * ramp ** 1.5
    clicked = opened & (rng.random(len(recipients)) < customers.email_click_rate[recipients] * ramp)
    return opened, clicked
