"""A seasonal shift: on one simulated day the shoppers' tastes and the catalogue change.

Changes a `ShopState` in place at the start of `ShopConfig.shift_at_day` (reads nothing,
writes nothing else): what monitoring must notice and recover from. In the shift:
  * every customer's latent taste turns to a new direction at cosine `SHIFT_KEPT_TASTE`
    from the old one (a random direction at right angles mixed in), its length kept (a new
    season's wants);
  * category preferences rotate: each customer's preference for a category moves to the
    next category in a fixed random order (last season's favourite aisle is this season's
    afterthought);
  * the catalogue turns over: `SHIFT_RETIRED_SHARE` of the products are retired (stock 0,
    never carted again), and as many are relaunched as new lines (a fresh latent vector and
    a popularity drawn anew), under their ids since the simulator's catalogue has a fixed
    size.
The ground truth (`config.json`) records the day; the same seed gives the same shift.
"""

from __future__ import annotations

import numpy as np

from tailor.simulate.world import ShopState

SHIFT_KEPT_TASTE = 0.2
SHIFT_RETIRED_SHARE = 0.15


def apply_shift(state: ShopState, rng: np.random.Generator) -> None:
    """Turn tastes, rotate category preferences and turn the catalogue over (see module)."""
    customers, catalogue = state.customers, state.catalogue
    tastes = customers.tastes
    norm = np.maximum(np.linalg.norm(tastes, axis=1, keepdims=True), 1e-12)
    unit = tastes / norm
    fresh = rng.normal(0.0, 1.0, tastes.shape)
    fresh -= (fresh * unit).sum(axis=1, keepdims=True) * unit  # at right angles to the old
    fresh *= norm / np.maximum(np.linalg.norm(fresh, axis=1, keepdims=True), 1e-12)
    customers.tastes = (SHIFT_KEPT_TASTE * tastes
                        + np.sqrt(1 - SHIFT_KEPT_TASTE ** 2) * fresh).astype(tastes.dtype)
    order = rng.permutation(customers.category_preference.shape[1])
    customers.category_preference = customers.category_preference[:, order]
    n = catalogue.n_products
    changed = rng.choice(n, size=2 * max(1, int(round(SHIFT_RETIRED_SHARE * n))), replace=False)
    retired, relaunched = np.array_split(changed, 2)
    catalogue.inventory[retired] = 0
    vectors = catalogue.item_vectors
    catalogue.item_vectors[relaunched] = rng.normal(
        0.0, vectors.std() or 1.0, (len(relaunched), vectors.shape[1])).astype(vectors.dtype)
    catalogue.log_popularity[relaunched] = rng.permutation(catalogue.log_popularity)[
        :len(relaunched)]
