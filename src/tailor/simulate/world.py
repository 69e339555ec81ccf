"""The simulated shop's population and state: catalogue, customers (with hidden traits) and history.

`build_shop_state(config)` draws everything static from the seed; `ShopState` also
carries what changes as days are simulated (orders, owned products, pending visits,
id counters). `save_dynamic` / `load_dynamic` keep that part in an .npz file so a
closed loop can continue a written shop. Nothing here writes events.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tailor.simulate import taxonomy
from tailor.simulate.config import ShopConfig

PAST_SIGNUP_DAYS = 730  # existing customers signed up within two years before the window
NO_CHURN = np.inf
PURCHASES_PER_INTENT = 0.3  # about 30% of buying sessions end in an order


@dataclass
class Catalogue:
    """Products as column arrays, plus per-subcategory arrays and complement rules.

    Hidden (ground-truth) columns: `log_popularity`, `item_vectors` (the product's own
    part of its latent vector), `price_z` (price relative to its subcategory).
    """

    product_ids: np.ndarray
    names: np.ndarray
    subcategory: np.ndarray
    price: np.ndarray
    rating: np.ndarray
    inventory: np.ndarray
    log_popularity: np.ndarray
    item_vectors: np.ndarray
    price_z: np.ndarray
    rating_z: np.ndarray
    subcategory_vectors: np.ndarray
    subcategory_mass: np.ndarray
    subcategory_price_level: np.ndarray
    subcategory_taste_scale: np.ndarray
    members: list[np.ndarray]
    rule_anchor: np.ndarray
    rule_complement: np.ndarray
    rule_probability: np.ndarray
    rule_start: np.ndarray

    @property
    def n_products(self) -> int:
        return len(self.product_ids)

    @property
    def category(self) -> np.ndarray:
        """Category index of each product."""
        return SUBCATEGORY_CATEGORY[self.subcategory]

    @property
    def in_stock(self) -> np.ndarray:
        return self.inventory > 0

    @property
    def consumable(self) -> np.ndarray:
        return SUBCATEGORY_CONSUMABLE[self.subcategory]

    def product_vectors(self) -> np.ndarray:
        """Each product's full latent vector: taste · vector is its personal appeal."""
        scale = self.subcategory_taste_scale[self.subcategory][:, None]
        return self.subcategory_vectors[self.subcategory] + scale * self.item_vectors


@dataclass
class Customers:
    """Customers as column arrays; all but ids, signup, region, device and PII are hidden."""

    customer_ids: np.ndarray
    signup_day: np.ndarray
    region: np.ndarray
    device: np.ndarray
    category_preference: np.ndarray
    tastes: np.ndarray
    price_sensitivity: np.ndarray
    session_rate: np.ndarray
    buy_propensity: np.ndarray
    email_opt_in: np.ndarray
    email_open_rate: np.ndarray
    email_click_rate: np.ndarray
    weekly_churn_hazard: np.ndarray
    churn_day: np.ndarray
    decay_days: np.ndarray
    hesitancy: np.ndarray
    names: np.ndarray
    emails: np.ndarray

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)


@dataclass
class ShopState:
    """A shop: its static world and the history so far. Advanced in place by the drivers."""

    config: ShopConfig
    catalogue: Catalogue
    customers: Customers
    day: int = 0
    orders_per_customer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    purchases_per_product: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    owned_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pending_customer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    pending_product: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    pending_start_us: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    next_session: int = 0
    next_order: int = 0
    next_event: int = 0
    session_log: list[pd.DataFrame] = field(default_factory=list)

    @property
    def start_us(self) -> int:
        """Microseconds since the epoch of the first simulated day's midnight (UTC)."""
        return int(pd.Timestamp(self.config.start_date, tz="UTC").value // 1000)

    def day_start_us(self, day: int) -> int:
        return self.start_us + day * 86_400_000_000

    def copy(self) -> ShopState:
        """An independent copy, e.g. to run two policies from the same starting point."""
        return copy.deepcopy(self)


# Per-subcategory lookups derived from the taxonomy (module constants, not work at import).
SUBCATEGORY_NAMES = tuple(sub.name for sub in taxonomy.SUBCATEGORIES)
SUBCATEGORY_CATEGORY = np.array(
    [taxonomy.CATEGORIES.index(sub.category) for sub in taxonomy.SUBCATEGORIES], dtype=np.int16)
SUBCATEGORY_CONSUMABLE = np.array(
    [sub.category in taxonomy.CONSUMABLE_CATEGORIES for sub in taxonomy.SUBCATEGORIES])
SUBCATEGORY_SEASON = tuple(sub.season for sub in taxonomy.SUBCATEGORIES)


def stream(seed: int, *key: int) -> np.random.Generator:
    """An independent random stream for one purpose (and day): results do not depend on order."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def build_shop_state(config: ShopConfig) -> ShopState:
    """Draw the catalogue and the customers for `config`; the history starts empty.

    Args:
        config: shop settings; the seed fixes every draw.

    Returns:
        A `ShopState` at day 0.
    """
    catalogue = build_catalogue(config, stream(config.seed, 0, 1))
    customers = build_customers(config, stream(config.seed, 0, 2))
    return ShopState(
        config=config, catalogue=catalogue, customers=customers,
        orders_per_customer=_orders_before_window(customers, stream(config.seed, 0, 3)),
        purchases_per_product=np.zeros(catalogue.n_products, np.int64),
    )


def _allocate_products(n_products: int, rng: np.random.Generator) -> np.ndarray:
    """Subcategory of each product: every subcategory gets one before any gets two."""
    weights = np.array([sub.weight for sub in taxonomy.SUBCATEGORIES])
    n_subcategories = len(weights)
    if n_products < n_subcategories:
        chosen = rng.choice(n_subcategories, size=n_products, replace=False,
                            p=weights / weights.sum())
        counts = np.bincount(chosen, minlength=n_subcategories)
    else:
        counts = 1 + rng.multinomial(n_products - n_subcategories, weights / weights.sum())
    subcategory = np.repeat(np.arange(n_subcategories), counts)
    return rng.permutation(subcategory).astype(np.int16)  # ids do not reveal the subcategory


def _prices(subcategory: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Log-normal prices around each subcategory's median, shop-style (.99), and their z-scores."""
    medians = np.array([sub.median_price for sub in taxonomy.SUBCATEGORIES])[subcategory]
    price_z = rng.normal(0.0, 1.0, len(subcategory))
    raw = medians * np.exp(0.35 * price_z)
    price = np.where(raw >= 5, np.round(raw) - 0.01, np.round(raw, 1) - 0.01)
    return np.maximum(price, 0.49), price_z.astype(np.float32)


def _ratings(n_products: int, rng: np.random.Generator) -> np.ndarray:
    """Ratings 1-5 with one decimal: most good, a few poor products."""
    rating = rng.normal(4.15, 0.4, n_products)
    poor = rng.random(n_products) < 0.04
    rating[poor] = rng.normal(2.6, 0.6, poor.sum())
    return np.round(np.clip(rating, 1.0, 5.0), 1).astype(np.float32)


def _names(subcategory: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Plausible product names: a variant of the subcategory and a model number."""
    names = np.empty(len(subcategory), dtype=object)
    used: dict[str, int] = {}
    for index, sub_index in enumerate(subcategory):
        variants = taxonomy.SUBCATEGORIES[sub_index].variants
        variant = variants[int(rng.integers(len(variants)))]
        used[variant] = used.get(variant, 0) + 1 + int(rng.integers(3))
        names[index] = f"{variant} #{used[variant]}"
    return names


def _inventory(log_popularity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stock levels: about 5% out of stock, popular products stocked deeper."""
    depth = np.exp(rng.normal(np.log(40) + 0.4 * log_popularity, 0.8))
    stock = np.round(depth).astype(np.int32) + 1
    stock[rng.random(len(stock)) < 0.05] = 0
    return stock


def build_catalogue(config: ShopConfig, rng: np.random.Generator) -> Catalogue:
    """Draw the products: subcategory, price, rating, stock, popularity and latent vectors."""
    subcategory = _allocate_products(config.n_products, rng)
    n_products, dim = len(subcategory), config.latent_dim
    price, price_z = _prices(subcategory, rng)
    rating = _ratings(n_products, rng)
    rating_z = ((rating - 4.0) / 0.5).astype(np.float32)
    log_popularity = (rng.normal(0.0, 1.0, n_products) + 0.3 * rating_z).astype(np.float32)
    inventory = _inventory(log_popularity, rng)
    members = [np.flatnonzero(subcategory == s) for s in range(len(taxonomy.SUBCATEGORIES))]
    # Customer-independent part of an item's appeal; its log-sum is the subcategory's mass.
    base = log_popularity + 0.4 * rating_z
    mass = np.array([np.log(np.exp(base[m]).sum()) if len(m) else -np.inf for m in members])
    medians = np.log([sub.median_price for sub in taxonomy.SUBCATEGORIES])
    taste_scale = np.where(SUBCATEGORY_CONSUMABLE, 1.8, 1.0).astype(np.float32)
    anchors, complements, probabilities = _complement_rules(members, log_popularity, inventory, rng)
    return Catalogue(
        product_ids=_format_ids("p", n_products, 5), names=_names(subcategory, rng),
        subcategory=subcategory, price=price, rating=rating, inventory=inventory,
        log_popularity=log_popularity,
        item_vectors=rng.normal(0.0, 1.0, (n_products, dim)).astype(np.float32),
        price_z=price_z, rating_z=rating_z,
        subcategory_vectors=rng.normal(0.0, 1.0, (len(members), dim)).astype(np.float32),
        subcategory_mass=mass.astype(np.float32),
        subcategory_price_level=((medians - medians.mean()) / medians.std()).astype(np.float32),
        subcategory_taste_scale=taste_scale, members=members,
        rule_anchor=anchors, rule_complement=complements, rule_probability=probabilities,
        rule_start=np.searchsorted(anchors, np.arange(n_products + 1)).astype(np.int64),
    )


def _complement_rules(members: list[np.ndarray], log_popularity: np.ndarray, inventory: np.ndarray,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One designated in-stock complement per anchor product and rule, sorted by anchor.

    The designated complement is drawn by popularity among the complement subcategory's
    in-stock products ("the mouse that fits this laptop").
    """
    anchors, complements, probabilities = [], [], []
    for anchor_name, rules in taxonomy.COMPLEMENTS.items():
        anchor_products = members[SUBCATEGORY_NAMES.index(anchor_name)]
        for complement_name, probability in rules:
            candidates = members[SUBCATEGORY_NAMES.index(complement_name)]
            candidates = candidates[inventory[candidates] > 0]
            if len(candidates) == 0 or len(anchor_products) == 0:
                continue
            weights = np.exp(log_popularity[candidates].astype(np.float64))
            complements.append(rng.choice(candidates, size=len(anchor_products),
                                          p=weights / weights.sum()))
            anchors.append(anchor_products)
            probabilities.append(np.full(len(anchor_products), probability))
    if not anchors:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    anchor = np.concatenate(anchors)
    order = np.argsort(anchor, kind="stable")
    return (anchor[order].astype(np.int32), np.concatenate(complements)[order].astype(np.int32),
            np.concatenate(probabilities)[order].astype(np.float32))


def _format_ids(prefix: str, count: int, min_width: int) -> np.ndarray:
    """Ids like p00012: zero-padded so that they sort in creation order."""
    width = max(min_width, len(str(count)))
    return np.array([f"{prefix}{number:0{width}d}" for number in range(1, count + 1)], dtype=object)


def _signup_days(config: ShopConfig, rng: np.random.Generator) -> np.ndarray:
    """Day index (relative to the window's first day) on which each customer signed up."""
    n = config.n_customers
    is_new = rng.random(n) < min(0.5, config.daily_signup_rate * config.n_days)
    return np.where(is_new, rng.integers(0, config.n_days, n),
                    rng.integers(-PAST_SIGNUP_DAYS, 0, n)).astype(np.int32)


def _category_preferences(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dirichlet category preferences, with a regional tilt (regional tastes differ)."""
    shares = np.asarray(taxonomy.CATEGORY_SHARES)
    tilt = np.exp(rng.normal(0.0, 0.2, (len(taxonomy.REGIONS), len(shares))))
    alpha = 2.5 * shares * tilt / (shares * tilt).sum(axis=1, keepdims=True)
    preference = rng.gamma(alpha[region])  # gamma draws normalised = Dirichlet per row
    preference = np.maximum(preference, 1e-4)
    return (preference / preference.sum(axis=1, keepdims=True)).astype(np.float32)


def _churn_days(config: ShopConfig, signup_day: np.ndarray, hazard: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Day each customer drops out (first day without activity); inf when beyond a year."""
    daily_rate = -np.log1p(-hazard) / 7.0
    alive_from = np.maximum(signup_day, 0)
    churn = np.floor(alive_from + 1 + rng.exponential(1.0 / daily_rate))
    return np.where(churn > config.n_days + 365, NO_CHURN, churn)


def _fake_identities(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fake names and e-mails (PII stand-ins the platform must never leak)."""
    first = rng.integers(len(taxonomy.FIRST_NAMES), size=n)
    last = rng.integers(len(taxonomy.LAST_NAMES), size=n)
    names = np.empty(n, dtype=object)
    emails = np.empty(n, dtype=object)
    for index in range(n):
        given, family = taxonomy.FIRST_NAMES[first[index]], taxonomy.LAST_NAMES[last[index]]
        names[index] = f"{given.title()} {family.title()}"
        emails[index] = f"{given}.{family[0]}{1000 + index}@example.com"
    return names, emails


def build_customers(config: ShopConfig, rng: np.random.Generator) -> Customers:
    """Draw customers: observable attributes and the hidden traits that drive behaviour."""
    n = config.n_customers
    region = rng.choice(len(taxonomy.REGIONS), size=n, p=taxonomy.REGION_SHARES).astype(np.int8)
    device = rng.choice(len(taxonomy.DEVICES), size=n, p=taxonomy.DEVICE_SHARES).astype(np.int8)
    signup_day = _signup_days(config, rng)
    session_rate = rng.gamma(0.8, config.sessions_per_day / 0.8, n)
    # Less engaged customers churn more, so low frequency is an honest churn signal.
    relative_rate = np.clip(session_rate / config.sessions_per_day, 0.05, 20.0)
    hazard = np.clip(config.weekly_churn_hazard * np.exp(rng.normal(-0.18, 0.6, n))
                     * relative_rate ** -0.3, 1e-5, 0.5)
    names, emails = _fake_identities(n, rng)
    return Customers(
        customer_ids=_format_ids("c", n, 6), signup_day=signup_day, region=region, device=device,
        category_preference=_category_preferences(region, rng),
        tastes=rng.normal(0.0, 0.29 * config.taste_strength, (n, config.latent_dim)).astype(
            np.float32),
        price_sensitivity=np.exp(rng.normal(-0.125, 0.5, n)).astype(np.float32),
        session_rate=session_rate, buy_propensity=rng.beta(1.2, 26.0, n),
        email_opt_in=rng.random(n) < 0.8, email_open_rate=rng.beta(2.0, 7.0, n),
        email_click_rate=rng.beta(2.0, 9.0, n), weekly_churn_hazard=hazard,
        churn_day=_churn_days(config, signup_day, hazard, rng),
        decay_days=rng.uniform(14.0, 35.0, n), hesitancy=np.exp(rng.normal(0.0, 0.2, n)),
        names=names, emails=emails,
    )


def _orders_before_window(customers: Customers, rng: np.random.Generator) -> np.ndarray:
    """Orders existing customers placed before the window (up to a year back), at their own rate.

    The shop starts in its steady state: loyal customers already abandon fewer carts.
    """
    tenure = np.clip(-customers.signup_day, 0, 365)
    orders_per_day = customers.session_rate * customers.buy_propensity * PURCHASES_PER_INTENT
    return rng.poisson(tenure * orders_per_day).astype(np.int32)


DYNAMIC_FIELDS = ("orders_per_customer", "purchases_per_product", "owned_keys", "pending_customer",
                  "pending_product", "pending_start_us")
COUNTER_FIELDS = ("day", "next_session", "next_order", "next_event")


def save_dynamic(state: ShopState, path: Path) -> None:
    """Write the history part of `state` (arrays and counters) to an .npz file."""
    arrays = {name: getattr(state, name) for name in DYNAMIC_FIELDS}
    counters = np.array([getattr(state, name) for name in COUNTER_FIELDS], dtype=np.int64)
    np.savez_compressed(path, counters=counters, **arrays)


def load_dynamic(state: ShopState, path: Path) -> ShopState:
    """Restore the history written by `save_dynamic` into a freshly built `state`."""
    with np.load(path) as stored:
        for name in DYNAMIC_FIELDS:
            setattr(state, name, stored[name])
        for name, value in zip(COUNTER_FIELDS, stored["counters"].tolist(), strict=True):
            setattr(state, name, int(value))
    return state
